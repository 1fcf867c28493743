//! The Kafka broker stops mid-stream and comes back: nothing is lost,
//! per-key order holds, duplicates are counted and bounded. The test crashes
//! a broker of its own.

mod support;

use support::kafka::KafkaSetup;
use support::scenarios::outage;
use support::tansu::PrivateTansu;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_loses_nothing() {
    let broker = PrivateTansu::start();
    let setup = KafkaSetup::on(&broker.address, BATCH).await;
    outage(&setup, "kafka broker outage", BATCH, || broker.outage()).await;
}
