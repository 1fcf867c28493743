//! Events from several concurrent writers all reach RabbitMQ with the right
//! properties and headers, and every row is marked sent.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_delivered_with_properties() {
    let setup = Setup::new(500).await;
    let relay = setup.start_relay().await;

    let written = writers::write(&setup.db.url, 4, 500, 5, Duration::ZERO).await;
    let (report, received) = setup.settle("delivery", &written).await;
    assert_eq!(report.duplicates, 0, "no failures, so no duplicates");

    let created: HashMap<String, i64> = setup
        .db
        .psql("SELECT id, extract(epoch FROM created_at)::int8 FROM outbox")
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(id, t)| (id.to_owned(), t.parse().expect("epoch")))
        .collect();
    for m in &received {
        let id = m.message_id();
        let body = m.json();
        let aggregate = body["aggregate"].as_str().expect("aggregate in payload");
        let p = &m.properties;
        assert_eq!(m.routing_key, "order.created");
        assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("created"));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(*p.delivery_mode(), Some(2));
        let at = p.timestamp().expect("timestamp") as i64;
        assert!((at - created[&id]).abs() <= 1, "timestamp of {id}");
        assert_eq!(m.header("event_id").as_deref(), Some(id.as_str()));
        assert_eq!(m.header("aggregate_type").as_deref(), Some("order"));
        assert_eq!(m.header("aggregate_id").as_deref(), Some(aggregate));
        assert_eq!(m.header("event_type").as_deref(), Some("created"));
        assert_eq!(m.header("tenant").as_deref(), Some("acme"));
        let key = body["key"].as_str().expect("key");
        assert_eq!(m.header("trace"), Some(format!("t-{key}")));
    }

    let published = relay
        .metric("outbox_relay_events_published_total{sink=\"rabbitmq\"}")
        .await
        .expect("published metric");
    assert!(
        published >= written.len() as f64,
        "published metric {published}"
    );
    assert_eq!(
        relay.metric("outbox_relay_events_acknowledged_total").await,
        Some(written.len() as f64)
    );
    support::eventually(Duration::from_secs(5), "backlog gauge at 0", || async {
        relay.metric("outbox_relay_backlog_events").await == Some(0.0)
    })
    .await;
    setup.queue.delete().await;
}
