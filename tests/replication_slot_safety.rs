//! A slot the relay created that disappears is a loud error, never silently
//! re-created; `recover-slot` recreates it and every unsent row is published.

mod support;

use std::time::Duration;

use support::relay::{Relay, run_to_exit};
use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vanished_slot_stops_the_relay_until_recovered() {
    let setup = Setup::replication(100).await;
    let mut relay = setup.start_relay().await;
    let first = writers::write(&setup.db.url, 1, 50, 2, Duration::ZERO).await;
    setup.settle("before the slot vanished", &first).await;
    relay.sigterm(Duration::from_secs(10)).expect("stops");

    let slot = &setup.db.name;
    setup
        .db
        .psql(&format!("SELECT pg_drop_replication_slot('{slot}')"));
    let second = writers::write(&setup.db.url, 1, 50, 2, Duration::ZERO).await;

    let (code, log) = run_to_exit(Relay::start(&setup.config)).await;
    assert_eq!(code, Some(1), "log:\n{log}");
    assert!(
        log.contains("does not exist on this server") && log.contains("recover-slot"),
        "{log}"
    );

    let out = setup.config.command("recover-slot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let _relay = setup.start_relay().await;
    let (report, _) = setup.settle("after recover-slot", &second).await;
    assert_eq!(report.duplicates, 0);
    setup.queue.delete().await;
}
