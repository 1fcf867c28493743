//! The Kafka broker stops mid-stream and comes back: nothing is lost,
//! per-key order holds, duplicates are counted and bounded.

mod support;

use std::time::Duration;

use support::kafka::{KafkaOutage, KafkaSetup};
use support::writers;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_loses_nothing() {
    let setup = KafkaSetup::new(BATCH).await;
    let _relay = setup.start_relay().await;

    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 3, 1000, 10, Duration::from_millis(5)).await },
        );
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        let _outage = KafkaOutage::begin();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            setup.db.unsent().await > 0,
            "rows wait while the broker is down"
        );
    }
    let written = writing.await.expect("writers");

    let (report, _) = setup.settle("kafka broker outage", &written).await;
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
}
