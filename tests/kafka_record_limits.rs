//! Row values a Kafka record cannot carry (a topic name Kafka refuses, a
//! record over the producer's `message.max.bytes`) are dead-lettered with a
//! reason naming the field and the limit, before librdkafka sees them; the
//! events of the aggregate behind them are delivered in order. A created_at
//! before 1970 is no time (README: Limits and errors): that event goes out
//! without one, and a far-future timestamp goes out as it is.

mod support;

use std::time::Duration;

use support::eventually;
use support::kafka::{KafkaSetup, read_all};

/// 9999-12-31T00:00:00Z in milliseconds.
const YEAR_9999_MS: i64 = 253_402_214_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn values_a_record_cannot_carry_are_dead_lettered_and_the_rest_flow() {
    let setup = KafkaSetup::new(10).await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, created_at) VALUES \
         ('order', 'a', 'created', '{\"i\":1}', now()), \
         ('order', 'a', 'created', '{\"i\":2}', '1960-01-01 00:00:00+00'), \
         ('order', 'a', 'created', '{\"i\":3}', '9999-12-31 00:00:00+00'), \
         ('ord er', 'a', 'created', '{\"i\":4}', now()), \
         ('order', 'a', 'created', jsonb_build_object('pad', repeat('x', 1000000)), now()), \
         ('order', 'a', 'created', '{\"i\":6}', now())",
    );
    let relay = setup.start_relay().await;
    eventually(Duration::from_secs(60), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;

    let letters = setup.db.psql(
        "SELECT string_agg(event_id || ' ' || reason || ' ' || attempts, ',' ORDER BY event_id::int) \
         FROM outbox_dead_letters",
    );
    assert_eq!(letters.trim(), "4 invalid 3,5 oversized 3");
    let errors = setup
        .db
        .psql("SELECT string_agg(error, '|' ORDER BY event_id::int) FROM outbox_dead_letters");
    for part in [
        "topic: ",
        "not a legal Kafka topic name",
        "record (key 1 bytes, payload 100",
        "message.max.bytes (1000000)",
    ] {
        assert!(errors.contains(part), "`{part}` in {errors}");
    }
    assert_eq!(
        relay
            .metric("outbox_relay_dead_letters_total{reason=\"invalid\",sink=\"kafka\"}")
            .await,
        Some(1.0)
    );

    let (topic, brokers) = (setup.topic.clone(), setup.brokers.clone());
    let records =
        tokio::task::spawn_blocking(move || read_all(&brokers, &topic, 4, Duration::from_secs(30)))
            .await
            .expect("reader");
    let mut ids: Vec<String> = records.iter().map(|r| r.event_id()).collect();
    ids.dedup();
    assert_eq!(ids, ["1", "2", "3", "6"]);
    let far = records
        .iter()
        .find(|r| r.event_id() == "3")
        .expect("event 3");
    assert_eq!(far.timestamp, Some(YEAR_9999_MS));
}
