//! A committed row that another session holds locked (an operator fixing it
//! after a dead letter) holds back only its own aggregate's later rows: they
//! wait and follow it once the lock is released, while other aggregates go
//! on. `FOR UPDATE SKIP LOCKED` alone published 1, 3, 4, 5, 2.

mod support;

use std::time::Duration;

use support::checker::verify;
use support::setup::Setup;
use support::writers::{self, Written};

/// Inserts `count` rows of `aggregate`; returns them as written.
fn insert(setup: &Setup, aggregate: &str, count: usize) -> Vec<Written> {
    let ids = setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', '{aggregate}', 'created', jsonb_build_object('n', n) \
         FROM generate_series(1, {count}) AS n RETURNING id"
    ));
    ids.lines()
        .map(|id| Written {
            id: id.trim().to_owned(),
            aggregate_id: aggregate.to_owned(),
        })
        .collect()
}

/// Sent rows of `aggregate`.
async fn sent(setup: &Setup, aggregate: &str) -> i64 {
    setup
        .db
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE aggregate_id = '{aggregate}' AND sent_at IS NOT NULL"
        ))
        .await
}

/// Unsent rows of every aggregate but `aggregate`.
async fn others_unsent(setup: &Setup, aggregate: &str) -> i64 {
    setup
        .db
        .count(&format!(
            "SELECT count(*) FROM outbox WHERE aggregate_id <> '{aggregate}' AND sent_at IS NULL"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locked_row_keeps_its_aggregate_in_order_and_others_flow() {
    let setup = Setup::new(10).await;
    let mut written = insert(&setup, "locked", 5);
    let second = written[1].id.clone();
    let holder = setup.db.client().await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .execute(
            &format!("UPDATE outbox SET headers = '{{\"fixed\":true}}' WHERE id = {second}"),
            &[],
        )
        .await
        .expect("lock the second row");
    let relay = setup.start_relay().await;

    // Other aggregates, written while the lock is held, are all published.
    written.extend(writers::write(&setup.db.url, 3, 100, 3, Duration::ZERO).await);
    support::eventually(Duration::from_secs(60), "other aggregates sent", || async {
        others_unsent(&setup, "locked").await == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        sent(&setup, "locked").await,
        1,
        "only the row before the locked one is sent while the lock is held"
    );

    holder.batch_execute("COMMIT").await.expect("commit");
    let (report, received) = setup.settle("locked row", &written).await;
    assert_eq!(report.duplicates, 0, "no failures, so no duplicates");
    let locked: Vec<String> = received
        .iter()
        .filter(|m| m.header("aggregate_id").as_deref() == Some("locked"))
        .map(|m| m.message_id())
        .collect();
    let expected: Vec<String> = written[..5].iter().map(|w| w.id.clone()).collect();
    assert_eq!(
        locked, expected,
        "the locked aggregate in order 1, 2, 3, 4, 5"
    );
    let fixed = received
        .iter()
        .find(|m| m.message_id() == second)
        .and_then(|m| m.header("fixed"));
    assert_eq!(fixed.as_deref(), Some("true"), "published as committed");
    let log = relay.log_text();
    assert!(log.contains("hold back their aggregates"), "{log}");
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_aggregate_behind_a_lock_does_not_starve_the_others() {
    // Batches of 5 and 60 rows of the hot aggregate behind its locked first
    // row: every first round is all held back; later rounds leave it out.
    let setup = Setup::new(5).await;
    let mut written = insert(&setup, "hot", 1);
    let holder = setup.db.client().await;
    holder.batch_execute("BEGIN").await.expect("begin");
    holder
        .execute(
            // An UPDATE, not SELECT ... FOR UPDATE: a newly elected leader
            // ends every session holding a RowShareLock on the outbox.
            &format!(
                "UPDATE outbox SET headers = '{{\"fixed\":true}}' WHERE id = {}",
                written[0].id
            ),
            &[],
        )
        .await
        .expect("lock the first row");
    written.extend(insert(&setup, "hot", 60));
    written.extend(writers::write(&setup.db.url, 2, 50, 2, Duration::ZERO).await);
    let _relay = setup.start_relay().await;

    support::eventually(Duration::from_secs(60), "other aggregates sent", || async {
        others_unsent(&setup, "hot").await == 0
    })
    .await;
    assert_eq!(
        sent(&setup, "hot").await,
        0,
        "nothing of the hot aggregate yet"
    );

    holder.batch_execute("COMMIT").await.expect("commit");
    let (report, received) = setup.settle("hot aggregate behind a lock", &written).await;
    assert_eq!(report.duplicates, 0, "no failures, so no duplicates");
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    verify(&written, &ids);
    setup.queue.delete().await;
}
