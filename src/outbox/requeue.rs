//! Putting rows back in the stream: shared by `dead-letters retry` and
//! `replay`, for both sources. Each row is deleted and inserted again, unsent
//! and with its id kept, so the polling source claims it and the replication
//! source sees a new INSERT, with consumers able to recognise the message id.

use tokio_postgres::Transaction;

use super::{TableName, quote_ident};
use crate::config::{ColumnsConfig, MarkMode, OutboxConfig};

/// The transaction-local table rows are staged in before requeueing.
pub const STAGING: &str = "outbox_relay_staging";

/// Creates the (empty) staging table, shaped like the outbox; it is dropped
/// at commit.
pub async fn create_staging(
    tx: &Transaction<'_>,
    table: &TableName,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {STAGING} ON COMMIT DROP AS SELECT * FROM {table} WITH NO DATA"
    ))
    .await
}

/// Replaces the outbox rows with the ids staged by their staged copies,
/// unsent, inserted in claim order. Returns how many rows went back.
pub async fn requeue_staged(
    tx: &Transaction<'_>,
    table: &TableName,
    config: &OutboxConfig,
) -> Result<u64, tokio_postgres::Error> {
    let id = quote_ident(&config.columns.id);
    if config.mark == MarkMode::Update
        && let Some(sent_at) = ColumnsConfig::optional(&config.columns.sent_at)
    {
        tx.execute(
            &format!("UPDATE {STAGING} SET {} = NULL", quote_ident(sent_at)),
            &[],
        )
        .await?;
    }
    tx.execute(
        &format!("DELETE FROM {table} AS o USING {STAGING} AS s WHERE o.{id} = s.{id}"),
        &[],
    )
    .await?;
    let order = if config.order_column() == config.columns.id {
        id.clone()
    } else {
        format!("{}, {id}", quote_ident(config.order_column()))
    };
    // OVERRIDING SYSTEM VALUE keeps the ids of identity columns too.
    tx.execute(
        &format!(
            "INSERT INTO {table} OVERRIDING SYSTEM VALUE SELECT * FROM {STAGING} ORDER BY {order}"
        ),
        &[],
    )
    .await
}
