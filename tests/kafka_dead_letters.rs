//! An event Kafka can never take (larger than the producer's message size
//! limit) goes to the dead-letter table with its reason, and the events
//! behind it, of the same aggregate, are delivered in order.

mod support;

use std::time::Duration;

use support::eventually;
use support::kafka::{KafkaSetup, read_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_event_is_dead_lettered_and_the_rest_flow() {
    let mut setup = KafkaSetup::new(10).await;
    setup
        .config
        .set("sink.kafka.librdkafka", "\"message.max.bytes\"", "\"5000\"")
        .set("dead_letters", "max_attempts", "2")
        .set("retry", "initial_backoff", "\"50ms\"");
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a', 'created', jsonb_build_object('i', i, 'pad', \
                CASE WHEN i = 5 THEN repeat('x', 20000) ELSE '' END) \
         FROM generate_series(1, 8) i",
    );
    let relay = setup.start_relay().await;
    eventually(Duration::from_secs(60), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;

    let (topic, brokers) = (setup.topic.clone(), setup.brokers.clone());
    let records =
        tokio::task::spawn_blocking(move || read_all(&brokers, &topic, 7, Duration::from_secs(30)))
            .await
            .expect("reader");
    let mut ids: Vec<String> = records.iter().map(|r| r.event_id()).collect();
    ids.dedup();
    assert_eq!(ids, ["1", "2", "3", "4", "6", "7", "8"]);

    let letter = setup.db.psql(
        "SELECT event_id || ' ' || reason || ' ' || attempts || ' ' || sink || ' ' || \
                (row_data IS NOT NULL) || ' ' || (error LIKE '%message.max.bytes (5000)%') \
         FROM outbox_dead_letters",
    );
    assert_eq!(letter.trim(), "5 oversized 2 kafka true true");
    assert_eq!(
        relay
            .metric("outbox_relay_dead_letters_total{reason=\"oversized\",sink=\"kafka\"}")
            .await,
        Some(1.0)
    );
    eventually(Duration::from_secs(10), "the pending gauge", || async {
        relay.metric("outbox_relay_dead_letters_pending").await == Some(1.0)
    })
    .await;
    let listed = setup.config.run_ok(&["dead-letters", "list"]);
    assert!(
        listed.contains("oversized") && listed.contains("order/a"),
        "{listed}"
    );
}
