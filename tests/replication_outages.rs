//! Replication mode through a broker outage and a Postgres restart: the slot
//! redelivers what was not confirmed; nothing lost, order kept, duplicates
//! bounded. With `mark = "none"` rows are left alone and only the slot moves.
//! The outages hit a cluster and a RabbitMQ node of the test's own.

mod support;

use std::time::Duration;

use support::cluster::TempCluster;
use support::rabbit_node::RabbitNode;
use support::scenarios::outage;
use support::setup::Setup;
use support::writers;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_outage_then_postgres_restart() {
    let cluster = TempCluster::logical();
    let node = RabbitNode::start();
    let setup = Setup::replication_on(&cluster.url(), &node.url, BATCH).await;
    outage(&setup, "replication broker outage", BATCH, || node.outage()).await;
    // Earlier messages are already drained from the queue; count anew.
    let metrics = outage(&setup, "replication postgres restart", BATCH, || {
        cluster.restart()
    })
    .await;
    assert!(metrics.contains("outbox_relay_replication_slot_lag_bytes"));
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mark_none_leaves_rows_and_moves_the_slot() {
    let mut setup = Setup::replication(BATCH).await;
    setup.config.set("outbox", "mark", "\"none\"");
    let relay = setup.start_relay().await;
    // With mark = none the stream starts at the slot, and /readyz can
    // answer before the relay made it: write only once it exists.
    let slot = setup.db.name.clone();
    support::eventually(Duration::from_secs(30), "the slot exists", || async {
        setup
            .db
            .count(&format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ))
            .await
            == 1
    })
    .await;
    let written = writers::write(&setup.db.url, 2, 100, 2, Duration::ZERO).await;
    let received = setup
        .queue
        .drain(written.len(), Duration::from_secs(30))
        .await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = support::checker::verify(&written, &ids);
    println!("replication mark=none: {report}");
    assert_eq!(
        setup.db.unsent().await,
        written.len() as i64,
        "rows untouched"
    );
    drop(relay);
    setup.queue.delete().await;
}
