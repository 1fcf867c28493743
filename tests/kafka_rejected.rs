//! An event Kafka can never take (larger than the producer's message size
//! limit) stops the relay with a clear error naming it; the events before it
//! are delivered and marked, it and those after it stay unsent.

mod support;

use support::kafka::KafkaSetup;
use support::relay::{Relay, run_to_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_event_stops_the_relay_without_marking_it() {
    let mut setup = KafkaSetup::new(10).await;
    setup
        .config
        .set("sink.kafka.librdkafka", "\"message.max.bytes\"", "\"5000\"");
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a', 'created', jsonb_build_object('i', i, 'pad', \
                CASE WHEN i = 5 THEN repeat('x', 20000) ELSE '' END) \
         FROM generate_series(1, 8) i",
    );
    let (code, log) = run_to_exit(Relay::start(&setup.config)).await;
    assert_eq!(code, Some(1), "log:\n{log}");
    assert!(
        log.contains("rejected event 5"),
        "the error names the event:\n{log}"
    );
    assert!(
        log.contains("too large") || log.contains("size"),
        "and why:\n{log}"
    );
    assert_eq!(
        setup
            .db
            .psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM outbox WHERE sent_at IS NULL")
            .trim(),
        "5,6,7,8"
    );
}
