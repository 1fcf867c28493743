//! With tracing on, every event published to RabbitMQ gets a producer span
//! whose context its message carries as `traceparent`/`tracestate` AMQP
//! headers. A row holding its writer's `traceparent` continues that trace
//! (the writer's span is the publish span's parent); a row without one, or
//! with a malformed one, gets a child span of its batch.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use outbox_relay::sink::RabbitMqSink;
use support::db::TestDb;
use support::rabbit::{QueueCleanup, TestQueue};
use support::spans::{self, Spans};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_spans_continue_the_rows_trace_into_amqp_headers() {
    let spans = Spans::install();
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    let _cleanup = QueueCleanup::of(&queue);
    let mut config = spans::config(&db);
    config.sink.rabbitmq.exchange = queue.exchange.clone();
    config.sink.rabbitmq.declare_exchange = true;

    let sink = RabbitMqSink::new(&config.sink.rabbitmq).expect("sink");
    spans::insert_rows(&config, &db).await;
    spans::relay_all(&config, sink).await;

    let received = queue.drain(3, Duration::from_secs(30)).await;
    assert_eq!(received.len(), 3);
    let messages: HashMap<String, HashMap<String, String>> = received
        .iter()
        .map(|m| {
            let headers = ["traceparent", "tracestate", "tenant"]
                .into_iter()
                .filter_map(|name| Some((name.to_owned(), m.header(name)?)))
                .collect();
            (m.message_id(), headers)
        })
        .collect();
    spans::check(&spans.finished(), "rabbitmq", &messages);
}
