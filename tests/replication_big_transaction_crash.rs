//! Replication mode: the relay is SIGKILLed in the middle of one large
//! transaction and restarted. The slot can only resume at a transaction
//! boundary, so the whole transaction is streamed again; the relay's own
//! progress record says how many of its events were already confirmed, and
//! those are skipped. Every row arrives, order holds, and at most about the
//! batch in flight at the kill is published twice, whatever `outbox.mark`.

mod support;

use std::time::{Duration, Instant};

use support::checker::verify;
use support::rabbit::QueueCleanup;
use support::relay::Relay;
use support::setup::Setup;
use support::writers;

const BATCH: usize = 500;
const ROWS: usize = 20_000;
/// Confirmed events before the kill: well inside the transaction.
const KILL_AFTER: f64 = 8_000.0;
const PUBLISHED: &str = "outbox_relay_events_published_total{sink=\"rabbitmq\"}";

async fn crash_inside_a_transaction(mark: &str) {
    let mut setup = Setup::replication(BATCH).await;
    setup.config.set("outbox", "mark", &format!("\"{mark}\""));
    let _cleanup = QueueCleanup::of(&setup.queue);
    let mut relay = setup.start_relay().await;
    // Written after the slot exists, so the stream (not the one-time pass
    // over older rows) carries the transaction.
    support::eventually(Duration::from_secs(30), "streaming", || async {
        relay.log_text().contains("replication started")
    })
    .await;

    let written = writers::one_transaction(&setup.db.url, ROWS, 20).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let confirmed = loop {
        let n = relay.metric(PUBLISHED).await.unwrap_or(0.0);
        if n >= KILL_AFTER {
            break n;
        }
        assert!(Instant::now() < deadline, "only {n} events published");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    relay.sigkill();
    let restarted = Instant::now();
    let relay = setup.start_relay().await;

    // mark = none leaves no trace in the table: only the queue says when.
    if mark != "none" {
        support::eventually(Duration::from_secs(120), "all rows marked", || async {
            setup.db.unsent().await == 0
        })
        .await;
    }
    let received = setup
        .queue
        .drain(written.len(), Duration::from_secs(120))
        .await;
    let elapsed = restarted.elapsed();
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!(
        "mark = {mark}: killed after {confirmed} confirmed of {ROWS}; {report}; \
         restart to all published {elapsed:?}"
    );
    assert!(
        report.duplicates <= BATCH,
        "mark = {mark}: more than one batch published twice: {report}"
    );
    assert!(
        relay.log_text().contains("already confirmed before"),
        "the restart says it skipped the confirmed events:\n{}",
        relay.log_text()
    );
    drop::<Relay>(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_inside_a_transaction_mark_update() {
    crash_inside_a_transaction("update").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_inside_a_transaction_mark_delete() {
    crash_inside_a_transaction("delete").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_inside_a_transaction_mark_none() {
    crash_inside_a_transaction("none").await;
}
