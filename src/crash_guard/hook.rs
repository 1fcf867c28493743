//! Naming the event on the way out: what is being published is kept in one
//! process-wide slot, and a panic hook logs it with the panic, so a death
//! the pipeline cannot catch still says which event it was on. Also the
//! fault injection the crash-guard tests use (debug builds only).

use std::sync::Mutex;

use crate::event::OutboxEvent;

/// What the pipeline is publishing now: "event 5" or "10 events, 1 to 10".
static PUBLISHING: Mutex<String> = Mutex::new(String::new());

/// Notes that `events` are being published, for the panic hook.
pub fn publishing(events: &[OutboxEvent]) {
    let text = match events {
        [] => String::new(),
        [event] => format!("event {}", event.id),
        [first, .., last] => format!("{} events, {} to {}", events.len(), first.id, last.id),
    };
    *PUBLISHING.lock().unwrap_or_else(|e| e.into_inner()) = text;
}

/// Notes that nothing is being published.
pub fn published() {
    PUBLISHING.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// What [`publishing`] last noted, if still in flight.
pub fn in_flight() -> Option<String> {
    // try_lock: a hook must not wait on a lock the panicking thread may hold.
    let text = PUBLISHING.try_lock().ok()?.clone();
    (!text.is_empty()).then_some(text)
}

/// Logs every panic with the events in flight, then runs the previous hook
/// (Rust's message on stderr). Install once, at startup.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        match in_flight() {
            Some(publishing) => tracing::error!(
                publishing = %publishing,
                panic = %message,
                %location,
                "panic while publishing {publishing}"
            ),
            None => tracing::error!(panic = %message, %location, "panic"),
        }
        previous(info);
    }));
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Environment variable (debug builds only): abort the process when
/// publishing an event that has a header of this name. Not `OUTBOX_RELAY_*`:
/// those are config keys.
pub const ABORT_ON_HEADER: &str = "OUTBOX_TEST_ABORT_ON_HEADER";
/// Environment variable (debug builds only): panic inside the sink's
/// publish when publishing an event that has a header of this name.
pub const PANIC_ON_HEADER: &str = "OUTBOX_TEST_PANIC_ON_HEADER";

/// Fault injection for the tests: dies or panics as [`ABORT_ON_HEADER`] and
/// [`PANIC_ON_HEADER`] say. Compiled out of release builds.
#[cfg(debug_assertions)]
pub fn inject_faults(events: &[OutboxEvent]) {
    let has = |name: &str| {
        std::env::var(name).is_ok_and(|header| {
            events
                .iter()
                .any(|e| e.headers.iter().any(|(key, _)| *key == header))
        })
    };
    if has(ABORT_ON_HEADER) {
        std::process::abort();
    }
    if has(PANIC_ON_HEADER) {
        panic!("fault injection: {PANIC_ON_HEADER}");
    }
}

/// Release builds: no fault injection.
#[cfg(not(debug_assertions))]
pub fn inject_faults(_events: &[OutboxEvent]) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> OutboxEvent {
        OutboxEvent {
            id: id.into(),
            aggregate_type: "order".into(),
            aggregate_id: "o-1".into(),
            event_type: "created".into(),
            payload: Vec::new(),
            payload_kind: crate::event::PayloadKind::Json,
            headers: Vec::new(),
            created_at: None,
        }
    }

    #[test]
    fn names_the_events_in_flight() {
        publishing(&[event("5")]);
        assert_eq!(in_flight().as_deref(), Some("event 5"));
        publishing(&[event("1"), event("2"), event("3")]);
        assert_eq!(in_flight().as_deref(), Some("3 events, 1 to 3"));
        published();
        assert_eq!(in_flight(), None);
    }

    #[test]
    fn reads_the_panic_message() {
        let payload = std::panic::catch_unwind(|| panic!("static text")).expect_err("panics");
        assert_eq!(panic_message(payload.as_ref()), "static text");
        let n = 3;
        let payload = std::panic::catch_unwind(|| panic!("formatted {n}")).expect_err("panics");
        assert_eq!(panic_message(payload.as_ref()), "formatted 3");
        let payload = std::panic::catch_unwind(|| std::panic::panic_any(42)).expect_err("panics");
        assert_eq!(panic_message(payload.as_ref()), "a panic without a message");
    }
}
