//! RabbitMQ stops mid-stream and comes back: nothing is lost, order holds,
//! duplicates are counted and bounded.

mod support;

use std::time::Duration;

use support::rabbit::BrokerOutage;
use support::setup::Setup;
use support::writers;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_loses_nothing() {
    let setup = Setup::new(BATCH).await;
    let relay = setup.start_relay().await;

    // About 6 s of writes; the broker is away for 3 s in the middle.
    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 3, 1000, 10, Duration::from_millis(5)).await },
        );
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let _outage = BrokerOutage::begin();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            setup.db.unsent().await > 0,
            "rows must wait while the broker is down"
        );
    }
    let written = writing.await.expect("writers");

    let (report, _) = setup.settle("broker outage", &written).await;
    // One outage can cost at most the batch in flight when it began and the
    // probing batches after it.
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("outbox_relay_reconnects_total{component=\"broker\"}"),
        "the outage is visible in the metrics"
    );
    setup.queue.delete().await;
}
