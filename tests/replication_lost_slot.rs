//! A slot Postgres invalidated (`lost`, past `max_slot_wal_keep_size`) is
//! reported with what to do, never silently replaced; `recover-slot` gets
//! the relay going again. With `on_lost_slot = "recover"` the relay does
//! that by itself, publishing every unsent row before it streams. The
//! tests change the settings of a cluster of their own.

mod support;

use std::time::Duration;

use support::cluster::TempCluster;
use support::relay::{Relay, run_to_exit};
use support::setup::Setup;
use support::writers;

/// Delivers 20 rows, stops the relay, writes 20 more and has Postgres
/// invalidate the slot; returns every row written.
async fn lose_the_slot(cluster: &TempCluster, setup: &Setup) -> Vec<writers::Written> {
    let mut relay = setup.start_relay().await;
    let mut written = writers::write(&setup.db.url, 1, 20, 1, Duration::ZERO).await;
    setup.settle("before the slot was lost", &written).await;
    relay.sigterm(Duration::from_secs(10)).expect("stops");
    written.extend(writers::write(&setup.db.url, 1, 20, 1, Duration::ZERO).await);
    cluster.psql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
    cluster.psql("SELECT pg_reload_conf()");
    setup.db.psql("CREATE TABLE filler (body text)");
    let slot = setup.db.name.clone();
    let mut lost = false;
    for _ in 0..20 {
        setup.db.psql(
            "INSERT INTO filler SELECT repeat('z', 1000) FROM generate_series(1, 20000); \
             SELECT pg_switch_wal(); CHECKPOINT",
        );
        let status = setup.db.psql(&format!(
            "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ));
        if status.trim() == "lost" {
            lost = true;
            break;
        }
    }
    assert!(lost, "the slot was invalidated");
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_slot_is_a_clear_error_until_recovered() {
    let cluster = TempCluster::logical();
    let setup = Setup::replication_on(&cluster.url(), &support::rabbit::url(), 100).await;
    lose_the_slot(&cluster, &setup).await;
    let (code, log) = run_to_exit(Relay::start(&setup.config)).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("is lost") && log.contains("recover-slot"),
        "{log}"
    );
    cluster.psql("ALTER SYSTEM RESET max_slot_wal_keep_size");
    cluster.psql("SELECT pg_reload_conf()");

    let out = setup.config.command("recover-slot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped slot"));
    let _relay = setup.start_relay().await;
    let unsent = setup.db.unsent().await;
    assert!(unsent >= 0, "the relay runs again after recover-slot");
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_lost_slot_recover_publishes_every_unsent_row_by_itself() {
    let cluster = TempCluster::logical();
    let mut setup = Setup::replication_on(&cluster.url(), &support::rabbit::url(), 100).await;
    setup
        .config
        .set("source.replication", "on_lost_slot", "\"recover\"");
    let written = lose_the_slot(&cluster, &setup).await;
    cluster.psql("ALTER SYSTEM RESET max_slot_wal_keep_size");
    cluster.psql("SELECT pg_reload_conf()");

    let relay = setup.start_relay().await;
    // The first 20 arrived before; the relay publishes the 20 unsent ones.
    let (report, _) = setup
        .settle("after the slot was recreated", &written[20..])
        .await;
    assert_eq!(report.written, 20);
    let recoveries = relay
        .metric("outbox_relay_replication_slot_recoveries_total{reason=\"lost\"}")
        .await;
    assert_eq!(recoveries, Some(1.0), "the recovery is counted");
    let log = relay.log_text();
    assert!(
        log.contains("replication slot lost: creating it again"),
        "the recovery is logged: {log}"
    );
    let slot = setup.db.name.clone();
    let status = setup.db.psql(&format!(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'"
    ));
    assert_ne!(status.trim(), "lost", "a new slot streams");
    setup.queue.delete().await;
}
