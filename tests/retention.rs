//! Retention deletes sent rows past the window in small batches on the
//! leader, and never an unsent one: while writers insert and the relay is
//! SIGKILLed mid-pass, every row still arrives, and the table empties once
//! the writers stop. A range-partitioned outbox is relayed through its
//! parent, and a partition whose range ended and whose rows are all sent
//! past the window is dropped whole; one holding an unsent row is kept
//! until that row is sent.

mod support;

use std::time::Duration;

use support::eventually;
use support::rabbit::QueueCleanup;
use support::relay::{Relay, check_line};
use support::setup::Setup;
use support::writers;

const DELETED: &str = "outbox_relay_retention_deleted_rows_total{table=\"outbox\"}";

fn with_retention(setup: &mut Setup, window: &str) {
    setup
        .config
        .set("retention", "sent_after", &format!("\"{window}\""))
        .set("retention", "interval", "\"200ms\"")
        .set("retention", "batch_size", "50")
        .set("retention", "pause", "\"5ms\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn never_deletes_an_unsent_row_while_writers_insert_and_the_relay_is_killed() {
    let mut setup = Setup::new(100).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    with_retention(&mut setup, "1s");
    let (_, text) = setup.config.check();
    assert!(
        check_line(&text, "retention").contains("sent rows kept 1s"),
        "{text}"
    );

    let url = setup.db.url.clone();
    let load =
        tokio::spawn(
            async move { writers::write(&url, 4, 750, 10, Duration::from_millis(4)).await },
        );
    let mut relay = setup.start_relay().await;
    let mut kills = 0;
    let mut deleted_before_kill = 0.0;
    while !load.is_finished() {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        // Kill it once retention has deleted something, so passes are cut.
        let deleted = relay.metric(DELETED).await.unwrap_or(0.0);
        if deleted > 0.0 {
            deleted_before_kill += deleted;
            relay.sigkill();
            kills += 1;
            relay = Relay::start(&setup.config);
            relay.wait_ready().await;
        }
    }
    let written = load.await.expect("writers");
    let (report, _) = setup.settle("retention under load", &written).await;
    eventually(
        Duration::from_secs(60),
        "every sent row deleted",
        || async { setup.db.count("SELECT count(*) FROM outbox").await == 0 },
    )
    .await;
    let deleted = relay.metric(DELETED).await.unwrap_or(0.0) + deleted_before_kill;
    println!(
        "retention: {report}; {kills} SIGKILLs; {deleted} rows deleted by the last relays' counters \
         (some deleted by killed relays are not counted)"
    );
    assert!(kills >= 1, "the relay was killed mid-run");
    assert!(
        relay
            .metric("outbox_relay_retention_last_pass_timestamp_seconds")
            .await
            .unwrap_or(0.0)
            > 0.0
    );
    relay.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_outbox_is_relayed_and_old_partitions_dropped() {
    let mut setup = Setup::new(100).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    // The table `migrate` made, replaced by a partitioned one (the DDL the
    // README shows), and migrate run again for its index and trigger.
    setup.db.psql(
        "DROP TABLE outbox; \
         CREATE TABLE outbox (id bigserial, aggregate_type text NOT NULL, \
           aggregate_id text NOT NULL, event_type text NOT NULL, payload jsonb NOT NULL, \
           headers jsonb, created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz, \
           PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at); \
         CREATE TABLE outbox_2026_01_01 PARTITION OF outbox \
           FOR VALUES FROM ('2026-01-01') TO ('2026-01-02'); \
         CREATE TABLE outbox_2026_01_02 PARTITION OF outbox \
           FOR VALUES FROM ('2026-01-02') TO ('2026-01-03'); \
         CREATE TABLE outbox_2026_01_03 PARTITION OF outbox \
           FOR VALUES FROM ('2026-01-03') TO ('2026-01-04'); \
         CREATE TABLE outbox_current PARTITION OF outbox DEFAULT",
    );
    setup.config.migrate();
    with_retention(&mut setup, "1s");
    setup.config.set("retention", "drop_partitions", "true");

    // Old rows in each old partition (written for those days), current ones.
    let old = |day: u32, aggregate: &str| {
        format!(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, created_at) \
             SELECT 'order', '{aggregate}', 'created', jsonb_build_object('n', g), \
             '2026-01-0{day} 12:00'::timestamptz + g * interval '1 second' \
             FROM generate_series(1, 50) g"
        )
    };
    setup.db.psql(&old(1, "a1"));
    setup.db.psql(&old(2, "a2"));
    setup.db.psql(&old(3, "a3"));
    // A row of the third day that a session holds locked stays unsent.
    let holder = setup.db.client().await;
    holder.batch_execute("BEGIN").await.expect("begin");
    let locked: String = holder
        .query_one(
            "SELECT id::text FROM outbox_2026_01_03 ORDER BY id LIMIT 1 FOR UPDATE",
            &[],
        )
        .await
        .expect("lock a row")
        .get(0);
    let current = writers::write(&setup.db.url, 2, 50, 2, Duration::ZERO).await;

    let relay = setup.start_relay().await;
    let exists = |name: &'static str| {
        let db = &setup.db;
        async move {
            db.count(&format!(
                "SELECT count(*) FROM pg_class WHERE relname = '{name}'"
            ))
            .await
                == 1
        }
    };
    eventually(
        Duration::from_secs(60),
        "the first two days dropped",
        || async { !exists("outbox_2026_01_01").await && !exists("outbox_2026_01_02").await },
    )
    .await;
    assert!(
        exists("outbox_2026_01_03").await,
        "the partition with an unsent row is kept"
    );
    let unsent = setup
        .db
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE id = {locked} AND sent_at IS NULL"
        ))
        .await;
    assert_eq!(unsent, 1, "the locked row is unsent and still there");
    holder.batch_execute("ROLLBACK").await.expect("release");
    eventually(Duration::from_secs(60), "the third day dropped", || async {
        !exists("outbox_2026_01_03").await
    })
    .await;
    eventually(Duration::from_secs(60), "current rows deleted", || async {
        setup.db.count("SELECT count(*) FROM outbox").await == 0
    })
    .await;
    assert!(
        exists("outbox_current").await,
        "the DEFAULT partition stays"
    );
    let received = setup
        .queue
        .drain(150 + current.len(), Duration::from_secs(30))
        .await;
    let mut ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 150 + current.len(), "every row arrived");
    let log = relay.log_text();
    assert!(log.contains("retention pass"), "passes are logged");
}
