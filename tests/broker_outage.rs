//! RabbitMQ stops mid-stream and comes back: nothing is lost, order holds,
//! duplicates are counted and bounded.

mod support;

use std::time::Duration;

use support::checker::verify;
use support::db::TestDb;
use support::rabbit::{BrokerOutage, TestQueue};
use support::relay::{Relay, RelayConfig};
use support::writers;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_loses_nothing() {
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config.set("source.polling", "batch_size", &BATCH.to_string());
    config.migrate();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;

    // About 6 s of writes; the broker is away for 3 s in the middle.
    let url = db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 3, 1000, 10, Duration::from_millis(5)).await },
        );
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let _outage = BrokerOutage::begin();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            db.unsent().await > 0,
            "rows must wait while the broker is down"
        );
    }
    let written = writing.await.expect("writers");

    support::eventually(Duration::from_secs(90), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let received = queue.drain(written.len(), Duration::from_secs(60)).await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!("broker outage: {report}");
    // One outage can cost at most the batches in flight when it began and the
    // probing batches after it.
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
    let failures = relay.metrics().await;
    assert!(
        failures.contains("outbox_relay_publish_failures_total")
            || failures.contains("outbox_relay_reconnects_total{component=\"broker\"}"),
        "the outage is visible in the metrics"
    );
    queue.delete().await;
}
