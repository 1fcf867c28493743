//! The stdout sink: one JSON object per line, for trying the relay without a
//! broker, piping events into other tools, and benchmarking the source alone.
//! An event counts as confirmed once its line is written and flushed.
//!
//! The line builder is total: every event gives one valid JSON line, or an
//! [`EventError`] (a `json` payload that is not JSON, a text payload that is
//! not UTF-8) for the pipeline to dead-letter. There is no size limit: a
//! line is as long as its event (a bytea payload doubles, written as hex).

use std::fmt::Write as _;
use std::time::SystemTime;

use tokio::io::{AsyncWriteExt, Stdout};

use super::{EventError, PublishFailure, Sink, SinkError};
use crate::event::{OutboxEvent, PayloadKind};
use crate::metrics::{Component, metrics};

/// Writes events to standard output.
pub struct StdoutSink {
    out: Stdout,
    buffer: Vec<u8>,
}

impl StdoutSink {
    pub fn new() -> Self {
        StdoutSink {
            out: tokio::io::stdout(),
            buffer: Vec::new(),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn label(&self) -> &'static str {
        "stdout"
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        // Nothing to connect to: the sink is as ready as stdout is open.
        metrics().set_connected(Component::Broker, true);
        Ok(())
    }

    async fn publish(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        self.buffer.clear();
        // The lines before a refused event are written; it and the rest are not.
        let mut refused = None;
        for (index, event) in events.iter().enumerate() {
            if let Err(e) = write_line(event, &mut self.buffer) {
                refused = Some((index, e.rejecting(event)));
                break;
            }
        }
        let written = async {
            self.out.write_all(&self.buffer).await?;
            self.out.flush().await
        }
        .await;
        if let Err(e) = written {
            return Err(PublishFailure {
                confirmed: 0,
                error: SinkError::Io(e),
            });
        }
        match refused {
            None => Ok(()),
            Some((confirmed, error)) => Err(PublishFailure { confirmed, error }),
        }
    }
}

/// Appends the event as one JSON line, or nothing and the reason it cannot
/// be written.
pub fn write_line(event: &OutboxEvent, out: &mut Vec<u8>) -> Result<(), EventError> {
    check_payload(event)?;
    out.extend_from_slice(b"{\"event_id\":");
    json_string(&event.id, out);
    out.extend_from_slice(b",\"aggregate_type\":");
    json_string(&event.aggregate_type, out);
    out.extend_from_slice(b",\"aggregate_id\":");
    json_string(&event.aggregate_id, out);
    out.extend_from_slice(b",\"event_type\":");
    json_string(&event.event_type, out);
    out.extend_from_slice(b",\"payload\":");
    match event.payload_kind {
        // An empty payload is a tombstone (a NULL column).
        PayloadKind::Json if event.payload.is_empty() => out.extend_from_slice(b"null"),
        // Checked above: JSON text, inlined exactly as stored.
        PayloadKind::Json => out.extend_from_slice(&event.payload),
        PayloadKind::Text => json_string(&String::from_utf8_lossy(&event.payload), out),
        PayloadKind::Binary => {
            let mut hex = String::with_capacity(2 + event.payload.len() * 2);
            hex.push_str("\\x");
            for byte in &event.payload {
                let _ = write!(hex, "{byte:02x}");
            }
            json_string(&hex, out);
        }
    }
    out.extend_from_slice(b",\"headers\":");
    if event.headers.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        let map: serde_json::Map<String, serde_json::Value> =
            event.headers.iter().cloned().collect();
        // Serializing a Map into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &map);
    }
    out.extend_from_slice(b",\"created_at\":");
    match event.created_at.and_then(iso8601) {
        Some(at) => json_string(&at, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// A payload the line can carry: JSON text for a `json` payload (inlined),
/// UTF-8 for a text payload (a JSON string).
fn check_payload(event: &OutboxEvent) -> Result<(), EventError> {
    let utf8 = || {
        std::str::from_utf8(&event.payload).map_err(|e| {
            EventError::invalid(
                "payload",
                format!(
                    "is not UTF-8 (invalid byte at offset {}); a stdout line is UTF-8 JSON",
                    e.valid_up_to()
                ),
            )
        })
    };
    match event.payload_kind {
        PayloadKind::Json if event.payload.is_empty() => Ok(()),
        PayloadKind::Json => {
            let text = utf8()?;
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map(drop)
                .map_err(|e| EventError::invalid("payload", format!("is not JSON text ({e})")))
        }
        PayloadKind::Text => utf8().map(drop),
        PayloadKind::Binary => Ok(()),
    }
}

/// `at` in UTC with microseconds: RFC 3339 (`2023-11-14T22:13:20.000000Z`)
/// for years 0000 to 9999, ISO 8601's expanded years outside them
/// (`+10000-01-01T…`, `-4712-01-01T…` for 4713 BC, astronomical numbering).
/// `None` only past the calendar's ±999,999 years, which Postgres cannot store.
fn iso8601(at: SystemTime) -> Option<String> {
    let nanos = match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).ok()?,
        Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
    };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
    let year = match t.year() {
        y @ 0..=9999 => format!("{y:04}"),
        y => format!("{y:+05}"),
    };
    Some(format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    ))
}

fn json_string(text: &str, out: &mut Vec<u8>) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;
    use serde_json::value::RawValue;

    use super::{iso8601, write_line};
    use crate::event::{OutboxEvent, PayloadKind};

    #[test]
    fn writes_one_parseable_line() {
        let event = OutboxEvent {
            id: "7".into(),
            aggregate_type: "order".into(),
            aggregate_id: "o\"1".into(),
            event_type: "created".into(),
            payload: br#"{"n": 1}"#.to_vec(),
            payload_kind: PayloadKind::Json,
            headers: vec![("trace".into(), "t-1".into())],
            created_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        };
        let mut out = Vec::new();
        write_line(&event, &mut out).expect("line");
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["aggregate_id"], "o\"1");
        assert_eq!(v["payload"]["n"], 1);
        assert_eq!(v["headers"]["trace"], "t-1");
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.000000Z");

        let binary = OutboxEvent {
            payload: vec![0, 255],
            payload_kind: PayloadKind::Binary,
            headers: Vec::new(),
            created_at: None,
            ..event
        };
        let mut out = Vec::new();
        write_line(&binary, &mut out).expect("line");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["payload"], "\\x00ff");
        assert!(v["headers"].is_null());
    }

    #[test]
    fn every_time_postgres_stores_is_written() {
        let at = |secs: i64| {
            let magnitude = Duration::from_secs(secs.unsigned_abs());
            if secs >= 0 {
                SystemTime::UNIX_EPOCH + magnitude
            } else {
                SystemTime::UNIX_EPOCH - magnitude
            }
        };
        let written = |secs| iso8601(at(secs)).expect("in range");
        assert_eq!(written(-1), "1969-12-31T23:59:59.000000Z");
        assert_eq!(written(253_402_300_799), "9999-12-31T23:59:59.000000Z");
        assert_eq!(written(253_402_300_800), "+10000-01-01T00:00:00.000000Z");
        // Postgres's first day, 4713-11-24 BC, and its last year, 294276 AD.
        assert_eq!(written(-210_866_803_200), "-4713-11-24T00:00:00.000000Z");
        assert_eq!(written(9_224_318_015_999), "+294276-12-31T23:59:59.000000Z");
        assert_eq!(written(-62_167_219_200), "0000-01-01T00:00:00.000000Z");
    }

    fn plain() -> OutboxEvent {
        OutboxEvent {
            id: "1".into(),
            aggregate_type: "order".into(),
            aggregate_id: "o-1".into(),
            event_type: "created".into(),
            payload: Vec::new(),
            payload_kind: PayloadKind::Text,
            headers: Vec::new(),
            created_at: None,
        }
    }

    #[test]
    fn payloads_a_line_cannot_carry_are_refused() {
        let text = OutboxEvent {
            payload: vec![b'a', 0xff],
            ..plain()
        };
        let error = write_line(&text, &mut Vec::new()).expect_err("not utf-8");
        assert_eq!((error.reason, error.field.as_str()), ("invalid", "payload"));
        assert!(error.problem.contains("offset 1"), "{error}");
        let json = OutboxEvent {
            payload: b"{\"a\":".to_vec(),
            payload_kind: PayloadKind::Json,
            ..plain()
        };
        let mut out = Vec::new();
        let error = write_line(&json, &mut out).expect_err("not json");
        assert!(error.problem.contains("not JSON"), "{error}");
        assert!(out.is_empty(), "nothing written for a refused event");
        // Valid JSON that no double holds is still inlined as it is.
        let huge = OutboxEvent {
            payload: b"[1e400]".to_vec(),
            ..json
        };
        write_line(&huge, &mut out).expect("json text");
        assert!(
            std::str::from_utf8(&out)
                .expect("utf-8")
                .contains("\"payload\":[1e400]")
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Any event gives one line of valid JSON carrying its fields, or
        /// an event error; never a panic.
        #[test]
        fn any_event_is_a_json_line_or_an_event_error(event in crate::event::arbitrary::event()) {
            let mut out = Vec::new();
            match write_line(&event, &mut out) {
                Err(error) => {
                    prop_assert!(crate::sink::EventError::REASONS.contains(&error.reason));
                    prop_assert!(out.is_empty());
                }
                Ok(()) => {
                    prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
                    let line = std::str::from_utf8(&out).expect("utf-8 line");
                    let fields: std::collections::BTreeMap<String, Box<RawValue>> =
                        serde_json::from_str(line).expect("one JSON object");
                    let string = |name: &str| -> String {
                        serde_json::from_str(fields[name].get()).expect("a string")
                    };
                    prop_assert_eq!(string("event_id"), event.id.clone());
                    prop_assert_eq!(string("aggregate_id"), event.aggregate_id.clone());
                    prop_assert_eq!(string("event_type"), event.event_type.clone());
                    if event.payload_kind == PayloadKind::Json && !event.payload.is_empty() {
                        prop_assert_eq!(fields["payload"].get().as_bytes(), event.payload.trim_ascii());
                    }
                    let headers: serde_json::Value =
                        serde_json::from_str(fields["headers"].get()).expect("headers");
                    prop_assert_eq!(headers.is_null(), event.headers.is_empty());
                    let created: Option<String> =
                        serde_json::from_str(fields["created_at"].get()).expect("time");
                    prop_assert_eq!(created.is_some(), event.created_at.is_some());
                }
            }
        }
    }
}
