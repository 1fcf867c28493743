//! Retention: the leader deletes what no longer needs keeping, so the
//! outbox stays small for years. Sent rows older than `sent_after`, dead
//! letters retried longer ago than `dead_letters_retried_after`, and (in
//! replication mode with `mark = "none"`) rows created before both the
//! window and the slot's confirmed position. Deletes go in small batches,
//! each its own short transaction with a statement timeout, that skip
//! locked rows and pause between them, so claiming never waits behind
//! retention. A partition of a partitioned outbox whose range has ended
//! and whose rows are all sent before the window is detached and dropped
//! whole instead (`drop_partitions`). An unsent row is never deleted: every
//! statement selects by a condition an unsent row cannot meet, and checks
//! it again on the row it deletes.

mod partitions;

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::config::{Config, MarkMode};
use crate::metrics::metrics;
use crate::outbox::{OutboxSchema, TableName, quote_ident};
use crate::postgres;
use crate::shutdown::Shutdown;

/// Why a pass could not finish; logged, and the next pass tries again.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("{0}")]
    Connect(#[from] postgres::ConnectError),
    #[error("{0}")]
    Schema(#[from] crate::outbox::SchemaError),
    #[error("{what}: {}", postgres::describe(.source))]
    Postgres {
        what: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("{0}")]
    Config(String),
}

fn db(what: &'static str) -> impl Fn(tokio_postgres::Error) -> RetentionError {
    move |source| RetentionError::Postgres { what, source }
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Outbox rows deleted by statement.
    pub deleted: u64,
    /// Dead letters deleted.
    pub dead_letters_deleted: u64,
    /// Partitions detached and dropped, by name.
    pub dropped_partitions: Vec<String>,
}

/// Runs a pass every `retention.interval` until shutdown, while this relay
/// leads (the caller aborts it when leadership ends). Nothing to do when no
/// window is set.
pub async fn run(config: Config, shutdown: Shutdown) {
    if !config.retention.enabled() {
        return;
    }
    let window = config
        .retention
        .sent_after
        .or(config.retention.streamed_after)
        .unwrap_or_default();
    metrics().retention_window.set(window.as_secs_f64());
    loop {
        let started = Instant::now();
        match pass(&config, &shutdown).await {
            Ok(report) => {
                let took = started.elapsed();
                metrics()
                    .retention_pass_duration
                    .observe(took.as_secs_f64());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                metrics().retention_last_pass.set(now);
                if report != PassReport::default() {
                    tracing::info!(
                        deleted = report.deleted,
                        dead_letters = report.dead_letters_deleted,
                        partitions = ?report.dropped_partitions,
                        took_ms = took.as_millis() as u64,
                        "retention pass"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; the next one retries"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.retention.interval) => {}
            () = shutdown.requested() => return,
        }
    }
}

/// One pass over everything retention covers.
pub async fn pass(config: &Config, shutdown: &Shutdown) -> Result<PassReport, RetentionError> {
    let settings = &config.retention;
    let client = postgres::connect(&config.postgres, "retention", None).await?;
    let timeout = settings.statement_timeout.as_millis();
    client
        .batch_execute(&format!(
            "SET statement_timeout = {timeout}; SET lock_timeout = {}",
            timeout.min(2_000)
        ))
        .await
        .map_err(db("setting retention timeouts"))?;
    let schema = OutboxSchema::load(&client, &config.outbox).await?;
    let columns = &config.outbox.columns;
    let mut report = PassReport::default();

    let outbox_window = match config.outbox.mark {
        MarkMode::Update => settings.sent_after.map(|w| Window {
            column: columns.sent_at.clone(),
            cutoff: format!("now() - {}", interval(w)),
        }),
        MarkMode::None => match settings.streamed_after {
            Some(w) => Some(Window {
                column: columns.created_at.clone(),
                cutoff: streamed_cutoff(&client, config, w).await?,
            }),
            None => None,
        },
        MarkMode::Delete => None,
    };
    if let Some(window) = outbox_window {
        if settings.drop_partitions {
            report.dropped_partitions =
                partitions::drop_expired(&client, &schema.table, &window).await?;
        }
        let ordered = ["bigint", "integer", "smallint"].contains(&schema.id_type.as_str());
        let sql = delete_batch(
            &schema.table,
            &columns.id,
            &window,
            settings.batch_size,
            ordered,
        );
        report.deleted = batches(&client, &sql, settings.pause, shutdown, "outbox").await?;
        oldest_retained(&client, &schema.table, &window.column).await;
    }
    if let Some(w) = settings.dead_letters_retried_after {
        let table = crate::dead_letters::table_name(config).map_err(RetentionError::Config)?;
        let window = Window {
            column: "retried_at".into(),
            cutoff: format!("now() - {}", interval(w)),
        };
        let sql = delete_batch(&table, "id", &window, settings.batch_size, true);
        report.dead_letters_deleted =
            batches(&client, &sql, settings.pause, shutdown, "dead_letters").await?;
    }
    Ok(report)
}

/// Rows whose `column` is before `cutoff` (an SQL expression) may go; a
/// NULL (unsent, not retried) never is.
pub(crate) struct Window {
    pub column: String,
    pub cutoff: String,
}

impl Window {
    /// The condition, on a row of `alias` (or the table when empty).
    fn condition(&self, alias: &str) -> String {
        let column = quote_ident(&self.column);
        let qualified = if alias.is_empty() {
            column
        } else {
            format!("{alias}.{column}")
        };
        format!("{qualified} < {}", self.cutoff)
    }
}

/// `interval 'N seconds'` for a window.
fn interval(window: Duration) -> String {
    format!("interval '{} seconds'", window.as_secs())
}

/// One batch: at most `limit` rows meeting the window, oldest ids first
/// when ids are sequential, skipping rows another session holds (a claim),
/// and the condition checked again on each row deleted.
fn delete_batch(table: &TableName, id: &str, window: &Window, limit: i64, ordered: bool) -> String {
    let id = quote_ident(id);
    let order = if ordered {
        format!(" ORDER BY {id}")
    } else {
        String::new()
    };
    format!(
        "DELETE FROM {table} AS t WHERE t.{id} IN (SELECT {id} FROM {table} WHERE {}{order} \
         LIMIT {limit} FOR UPDATE SKIP LOCKED) AND {}",
        window.condition(""),
        window.condition("t"),
    )
}

/// Runs `sql` until a statement deletes nothing, pausing between
/// statements; returns the rows deleted.
async fn batches(
    client: &Client,
    sql: &str,
    pause: Duration,
    shutdown: &Shutdown,
    table: &'static str,
) -> Result<u64, RetentionError> {
    let statement = client
        .prepare(sql)
        .await
        .map_err(db("preparing the retention delete"))?;
    let mut total = 0;
    loop {
        let deleted = client
            .execute(&statement, &[])
            .await
            .map_err(db("deleting old rows"))?;
        total += deleted;
        metrics()
            .retention_deleted
            .with_label_values(&[table])
            .inc_by(deleted);
        if deleted == 0 || shutdown.is_requested() {
            return Ok(total);
        }
        tokio::time::sleep(pause).await;
    }
}

/// With `mark = "none"`: before the window, and before the time the relay
/// last confirmed a slot position (rows after it are still needed by
/// nothing either, since the stream carries them in WAL, but `replay` and
/// an operator looking for a recent event do).
async fn streamed_cutoff(
    client: &Client,
    config: &Config,
    window: Duration,
) -> Result<String, RetentionError> {
    let table = TableName::parse(&config.outbox.table).map_err(RetentionError::Config)?;
    let state = format!(
        "{}.outbox_relay_slots",
        quote_ident(table.schema_or_public())
    );
    let confirmed: Option<String> = client
        .query_opt(
            &format!("SELECT confirmed_at::text FROM {state} WHERE slot = $1"),
            &[&config.source.replication.slot],
        )
        .await
        .map_err(db("reading the slot's confirmed time"))?
        .and_then(|r| r.get(0));
    // No confirmed position yet: nothing is older than it.
    let confirmed = confirmed.unwrap_or_else(|| "-infinity".into());
    Ok(format!(
        "least(now() - {}, {}::timestamptz)",
        interval(window),
        crate::outbox::quote_literal(&confirmed)
    ))
}

/// How many rows with `column` set the table keeps, and the age in seconds
/// of the oldest (a sent row, or a streamed one).
async fn kept(
    client: &Client,
    table: &TableName,
    column: &str,
) -> Result<(i64, Option<f64>), tokio_postgres::Error> {
    let column = quote_ident(column);
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), extract(epoch FROM now() - min({column}))::float8 FROM {table} \
                 WHERE {column} IS NOT NULL"
            ),
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Sets the age of the oldest row retention keeps that it would delete
/// once old enough.
async fn oldest_retained(client: &Client, table: &TableName, column: &str) {
    match kept(client, table, column).await {
        Ok((_, age)) => metrics()
            .retention_oldest_age
            .set(age.unwrap_or(0.0).max(0.0)),
        Err(e) => {
            tracing::debug!(error = %postgres::describe(&e), "reading the oldest retained row")
        }
    }
}

/// `check`'s `retention` line: what is kept, and the oldest row kept.
pub async fn check_line(config: &Config, client: &Client) -> String {
    let r = &config.retention;
    if !r.enabled() {
        return "off: sent rows stay in the outbox for ever (set retention.sent_after)".into();
    }
    let keep = |w: Option<Duration>| match w {
        Some(w) => humantime::format_duration(w).to_string(),
        None => "for ever".into(),
    };
    let mut parts = Vec::new();
    match config.outbox.mark {
        MarkMode::None => parts.push(format!("streamed rows kept {}", keep(r.streamed_after))),
        MarkMode::Update => parts.push(format!("sent rows kept {}", keep(r.sent_after))),
        MarkMode::Delete => parts.push("sent rows deleted when marked".into()),
    }
    parts.push(format!(
        "retried dead letters kept {}",
        keep(r.dead_letters_retried_after)
    ));
    parts.push(format!(
        "{} rows per statement every {}{}",
        r.batch_size,
        humantime::format_duration(r.interval),
        if r.drop_partitions {
            ", whole partitions dropped"
        } else {
            ""
        }
    ));
    let column = match config.outbox.mark {
        MarkMode::Update => Some(&config.outbox.columns.sent_at),
        MarkMode::None => Some(&config.outbox.columns.created_at),
        MarkMode::Delete => None,
    };
    if let (Some(column), Ok(table)) = (column, TableName::parse(&config.outbox.table))
        && let Ok((rows, age)) = kept(client, &table, column).await
    {
        parts.push(match age {
            Some(age) => format!(
                "{rows} kept, the oldest {} old",
                humantime::format_duration(Duration::from_secs(age.max(0.0) as u64))
            ),
            None => "none kept yet".into(),
        });
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_never_takes_a_row_without_a_time() {
        let table = TableName::parse("app.outbox").expect("name");
        let window = Window {
            column: "sent_at".into(),
            cutoff: "now() - interval '60 seconds'".into(),
        };
        let sql = delete_batch(&table, "id", &window, 500, true);
        assert_eq!(
            sql,
            "DELETE FROM \"app\".\"outbox\" AS t WHERE t.\"id\" IN (SELECT \"id\" FROM \"app\".\"outbox\" \
             WHERE \"sent_at\" < now() - interval '60 seconds' ORDER BY \"id\" LIMIT 500 FOR UPDATE SKIP LOCKED) \
             AND t.\"sent_at\" < now() - interval '60 seconds'"
        );
        assert_eq!(
            interval(Duration::from_secs(7 * 86_400)),
            "interval '604800 seconds'"
        );
    }
}
