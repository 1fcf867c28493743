//! The relay is SIGKILLed mid-stream while publishing to Kafka, twice, and
//! restarted: nothing is lost, duplicates are counted and bounded.

mod support;

use support::kafka::KafkaSetup;
use support::scenarios::crash_and_restart;

const BATCH: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_restart_loses_nothing() {
    let setup = KafkaSetup::new(BATCH).await;
    crash_and_restart(&setup, "kafka relay crash", 2, BATCH).await;
}
