//! SIGTERM stops the relay with exit status 0 within the grace period; every
//! row it marked was delivered, and a restart delivers the rest.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::relay::Relay;
use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_exits_cleanly_and_loses_nothing() {
    let mut setup = Setup::new(50).await;
    setup.config.set("", "shutdown_grace", "\"3s\"");
    let db = &setup.db;
    let written = writers::write(&db.url, 2, 1500, 5, Duration::ZERO).await;

    let mut relay = Relay::start(&setup.config);
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

    let _relay = setup.start_relay().await;
    let (report, _) = setup.settle("graceful shutdown", &written).await;
    assert_eq!(report.duplicates, 0, "a clean stop repeats nothing");
    setup.queue.delete().await;
}
