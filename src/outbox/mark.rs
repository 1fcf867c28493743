//! Marking rows that the replication stream delivered. Postgres writes a
//! transaction's commit to the WAL, where logical decoding can already read
//! it, a moment before the rows become visible to other sessions: a mark
//! sent in that gap finds nothing. So the rows not found are marked again
//! until they are, or until a deadline (a row deleted by someone else never
//! shows up).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::{Client, Statement};

/// Pause between attempts at rows not visible yet.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Runs the `mark` statement (see [`super::OutboxSql::mark`]) for `ids`
/// until every row was marked or `wait` is over; returns the ids never found.
pub async fn mark_when_visible(
    client: &Client,
    mark: &Statement,
    mut ids: Vec<String>,
    wait: Duration,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let deadline = Instant::now() + wait;
    loop {
        let marked: HashSet<String> = client
            .query(mark, &[&ids])
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        ids.retain(|id| !marked.contains(id));
        if ids.is_empty() || Instant::now() >= deadline {
            return Ok(ids);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}
