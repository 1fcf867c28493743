//! `source.replication.failover`: on 17 the slot is made a failover slot
//! (`auto` and `true`) or a plain one (`false`), also when it already
//! exists; before 17 `true` stops the relay with the key and the version,
//! and `check` says the same.

mod support;

use std::time::Duration;

use support::cluster::TempCluster;
use support::relay::{Relay, check_line, run_to_exit};
use support::setup::Setup;
use support::standby::pg_bin_of;
use support::writers;

fn slot_failover(cluster: &TempCluster, slot: &str) -> String {
    cluster
        .psql(&format!(
            "SELECT failover FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn true_before_17_names_the_key_and_the_version() {
    let cluster = TempCluster::logical_from(&pg_bin_of(15));
    let mut setup = Setup::replication_on(&cluster.url(), &support::rabbit::url(), 100).await;
    setup.config.set("source.replication", "failover", "true");
    let (ok, text) = setup.config.check();
    assert!(!ok, "{text}");
    let line = check_line(&text, "replication slot");
    assert!(
        line.starts_with("FAIL") && line.contains("failover = true needs PostgreSQL 17"),
        "{text}"
    );
    let (code, log) = run_to_exit(Relay::start(&setup.config)).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("source.replication.failover = true needs PostgreSQL 17 or newer")
            && log.contains("this server is 15."),
        "{log}"
    );
    // `auto` is a plain slot there, and delivers.
    setup
        .config
        .set("source.replication", "failover", "\"auto\"");
    let _relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 20, 2, Duration::ZERO).await;
    setup.settle("failover = auto on 15", &written).await;
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_17_the_setting_decides_what_the_slot_is() {
    let cluster = TempCluster::logical_from(&pg_bin_of(17));
    let setup = Setup::replication_on(&cluster.url(), &support::rabbit::url(), 100).await;
    let slot = setup.db.name.clone();
    let mut relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 20, 2, Duration::ZERO).await;
    setup.settle("failover = auto on 17", &written).await;
    assert_eq!(
        slot_failover(&cluster, &slot),
        "t",
        "auto makes a failover slot"
    );
    let (_, text) = setup.config.check();
    assert!(
        check_line(&text, "replication slot").contains(", failover slot"),
        "{text}"
    );
    relay.sigterm(Duration::from_secs(10)).expect("stops");

    let mut setup = setup;
    setup.config.set("source.replication", "failover", "false");
    let (_, text) = setup.config.check();
    assert!(
        check_line(&text, "replication slot").contains("the next start makes it a plain slot"),
        "{text}"
    );
    let mut relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 20, 2, Duration::ZERO).await;
    setup.settle("failover = false on 17", &written).await;
    assert_eq!(slot_failover(&cluster, &slot), "f", "false makes it plain");
    relay.sigterm(Duration::from_secs(10)).expect("stops");

    setup.config.set("source.replication", "failover", "true");
    let _relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 20, 2, Duration::ZERO).await;
    setup.settle("failover = true on 17", &written).await;
    assert_eq!(
        slot_failover(&cluster, &slot),
        "t",
        "true makes it a failover slot again"
    );
    setup.queue.delete().await;
}
