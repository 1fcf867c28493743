//! SIGTERM stops the relay with exit status 0 within the grace period; every
//! row it marked was delivered, and a restart delivers the rest.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::checker::verify;
use support::db::TestDb;
use support::rabbit::TestQueue;
use support::relay::{Relay, RelayConfig};
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_exits_cleanly_and_loses_nothing() {
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config
        .set("", "shutdown_grace", "\"3s\"")
        .set("source.polling", "batch_size", "50");
    config.migrate();
    let written = writers::write(&db.url, 2, 1500, 5, Duration::ZERO).await;

    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let status = relay
        .sigterm(Duration::from_secs(5))
        .expect("relay exits within grace + 2s");
    assert_eq!(status.code(), Some(0), "exit status");
    println!("stopped {:?} after SIGTERM", asked.elapsed());
    assert!(relay.log_text().contains("shutting down"));

    let marked: HashSet<String> = db
        .psql("SELECT id FROM outbox WHERE sent_at IS NOT NULL")
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!marked.is_empty(), "some rows were relayed before the stop");
    assert!(marked.len() < written.len(), "the stop came mid-backlog");

    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    support::eventually(Duration::from_secs(60), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let received = queue.drain(written.len(), Duration::from_secs(60)).await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!("graceful shutdown: {report}");
    assert_eq!(report.duplicates, 0, "a clean stop repeats nothing");
    queue.delete().await;
}
