//! The polling baseline: a bare loop doing what the polling source does per
//! batch, with the relay's own statements (claim `FOR UPDATE SKIP LOCKED`
//! in id order, all columns as text; `UPDATE ... SET sent_at`), pipelined
//! the same way (BEGIN with the claim, the mark with COMMIT), and nothing
//! else: no sink, no metrics, no leader checks.

use std::time::Instant;

use tokio_postgres::types::ToSql;

use super::Baseline;
use crate::Result;
use crate::database::BenchDb;

/// The relay's claim for the default table (see `src/outbox/sql.rs`).
const CLAIM: &str = "SELECT \"id\"::text, \"aggregate_type\"::text, \"aggregate_id\"::text, \
    \"event_type\"::text, \"payload\"::text, \"headers\"::text, \
    (extract(epoch FROM \"created_at\") * 1000000)::int8 FROM \"public\".\"outbox\" AS o \
    WHERE \"sent_at\" IS NULL ORDER BY o.\"id\" LIMIT $1 FOR UPDATE SKIP LOCKED";

/// The relay's mark for the default table.
const MARK: &str = "UPDATE \"public\".\"outbox\" SET \"sent_at\" = statement_timestamp() \
    WHERE \"id\" = ANY($1::text[]::bigint[]) RETURNING \"id\"::text";

/// Claims and marks every unsent row of `db`, `batch` at a time.
pub async fn claim_and_mark(db: &BenchDb, batch: usize) -> Result<Baseline> {
    let client = db.session().await?;
    let claim = client.prepare(CLAIM).await?;
    let mark = client.prepare(MARK).await?;
    let limit = i64::try_from(batch)?;
    let started = Instant::now();
    let mut events = 0u64;
    loop {
        let params: [&(dyn ToSql + Sync); 1] = [&limit];
        let (_, rows) =
            tokio::try_join!(client.batch_execute("BEGIN"), client.query(&claim, &params),)?;
        if rows.is_empty() {
            client.batch_execute("COMMIT").await?;
            break;
        }
        let ids = rows
            .iter()
            .map(|row| row.try_get::<_, String>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let params: [&(dyn ToSql + Sync); 1] = [&ids];
        tokio::try_join!(client.query(&mark, &params), client.batch_execute("COMMIT"),)?;
        events += ids.len() as u64;
    }
    Ok(Baseline::new(
        "claim_mark",
        events,
        started.elapsed(),
        format!("the relay's claim + mark SQL in a bare loop, {batch} rows per transaction"),
    ))
}
