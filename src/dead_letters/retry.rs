//! `outbox-relay dead-letters retry`: puts dead-lettered events back in the
//! stream, once their cause is fixed. Safe while the daemon runs: the
//! letters are locked, and the rows go back through the outbox like new
//! ones, so the daemon publishes them at least once.

use super::{DeadLetterError, table_name};
use crate::config::Config;
use crate::outbox::requeue::{STAGING, create_staging, requeue_staged};
use crate::outbox::{OutboxSchema, TableName};

/// Which letters to retry.
#[derive(Debug, Clone)]
pub enum RetryTarget {
    /// These dead-letter ids (the table's `id`, not the event id).
    Ids(Vec<i64>),
    /// Every letter not retried yet.
    All,
}

/// What `retry` did.
#[derive(Debug, Clone, Default)]
pub struct RetryOutcome {
    /// One line per letter saying what happened to it.
    pub lines: Vec<String>,
    /// Ids asked for that are not in the table: the command then fails.
    pub missing: Vec<i64>,
}

/// Retries the letters; the ids that do not exist are reported, and the
/// others retried all the same.
pub async fn retry(config: &Config, target: RetryTarget) -> Result<RetryOutcome, DeadLetterError> {
    let table = table_name(config).map_err(DeadLetterError::Config)?;
    let query = |error| DeadLetterError::Query {
        table: table.to_string(),
        error,
    };
    let mut client = crate::postgres::connect(&config.postgres, "dead-letters retry", None).await?;
    let schema = OutboxSchema::load(&client, &config.outbox).await?;
    let tx = client.transaction().await.map_err(query)?;

    let ids: Vec<i64> = match &target {
        RetryTarget::Ids(ids) => ids.clone(),
        RetryTarget::All => Vec::new(),
    };
    let all = matches!(target, RetryTarget::All);
    let letters = tx
        .query(
            &format!(
                "SELECT id, event_id, retried_at IS NOT NULL, row_data IS NULL FROM {table} \
                 WHERE CASE WHEN $2 THEN retried_at IS NULL ELSE id = ANY($1) END \
                 ORDER BY id FOR UPDATE"
            ),
            &[&ids, &all],
        )
        .await
        .map_err(query)?;

    let mut report = Vec::new();
    let mut missing = Vec::new();
    let mut ready = Vec::new();
    for row in &letters {
        let (id, event_id): (i64, String) = (row.get(0), row.get(1));
        if row.get::<_, bool>(2) {
            report.push(format!(
                "dead letter {id} (event {event_id}): already retried"
            ));
        } else if row.get::<_, bool>(3) {
            report.push(format!(
                "dead letter {id} (event {event_id}): its outbox row was gone when it was \
                 dead-lettered; insert the event again yourself"
            ));
        } else {
            ready.push((id, event_id));
        }
    }
    if let RetryTarget::Ids(wanted) = &target {
        for id in wanted {
            if !letters.iter().any(|r| r.get::<_, i64>(0) == *id) {
                report.push(format!("dead letter {id}: no such dead letter"));
                missing.push(*id);
            }
        }
    }
    if ready.is_empty() {
        tx.rollback().await.map_err(query)?;
        if report.is_empty() {
            report.push("no dead letters to retry".into());
        }
        return Ok(RetryOutcome {
            lines: report,
            missing,
        });
    }

    let ready_ids: Vec<i64> = ready.iter().map(|(id, _)| *id).collect();
    requeue(&tx, &schema.table, &table, config, &ready_ids)
        .await
        .map_err(query)?;
    tx.commit().await.map_err(query)?;
    for (id, event_id) in ready {
        report.push(format!(
            "dead letter {id} (event {event_id}): back in {}; the relay will publish it",
            schema.table
        ));
    }
    Ok(RetryOutcome {
        lines: report,
        missing,
    })
}

async fn requeue(
    tx: &tokio_postgres::Transaction<'_>,
    outbox: &TableName,
    table: &TableName,
    config: &Config,
    ids: &[i64],
) -> Result<(), tokio_postgres::Error> {
    create_staging(tx, outbox).await?;
    tx.execute(
        &format!(
            "INSERT INTO {STAGING} SELECT (json_populate_record(NULL::{outbox}, d.row_data)).* \
             FROM {table} AS d WHERE d.id = ANY($1)"
        ),
        &[&ids],
    )
    .await?;
    requeue_staged(tx, outbox, &config.outbox).await?;
    tx.execute(
        &format!("UPDATE {table} SET retried_at = now() WHERE id = ANY($1)"),
        &[&ids],
    )
    .await?;
    Ok(())
}
