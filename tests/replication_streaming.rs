//! Replication mode under stress: a 100k-row transaction streams through in
//! bounded memory, a column added mid-stream changes nothing, and an idle
//! outbox on a busy database holds no WAL back (measured against the
//! server's WAL position, so on a cluster of the test's own: other tests'
//! writes on the shared server would move it too).

mod support;

use std::time::Duration;

use support::cluster::TempCluster;
use support::relay::Relay;
use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_thousand_rows_in_one_transaction() {
    let mut setup = Setup::replication(500).await;
    setup.config.set("sink", "kind", "\"stdout\"");
    let (mut relay, stdout) = Relay::start_capturing_stdout(&setup.config);
    relay.wait_ready().await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a' || (i % 100), 'created', \
                jsonb_build_object('i', i, 'pad', repeat('x', 200)) \
         FROM generate_series(1, 100000) i",
    );
    support::eventually(Duration::from_secs(120), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let peak_kib = relay.peak_rss_kib().expect("rss");
    relay.sigterm(Duration::from_secs(10)).expect("stops");
    let text = std::fs::read_to_string(&stdout).expect("stdout");
    let ids: Vec<u64> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v["event_id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("numeric id")
        })
        .collect();
    assert_eq!(ids.len(), 100_000);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "commit order = id order here"
    );
    println!("100k-row transaction: peak RSS {} MiB", peak_kib / 1024);
    assert!(
        peak_kib < 64 * 1024,
        "memory stays bounded: peak {peak_kib} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn column_added_while_streaming() {
    let setup = Setup::replication(100).await;
    let _relay = setup.start_relay().await;
    let mut written = writers::write(&setup.db.url, 2, 200, 2, Duration::ZERO).await;
    setup
        .db
        .psql("ALTER TABLE outbox ADD COLUMN note text DEFAULT 'n', ADD COLUMN extra int");
    written.extend(writers::write(&setup.db.url, 2, 200, 2, Duration::ZERO).await);
    let (report, _) = setup.settle("column added mid-stream", &written).await;
    assert_eq!(report.duplicates, 0);
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_outbox_busy_database_keeps_slot_lag_bounded() {
    let cluster = TempCluster::logical();
    let setup = Setup::replication_on(&cluster.url(), &support::rabbit::url(), 100).await;
    let relay = setup.start_relay().await;
    setup.db.psql("CREATE TABLE other (id serial, body text)");
    for _ in 0..5 {
        setup.db.psql(
            "INSERT INTO other (body) SELECT repeat('y', 500) FROM generate_series(1, 20000)",
        );
    }
    support::eventually(Duration::from_secs(30), "slot lag under 64 KiB", || async {
        setup
            .db
            .psql(&format!(
                "SELECT pg_current_wal_lsn() - confirmed_flush_lsn < 65536 \
                 FROM pg_replication_slots WHERE slot_name = '{}'",
                setup.db.name
            ))
            .trim()
            == "t"
    })
    .await;
    support::eventually(Duration::from_secs(10), "lag gauge exported", || async {
        relay
            .metric("outbox_relay_replication_slot_lag_bytes")
            .await
            .is_some_and(|lag| lag < 1_048_576.0)
    })
    .await;
    setup.queue.delete().await;
}
