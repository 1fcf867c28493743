//! Backpressure: a backlog far larger than the relay may hold (60,000 events
//! of about 2 KB, some 120 MB) meets a broker slower than the source. The
//! relay reads a batch only after the last one was confirmed, so its memory
//! stays bounded by the batch whatever the backlog: in polling mode (the
//! backlog is in the table before the relay starts) and in replication mode
//! (the backlog is one 60,000-row transaction streamed through the slot).

mod support;

use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use support::checker::verify;
use support::rabbit::{self, QueueCleanup, TestQueue};
use support::relay::Relay;
use support::setup::Setup;
use support::writers::Written;

const BATCH: usize = 500;
const ROWS: usize = 60_000;
const AGGREGATES: usize = 100;
/// Peak resident memory allowed to the relay.
const LIMIT_KIB: u64 = 64 * 1024;

/// Writes the whole backlog in one statement, so one transaction: ids
/// follow `g`, aggregates take turns, each payload carries ~2 KB of padding.
fn write_backlog(setup: &Setup) {
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'agg-' || (g % {AGGREGATES}), 'created', \
                jsonb_build_object('key', 'bm-' || g, 'seq', g, \
                                   'pad', repeat(md5(g::text), 62)), \
                jsonb_build_object('tenant', 'acme') \
         FROM generate_series(1, {ROWS}) AS g"
    ));
}

/// The events in the table, in id (= write) order.
async fn written(setup: &Setup) -> Vec<Written> {
    let client = setup.db.client().await;
    client
        // Qualified: a bare `id` would name the text output column.
        .query(
            "SELECT id::text, aggregate_id FROM outbox ORDER BY outbox.id",
            &[],
        )
        .await
        .expect("reading the outbox")
        .iter()
        .map(|row| Written {
            id: row.get(0),
            aggregate_id: row.get(1),
        })
        .collect()
}

/// Payload bytes of the backlog, in MB.
async fn backlog_mb(setup: &Setup) -> f64 {
    let bytes = setup
        .db
        .count("SELECT sum(octet_length(payload::text))::int8 FROM outbox")
        .await;
    bytes as f64 / 1e6
}

/// Messages waiting in the test queue (a passive declare).
async fn queued(queue: &TestQueue) -> u32 {
    let conn = rabbit::connect().await;
    let channel = conn.create_channel().await.expect("channel");
    let declared = channel
        .queue_declare(
            queue.queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive queue declare");
    let _ = conn.close(0, "done".into()).await;
    declared.message_count()
}

/// Waits until every row is marked, printing progress and the relay's
/// resident memory; returns the relay's peak resident memory in KiB.
async fn drain_backlog(setup: &Setup, relay: &Relay, label: &str) -> u64 {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let mut last_print = Instant::now();
    loop {
        let unsent = setup.db.unsent().await;
        if unsent == 0 {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            last_print = Instant::now();
            println!(
                "{label}: {:>5.1}s: {unsent} rows unsent, relay peak RSS {} KiB",
                started.elapsed().as_secs_f64(),
                relay.peak_rss_kib().unwrap_or(0)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{unsent} rows still unsent after 240s:\n{}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = started.elapsed();
    println!(
        "{label}: {ROWS} events relayed in {took:?} ({:.0}/s)",
        ROWS as f64 / took.as_secs_f64()
    );
    relay.peak_rss_kib().expect("the relay's VmHWM")
}

/// The queue holds every event; reads them all back and checks that none
/// is missing and each aggregate's arrive in order.
async fn check_queue(setup: &Setup, label: &str) {
    let count = queued(&setup.queue).await;
    println!("{label}: {count} messages in the queue");
    assert!(
        count as usize >= ROWS,
        "only {count} of {ROWS} messages in the queue"
    );
    let written = written(setup).await;
    assert_eq!(written.len(), ROWS);
    let received = setup
        .queue
        .drain(written.len(), Duration::from_secs(120))
        .await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!("{label}: {report}");
}

fn print_ready_rss(label: &str, relay: &Relay) {
    println!(
        "{label}: relay peak RSS {} KiB when ready",
        relay.peak_rss_kib().unwrap_or(0)
    );
}

fn assert_bounded(label: &str, peak_kib: u64, backlog_mb: f64) {
    println!(
        "{label}: backlog {ROWS} events, {backlog_mb:.1} MB of payload; \
         relay peak RSS {:.1} MiB (limit {} MiB)",
        peak_kib as f64 / 1024.0,
        LIMIT_KIB / 1024
    );
    assert!(
        peak_kib < LIMIT_KIB,
        "relay peak RSS {peak_kib} KiB is not below {LIMIT_KIB} KiB with a {backlog_mb:.1} MB backlog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_backlog_keeps_memory_bounded() {
    let label = "bounded memory (polling)";
    let setup = Setup::new(BATCH).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    write_backlog(&setup);
    let backlog_mb = backlog_mb(&setup).await;
    let relay = setup.start_relay().await;
    print_ready_rss(label, &relay);
    let peak = drain_backlog(&setup, &relay, label).await;
    drop(relay);
    assert_bounded(label, peak, backlog_mb);
    check_queue(&setup, label).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_backlog_keeps_memory_bounded() {
    let label = "bounded memory (replication)";
    let setup = Setup::replication(BATCH).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    let relay = setup.start_relay().await;
    print_ready_rss(label, &relay);
    // /readyz may answer before the source has created its slot.
    let slot_sql = format!(
        "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}'",
        setup.db.name
    );
    support::eventually(
        Duration::from_secs(30),
        "the relay made its slot before the backlog",
        || async { setup.db.count(&slot_sql).await == 1 },
    )
    .await;
    write_backlog(&setup);
    let backlog_mb = backlog_mb(&setup).await;
    let peak = drain_backlog(&setup, &relay, label).await;
    let log = relay.log_text();
    drop(relay);
    assert!(
        !log.contains("publishing rows written before the replication slot existed"),
        "the backlog came through the slot, not a catch-up pass"
    );
    assert_bounded(label, peak, backlog_mb);
    check_queue(&setup, label).await;
}
