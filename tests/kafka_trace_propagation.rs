//! With tracing on, every event published to Kafka gets a producer span
//! whose context its record carries as `traceparent`/`tracestate` Kafka
//! headers. A row holding its writer's `traceparent` continues that trace;
//! a row without one, or with a malformed one, gets a child span of its
//! batch.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use outbox_relay::sink::KafkaSink;
use support::db::TestDb;
use support::kafka::{brokers, create_topic, read_all};
use support::spans::{self, Spans};
use support::unique;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_spans_continue_the_rows_trace_into_kafka_headers() {
    let spans = Spans::install();
    let db = TestDb::new();
    let prefix = unique("outbox_test");
    let topic = format!("{prefix}.order");
    let brokers = brokers();
    create_topic(&brokers, &topic, 1).await;
    let mut config = spans::config(&db);
    config.sink.kind = outbox_relay::config::SinkKind::Kafka;
    config.sink.kafka.brokers = brokers.clone();
    config.sink.kafka.topic = format!("{prefix}.{{aggregate_type}}");

    let sink = KafkaSink::new(&config.sink.kafka).expect("sink");
    spans::insert_rows(&config, &db).await;
    spans::relay_all(&config, sink).await;

    let records =
        tokio::task::spawn_blocking(move || read_all(&brokers, &topic, 3, Duration::from_secs(30)))
            .await
            .expect("reader");
    assert_eq!(records.len(), 3);
    let messages: HashMap<String, HashMap<String, String>> = records
        .into_iter()
        .map(|r| (r.event_id(), r.headers))
        .collect();
    spans::check(&spans.finished(), "kafka", &messages);
}
