//! Marking rows that the replication stream delivered. Postgres writes a
//! transaction's commit to the WAL, where logical decoding can already read
//! it, a moment before the rows become visible to other sessions: a mark
//! sent in that gap finds nothing. A row may also be gone for good (deleted
//! or truncated by someone else, or deleted by an earlier run of the relay
//! before the stream was replayed), and waiting for it would only stall.
//!
//! The two are told apart by the writing transaction's lock on its own xid:
//! a transaction holds it from its first write until after it has left the
//! proc array (`CommitTransaction`: `RecordTransactionCommit`, then
//! `ProcArrayEndTransaction`, then the locks are released), so once no
//! `pg_locks` row for the xid remains, a new snapshot sees its rows. An id
//! still not found by a mark that started after that is gone.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Statement};

/// Pause between attempts at rows not visible yet.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Which of the given xids still hold their transaction lock.
const RUNNING: &str = "SELECT transactionid::text FROM pg_locks \
     WHERE locktype = 'transactionid' AND transactionid::text = ANY($1::text[])";

/// Runs the `mark` statement (see [`super::OutboxSql::mark`]) for `ids`,
/// written by the transactions `writers` (their xids), and returns the ids
/// that are gone. Rows of a writer still finishing its commit are tried
/// again until it is done; `safety` bounds that wait (a commit stuck for
/// longer, e.g. waiting on a synchronous standby, leaves its rows unmarked
/// and reported).
pub async fn mark_when_visible(
    client: &Client,
    mark: &Statement,
    mut ids: Vec<String>,
    writers: &[u32],
    safety: Duration,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let deadline = Instant::now() + safety;
    let writers: Vec<String> = writers.iter().map(u32::to_string).collect();
    // Set once every writer was seen finished: the next mark is final.
    let mut settled = false;
    loop {
        let marked: HashSet<String> = client
            .query(mark, &[&ids])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        ids.retain(|id| !marked.contains(id));
        if ids.is_empty() || settled {
            return Ok(ids);
        }
        if client.query(RUNNING, &[&writers]).await?.is_empty() {
            settled = true;
            continue;
        }
        if Instant::now() >= deadline {
            return Ok(ids);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
