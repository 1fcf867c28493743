//! PostgreSQL restarts under the relay while events are written: nothing is
//! lost, order holds, duplicates are bounded.

mod support;

use support::scenarios::outage;
use support::setup::Setup;
use support::sh;

const BATCH: usize = 100;

/// Restarting is the outage: it is over by the time the guard drops.
fn restart_postgres() {
    let version = sh("sh", &["-c", "ls /etc/postgresql | sort -n | tail -1"]);
    sh(
        "pg_ctlcluster",
        &[
            "--skip-systemctl-redirect",
            version.trim(),
            "main",
            "restart",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_loses_nothing() {
    let setup = Setup::new(BATCH).await;
    let metrics = outage(&setup, "postgres restart", BATCH, restart_postgres).await;
    assert!(
        metrics.contains("outbox_relay_reconnects_total{component=\"postgres\"}"),
        "the relay reconnected to postgres"
    );
    setup.queue.delete().await;
}
