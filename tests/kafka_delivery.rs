//! Events from concurrent writers all reach Kafka with the right topic, key,
//! headers and value; per-key order holds within each partition.

mod support;

use std::time::Duration;

use support::kafka::KafkaSetup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_delivered_keyed_and_ordered() {
    let setup = KafkaSetup::new(500).await;
    let relay = setup.start_relay().await;

    let written = writers::write(&setup.db.url, 4, 500, 5, Duration::ZERO).await;
    let (report, records) = setup.settle("kafka delivery", &written).await;
    assert_eq!(report.duplicates, 0, "no failures, so no duplicates");

    let mut partitions_of_key = std::collections::HashMap::new();
    for r in &records {
        assert_eq!(r.topic, setup.topic);
        let value: serde_json::Value = serde_json::from_slice(&r.payload).expect("json value");
        let aggregate = value["aggregate"].as_str().expect("aggregate");
        assert_eq!(r.key.as_deref(), Some(aggregate), "key is the aggregate id");
        assert_eq!(r.headers["event_type"], "created");
        assert_eq!(r.headers["aggregate_type"], "order");
        assert_eq!(r.headers["aggregate_id"], aggregate);
        assert_eq!(r.headers["tenant"], "acme");
        let key = value["key"].as_str().expect("key");
        assert_eq!(r.headers["trace"], format!("t-{key}"));
        assert!(r.timestamp.is_some_and(|t| t > 0), "timestamp = created_at");
        let first = partitions_of_key
            .entry(aggregate.to_owned())
            .or_insert(r.partition);
        assert_eq!(*first, r.partition, "one key, one partition");
    }
    let published = relay
        .metric("outbox_relay_events_published_total{sink=\"kafka\"}")
        .await
        .expect("published metric");
    assert!(published >= written.len() as f64);
}
