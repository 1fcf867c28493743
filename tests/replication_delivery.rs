//! Replication mode end to end: concurrent writers' events and table-less
//! logical messages (PostgreSQL 14 and later) reach RabbitMQ in commit order, rows are marked, and the
//! slot advances to the server's position once nothing is pending (on a
//! cluster of the test's own: other tests' writes on the shared server
//! would keep moving that position).

mod support;

use std::time::Duration;

use support::cluster::TempCluster;
use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_rows_and_messages_and_advances_the_slot() {
    let cluster = TempCluster::logical();
    let setup = Setup::replication_on(&cluster.url(), &support::rabbit::url(), 200).await;
    let relay = setup.start_relay().await;

    let written = writers::write(&setup.db.url, 4, 500, 5, Duration::ZERO).await;
    let (report, _) = setup.settle("replication delivery", &written).await;
    assert_eq!(report.duplicates, 0, "no failures, so no duplicates");

    if setup.db.server_major() < 14 {
        // pgoutput sends logical messages since PostgreSQL 14: the relay
        // says they are not published, and streams the rows.
        let log = relay.log_text();
        assert!(log.contains("streams no logical messages"), "{log}");
        return;
    }
    setup.db.psql(
        "SELECT pg_logical_emit_message(true, 'outbox', \
         '{\"aggregate_type\":\"cart\",\"aggregate_id\":\"c-1\",\"event_type\":\"checked_out\",\
           \"payload\":{\"total\":42},\"headers\":{\"tenant\":\"acme\"}}')",
    );
    let received = setup.queue.drain(1, Duration::from_secs(30)).await;
    let m = &received[0];
    assert_eq!(m.routing_key, "cart.checked_out");
    assert_eq!(m.json()["total"], 42);
    assert_eq!(m.header("aggregate_id").as_deref(), Some("c-1"));
    assert_eq!(m.header("tenant").as_deref(), Some("acme"));

    let slot = setup.db.name.clone();
    support::eventually(
        Duration::from_secs(20),
        "slot caught up with the server",
        || {
            let db = &setup.db;
            let slot = slot.clone();
            async move {
                db.psql(&format!(
                    "SELECT confirmed_flush_lsn >= pg_current_wal_insert_lsn() - 1024 \
                 FROM pg_replication_slots WHERE slot_name = '{slot}'"
                ))
                .trim()
                    == "t"
            }
        },
    )
    .await;
    setup.queue.delete().await;
}
