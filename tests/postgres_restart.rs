//! PostgreSQL restarts under the relay while events are written: nothing is
//! lost, order holds, duplicates are bounded.

mod support;

use std::time::Duration;

use support::setup::Setup;
use support::{sh, writers};

const BATCH: usize = 100;

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
    let relay = setup.start_relay().await;

    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 3, 800, 10, Duration::from_millis(3)).await },
        );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    restart_postgres();
    let written = writing.await.expect("writers");

    let (report, _) = setup.settle("postgres restart", &written).await;
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("outbox_relay_reconnects_total{component=\"postgres\"}"),
        "the relay reconnected to postgres"
    );
    setup.queue.delete().await;
}
