//! The relay is SIGKILLed mid-stream while publishing to Kafka, twice, and
//! restarted: nothing is lost, duplicates are counted and bounded.

mod support;

use std::time::Duration;

use support::kafka::KafkaSetup;
use support::writers;

const BATCH: usize = 200;
const KILLS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_restart_loses_nothing() {
    let setup = KafkaSetup::new(BATCH).await;
    let mut relay = setup.start_relay().await;

    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 1250, 10, Duration::from_millis(1)).await },
        );
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        relay.sigkill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay = setup.start_relay().await;
    }
    let written = writing.await.expect("writers");

    let (report, _) = setup
        .settle(&format!("kafka relay crash x{KILLS}"), &written)
        .await;
    assert!(
        report.duplicates <= KILLS * BATCH,
        "too many duplicates: {report}"
    );
    drop(relay);
}
