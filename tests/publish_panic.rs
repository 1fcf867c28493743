//! A panic while publishing is an event failure, not a death: the relay
//! keeps running, the event that panics alone is dead-lettered (`panic`)
//! after `dead_letters.max_attempts`, and the events around it are
//! delivered in order.

mod support;

use std::time::Duration;

use support::eventually;
use support::setup::Setup;

const EVENTS: i64 = 10;
const POISON: i64 = 5;
/// Fault injection of the debug build (see `crash_guard::PANIC_ON_HEADER`).
const PANIC_ON_HEADER: &str = "OUTBOX_TEST_PANIC_ON_HEADER";

/// A panic injected in front of the sink, in the publish call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_injected_panic_dead_letters_the_event() {
    let mut setup = Setup::new(EVENTS as usize).await;
    setup.config.env(PANIC_ON_HEADER, "boom");
    let letter = relay_with_poison(&mut setup, "'{\"boom\": true}'::jsonb").await;
    assert!(letter.starts_with("panic:2:"), "{letter}");
    assert!(letter.contains("fault injection"), "{letter}");
}

/// A panic inside the RabbitMQ client library: a 300-byte header key is
/// longer than an AMQP short string, which amq-protocol-types panics on
/// (issue 13 item 1; once the message builder checks it, it is `too_long`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_the_sink_dead_letters_the_event() {
    let mut setup = Setup::new(EVENTS as usize).await;
    let letter = relay_with_poison(&mut setup, "jsonb_build_object(repeat('k', 300), 'v')").await;
    assert!(
        letter.starts_with("panic:2:") || letter.starts_with("too_long:"),
        "{letter}"
    );
}

/// Writes ten events, the fifth with `headers`, runs one relay until all
/// are marked; checks delivery and that the relay lives on. Returns the
/// dead letter as `reason:attempts:error`.
async fn relay_with_poison(setup: &mut Setup, headers: &str) -> String {
    setup.config.set("dead_letters", "max_attempts", "2");
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'o-1', 'created', jsonb_build_object('i', i), \
                CASE WHEN i = {POISON} THEN {headers} ELSE '{{}}'::jsonb END \
         FROM generate_series(1, {EVENTS}) i"
    ));
    let mut relay = setup.start_relay().await;
    eventually(Duration::from_secs(60), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    assert!(relay.try_wait().is_none(), "the relay is still running");
    let received = setup.queue.drain(9, Duration::from_secs(30)).await;
    let ids: Vec<i64> = received
        .iter()
        .map(|m| m.message_id().parse().expect("numeric id"))
        .collect();
    let distinct = support::checker::first_arrivals(&ids);
    let expected: Vec<i64> = (1..=EVENTS).filter(|i| *i != POISON).collect();
    assert_eq!(distinct, expected, "every other event, in order");
    println!(
        "{} messages for {} events ({} duplicates)",
        ids.len(),
        expected.len(),
        ids.len() - distinct.len()
    );
    assert!(
        ids.len() - distinct.len() <= EVENTS as usize,
        "at most one batch again"
    );
    let letter = setup.db.psql(
        "SELECT string_agg(event_id || ':' || reason || ':' || attempts || ':' || error, ' ') \
         FROM outbox_dead_letters",
    );
    let letter = letter
        .trim()
        .strip_prefix(&format!("{POISON}:"))
        .unwrap_or_else(|| panic!("event {POISON} dead-lettered: {letter}"))
        .to_owned();
    let sample = "outbox_relay_dead_letters_total{reason=\"panic\",sink=\"rabbitmq\"}";
    let count = relay.metric(sample).await;
    assert!(count.is_some(), "{sample} is exported");
    if letter.starts_with("panic") {
        assert_eq!(count, Some(1.0), "{sample}");
        assert!(
            relay.log_text().contains("panic while publishing"),
            "the panic hook logged the events in flight"
        );
    }
    relay.sigterm(Duration::from_secs(10));
    letter
}
