//! `outbox-relay replay`: publishes already-sent events again, for a
//! consumer that lost its data. The rows go back through the outbox unsent
//! (see [`crate::outbox::requeue`]), so the running daemon publishes them,
//! in order, at least once; it is safe to run beside it.

use crate::config::{ColumnsConfig, Config, MarkMode};
use crate::outbox::requeue::{STAGING, create_staging, requeue_staged};
use crate::outbox::{OutboxSchema, SchemaError, quote_ident};
use crate::postgres::ConnectError;
use crate::since::since_timestamp;

/// The events to replay: every bound given must hold.
#[derive(Debug, Clone, Default)]
pub struct ReplayRange {
    /// Ids from this one on (compared in the id column's own type).
    pub from_id: Option<String>,
    /// Ids up to and including this one.
    pub to_id: Option<String>,
    /// Events created at or after this time: a timestamp Postgres reads, or
    /// a duration (`2h`) meaning that long ago.
    pub since: Option<String>,
}

/// Why replaying failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("connecting: {0}")]
    Connect(#[from] ConnectError),
    #[error("outbox table: {0}")]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    Usage(String),
    #[error("replaying: {}", crate::postgres::describe(.0))]
    Query(#[from] tokio_postgres::Error),
}

impl ReplayError {
    /// Whether the command line was wrong, rather than the database.
    pub fn is_usage(&self) -> bool {
        matches!(self, ReplayError::Usage(_))
    }
}

/// Checks `--from-id` and `--to-id` against the id column's type (with
/// Postgres's own cast, so every type reads as it does in SQL) and that
/// they make a range, before anything is written.
async fn check_ids(
    client: &tokio_postgres::Client,
    range: &ReplayRange,
    id_type: &str,
) -> Result<(), ReplayError> {
    for (flag, value) in [("--from-id", &range.from_id), ("--to-id", &range.to_id)] {
        let Some(value) = value else { continue };
        if let Err(e) = client
            .query_one(&format!("SELECT $1::text::{id_type}"), &[value])
            .await
        {
            let reason = e
                .as_db_error()
                .filter(|db| db.code().code().starts_with("22"))
                .map(|db| db.message().to_owned());
            return Err(match reason {
                Some(reason) => ReplayError::Usage(format!(
                    "{flag} `{value}` is not a valid id: the id column is {id_type} ({reason})"
                )),
                None => ReplayError::Query(e),
            });
        }
    }
    if let (Some(from), Some(to)) = (&range.from_id, &range.to_id) {
        let row = client
            .query_one(
                &format!("SELECT $1::text::{id_type} > $2::text::{id_type}"),
                &[from, to],
            )
            .await?;
        if row.get::<_, bool>(0) {
            return Err(ReplayError::Usage(format!(
                "the range is empty: --from-id {from} is after --to-id {to}"
            )));
        }
    }
    Ok(())
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Events put back in the stream.
    pub count: u64,
    /// Set when `--since` reaches further back than retention keeps sent
    /// rows: what the replay cannot cover.
    pub beyond_retention: Option<String>,
}

/// Puts the sent events in `range` back in the stream.
pub async fn replay(config: &Config, range: &ReplayRange) -> Result<Replayed, ReplayError> {
    if range.from_id.is_none() && range.to_id.is_none() && range.since.is_none() {
        return Err(ReplayError::Usage(
            "give --from-id, --to-id or --since (replaying everything is rarely meant)".into(),
        ));
    }
    let c = &config.outbox.columns;
    if config.outbox.mark == MarkMode::Delete {
        return Err(ReplayError::Usage(
            "outbox.mark = delete: sent rows are deleted, so there is nothing to replay".into(),
        ));
    }
    if range.since.is_some() && ColumnsConfig::optional(&c.created_at).is_none() {
        return Err(ReplayError::Usage(
            "--since needs outbox.columns.created_at".into(),
        ));
    }
    let since = range
        .since
        .as_deref()
        .map(since_timestamp)
        .transpose()
        .map_err(ReplayError::Usage)?;

    let mut client = crate::postgres::connect(&config.postgres, "replay", None).await?;
    let schema = OutboxSchema::load(&client, &config.outbox).await?;
    let id = quote_ident(&c.id);
    let id_type = &schema.id_type;
    check_ids(&client, range, id_type).await?;
    let mut conditions = vec![
        format!("($1::text IS NULL OR o.{id} >= $1::text::{id_type})"),
        format!("($2::text IS NULL OR o.{id} <= $2::text::{id_type})"),
    ];
    conditions.push(match ColumnsConfig::optional(&c.created_at) {
        Some(created_at) => format!(
            "($3::text IS NULL OR o.{} >= $3::text::timestamptz)",
            quote_ident(created_at)
        ),
        // --since was refused above without the column.
        None => "$3::text IS NULL".into(),
    });
    if config.outbox.mark == MarkMode::Update
        && let Some(sent_at) = ColumnsConfig::optional(&c.sent_at)
    {
        // Unsent rows are on their way anyway (and may be claimed now).
        conditions.push(format!("o.{} IS NOT NULL", quote_ident(sent_at)));
    }
    let table = &schema.table;
    let tx = client.transaction().await?;
    create_staging(&tx, table).await?;
    tx.execute(
        &format!(
            "INSERT INTO {STAGING} SELECT * FROM {table} AS o WHERE {}",
            conditions.join(" AND ")
        ),
        &[&range.from_id, &range.to_id, &since],
    )
    .await?;
    let count = requeue_staged(&tx, table, &config.outbox).await?;
    tx.commit().await?;
    let beyond_retention = match (&since, config.retention.sent_after) {
        (Some(since), Some(window)) if config.outbox.mark == MarkMode::Update => {
            let older: bool = client
                .query_one(
                    "SELECT $1::text::timestamptz < now() - make_interval(secs => $2)",
                    &[since, &(window.as_secs_f64())],
                )
                .await?
                .get(0);
            older.then(|| {
                format!(
                    "--since {since} is older than retention keeps sent rows (retention.sent_after = {}): \
                     events sent before then were deleted and are not replayed",
                    humantime::format_duration(window)
                )
            })
        }
        _ => None,
    };
    Ok(Replayed {
        count,
        beyond_retention,
    })
}
