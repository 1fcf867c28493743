//! The Kafka broker stops mid-stream and comes back: nothing is lost,
//! per-key order holds, duplicates are counted and bounded.

mod support;

use support::kafka::{KafkaOutage, KafkaSetup};
use support::scenarios::outage;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_loses_nothing() {
    let setup = KafkaSetup::new(BATCH).await;
    outage(&setup, "kafka broker outage", BATCH, KafkaOutage::begin).await;
}
