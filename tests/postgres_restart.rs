//! PostgreSQL restarts under the relay while events are written: nothing is
//! lost, order holds, duplicates are bounded.

mod support;

use std::time::Duration;

use support::checker::verify;
use support::db::TestDb;
use support::rabbit::TestQueue;
use support::relay::{Relay, RelayConfig};
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
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config.set("source.polling", "batch_size", &BATCH.to_string());
    config.migrate();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;

    let url = db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 3, 800, 10, Duration::from_millis(3)).await },
        );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    restart_postgres();
    let written = writing.await.expect("writers");

    support::eventually(Duration::from_secs(90), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let received = queue.drain(written.len(), Duration::from_secs(60)).await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!("postgres restart: {report}");
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("outbox_relay_reconnects_total{component=\"postgres\"}"),
        "the relay reconnected to postgres"
    );
    queue.delete().await;
}
