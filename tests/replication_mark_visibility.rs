//! Postgres lets logical decoding read a commit a moment before other
//! sessions can see its rows, so the replication source may mark a row it
//! cannot see yet. The mark must wait for it rather than find nothing and
//! move on (which would leave a delivered row unsent forever). Here the
//! gap is made long on purpose: the row is still uncommitted when the mark
//! starts, and commits 300 ms later. A row that is gone (its transaction
//! long finished) is reported at once, without waiting out the deadline.

mod support;

use std::time::Duration;

use outbox_relay::config::OutboxConfig;
use outbox_relay::outbox::{OutboxSchema, OutboxSql, mark_when_visible};
use support::db::TestDb;
use support::relay::RelayConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_waits_for_rows_to_become_visible() {
    let db = TestDb::new();
    let mut config = RelayConfig::new(&db, "unused");
    config.set("sink", "kind", "\"stdout\"");
    config.migrate();

    let outbox = OutboxConfig::default();
    let marker = db.client().await;
    let schema = OutboxSchema::load(&marker, &outbox).await.expect("schema");
    let mark = marker
        .prepare(&OutboxSql::new(&outbox, &schema).mark)
        .await
        .expect("prepare mark");

    let writer = db.client().await;
    writer.batch_execute("BEGIN").await.expect("begin");
    let xid: u32 = writer
        .query_one("SELECT pg_current_xact_id()::xid::text::bigint", &[])
        .await
        .expect("xid")
        .get::<_, i64>(0)
        .try_into()
        .expect("32-bit xid");
    let id: i64 = writer
        .query_one(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
             VALUES ('order', '1', 'created', '{}') RETURNING id",
            &[],
        )
        .await
        .expect("insert")
        .get(0);
    let visible = db.client().await;
    let insert = vec![id.to_string()];
    let commit_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.batch_execute("COMMIT").await.expect("commit");
    });

    let missing = mark_when_visible(&marker, &mark, insert, &[xid], Duration::from_secs(5))
        .await
        .expect("mark");
    commit_later.await.expect("writer task");
    assert!(missing.is_empty(), "rows never marked: {missing:?}");
    let unsent: i64 = visible
        .query_one("SELECT count(*) FROM outbox WHERE sent_at IS NULL", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(unsent, 0, "the row committed late must still be marked");

    // A row that never appears, from a transaction that has finished, is
    // reported at once rather than after the deadline.
    let ghost = vec![(id + 1000).to_string()];
    let started = std::time::Instant::now();
    let missing = mark_when_visible(
        &marker,
        &mark,
        ghost.clone(),
        &[xid],
        Duration::from_secs(30),
    )
    .await
    .expect("mark");
    assert_eq!(missing, ghost);
    println!("a gone row was reported after {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a gone row costs no wait"
    );

    // A writer that never commits is waited for only until the deadline.
    let stuck = db.client().await;
    stuck.batch_execute("BEGIN").await.expect("begin");
    let stuck_xid: u32 = stuck
        .query_one("SELECT pg_current_xact_id()::xid::text::bigint", &[])
        .await
        .expect("xid")
        .get::<_, i64>(0)
        .try_into()
        .expect("32-bit xid");
    let missing = mark_when_visible(
        &marker,
        &mark,
        ghost.clone(),
        &[stuck_xid],
        Duration::from_millis(200),
    )
    .await
    .expect("mark");
    assert_eq!(missing, ghost, "reported after the deadline");
}
