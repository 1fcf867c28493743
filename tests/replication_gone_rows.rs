//! Replication mode streams rows that are gone by the time they are marked
//! (here: truncated while the relay was stopped). The mark must tell "not
//! visible yet" (the writing transaction is still finishing its commit)
//! from "gone" without a fixed wait per batch, so the rows written after
//! the TRUNCATE are marked within moments, not after 5 s per batch.

mod support;

use std::time::{Duration, Instant};

use support::rabbit::QueueCleanup;
use support::setup::Setup;

const BATCH: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncated_backlog_costs_no_wait() {
    let setup = Setup::replication(BATCH).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    let mut relay = setup.start_relay().await;
    relay.sigterm(Duration::from_secs(10));

    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'gone-' || (g % 10), 'created', '{}' FROM generate_series(1, 5000) g",
    );
    setup.db.psql("TRUNCATE outbox");
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'kept', 'created', '{}' FROM generate_series(1, 10) g",
    );

    let started = Instant::now();
    let relay = setup.start_relay().await;
    support::eventually(
        Duration::from_secs(90),
        "the 10 new rows marked",
        || async { setup.db.unsent().await == 0 },
    )
    .await;
    let elapsed = started.elapsed();
    println!("10 rows after a truncated backlog of 5000 marked {elapsed:?} after the start");
    assert!(
        elapsed < Duration::from_secs(15),
        "marking took {elapsed:?}: a wait per batch of gone rows"
    );
    let log = relay.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("not found to mark"))
        .collect();
    assert!(!warnings.is_empty(), "the gone rows are reported");
    assert!(
        warnings.iter().all(|l| l.len() < 600),
        "one short line per batch, not every id: {}",
        warnings[0]
    );
}
