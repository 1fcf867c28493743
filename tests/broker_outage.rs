//! RabbitMQ stops mid-stream and comes back: nothing is lost, order holds,
//! duplicates are counted and bounded. The test stops a node of its own.

mod support;

use support::rabbit_node::RabbitNode;
use support::relay::sample_value;
use support::scenarios::outage;
use support::setup::Setup;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_restart_loses_nothing() {
    let node = RabbitNode::start();
    let setup = Setup::on(&support::db::server(), &node.url, BATCH).await;
    let metrics = outage(&setup, "broker outage", BATCH, || node.outage()).await;
    // The series exists from startup at 0; the outage counts.
    let reconnects = sample_value(
        &metrics,
        "outbox_relay_reconnects_total{component=\"broker\"}",
    );
    assert!(
        reconnects.unwrap_or(0.0) > 0.0,
        "the outage is visible in the metrics"
    );
    setup.queue.delete().await;
}
