//! `drop_partitions`: a partition of a range-partitioned outbox (by
//! `created_at`) goes whole once its range has ended before the window and
//! every row in it is past the window, which costs nothing next to
//! deleting its rows. The partition is locked before it is checked, so no
//! row can arrive or be unmarked between the check and the drop.

use tokio_postgres::Client;

use super::{RetentionError, Window, db};
use crate::outbox::{TableName, quote_ident};

/// Detaches and drops every partition of `table` that qualifies; returns
/// their names. Not partitioned: nothing.
pub(super) async fn drop_expired(
    client: &Client,
    table: &TableName,
    window: &Window,
) -> Result<Vec<String>, RetentionError> {
    // Leaf partitions with the upper bound of their range; the DEFAULT
    // partition (no bound) is never dropped.
    let rows = client
        .query(
            "SELECT c.oid::regclass::text, \
                    substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)') \
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = to_regclass($1) AND c.relkind = 'r' \
             ORDER BY 2",
            &[&table.to_string()],
        )
        .await
        .map_err(db("listing the outbox's partitions"))?;
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let Some(upper) = row.get::<_, Option<String>>(1) else {
            continue;
        };
        if drop_one(client, table, &name, &upper, window).await? {
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// One partition, in one transaction: lock it, check, detach, drop.
async fn drop_one(
    client: &Client,
    parent: &TableName,
    partition: &str,
    upper: &str,
    window: &Window,
) -> Result<bool, RetentionError> {
    let column = quote_ident(&window.column);
    // Cheap, unlocked first look: the range has ended before the window.
    let ended: bool = client
        .query_one(
            &format!("SELECT $1::text::timestamptz <= {}", window.cutoff),
            &[&upper],
        )
        .await
        .map_err(db("reading a partition's range"))?
        .get(0);
    if !ended {
        return Ok(false);
    }
    client
        .batch_execute("BEGIN")
        .await
        .map_err(db("starting a partition drop"))?;
    let result = async {
        // Claims queue behind a waiting ACCESS EXCLUSIVE request: wait
        // briefly, and leave a partition in use for the next pass.
        let locked = client
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = '200ms'; LOCK TABLE {partition} IN ACCESS EXCLUSIVE MODE"
            ))
            .await;
        match locked {
            Ok(()) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                tracing::debug!(partition, "partition in use; retention tries it next pass");
                return Ok(false);
            }
            Err(e) => return Err(db("locking a partition to drop")(e)),
        }
        let keep: bool = client
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {partition} WHERE {column} IS NULL \
                     OR NOT ({}))",
                    window.condition("")
                ),
                &[],
            )
            .await
            .map_err(db("checking a partition's rows"))?
            .get(0);
        if keep {
            return Ok(false);
        }
        client
            .batch_execute(&format!(
                "ALTER TABLE {parent} DETACH PARTITION {partition}; DROP TABLE {partition}"
            ))
            .await
            .map_err(db("dropping a partition"))?;
        Ok(true)
    }
    .await;
    let end = if matches!(result, Ok(true)) {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    client
        .batch_execute(end)
        .await
        .map_err(db("ending a partition drop"))?;
    result
}
