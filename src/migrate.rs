//! `outbox-relay migrate`: creates the outbox table (named and shaped by the
//! configuration) and the NOTIFY trigger, once, recording what ran; then the
//! relay's own tables (crash guard; in replication mode the slot record and
//! the publication), so the relay can run as a role that may not create
//! them; with `--grant-to ROLE`, the grants that role needs (see
//! [`crate::grants`]).
//!
//! The SQL lives in `migrations/` as templates; identifiers are quoted before
//! they are substituted. Runs hold an advisory lock, so replicas starting
//! together do not race.

use std::collections::HashMap;

use tokio_postgres::Client;

use crate::config::{ColumnsConfig, Config, SourceMode};
use crate::outbox::{TableName, quote_ident, quote_literal};
use crate::postgres::{self, ConnectError};
use crate::source::replication::publication::{self, Found};
use crate::source::replication::slot;

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("connecting: {0}")]
    Connect(#[from] ConnectError),
    #[error("migration {version} ({name}): {}", crate::postgres::describe(.source))]
    Apply {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error("recording migrations: {}", crate::postgres::describe(.0))]
    Bookkeeping(#[from] tokio_postgres::Error),
    #[error("outbox.table: {0}")]
    Table(String),
    #[error("relay state table: {0}")]
    State(crate::source::SourceError),
    #[error("crash guard table: {}", crate::postgres::describe(.0))]
    CrashGuard(tokio_postgres::Error),
    #[error("publication: {}", crate::postgres::describe(.0))]
    Publication(tokio_postgres::Error),
    #[error("--grant-to: {0}")]
    Grants(#[from] crate::grants::GrantsError),
}

/// One migration file.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
    /// What, when it changes, makes the migration run again.
    detail: Detail,
}

/// The configuration a migration depends on beyond the outbox itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Applied once.
    None,
    /// The trigger's channel (skipped when empty).
    NotifyChannel,
    /// The dead-letter table's name.
    DeadLetterTable,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "create_outbox",
        sql: include_str!("../migrations/0001_create_outbox.sql"),
        detail: Detail::None,
    },
    Migration {
        version: 2,
        name: "notify_trigger",
        sql: include_str!("../migrations/0002_notify_trigger.sql"),
        detail: Detail::NotifyChannel,
    },
    Migration {
        version: 3,
        name: "dead_letters",
        sql: include_str!("../migrations/0003_dead_letters.sql"),
        detail: Detail::DeadLetterTable,
    },
];

/// Advisory lock key shared by every `migrate` run.
const LOCK_KEY: i64 = 0x6f75_7462_6f78; // "outbox"

/// Applies pending migrations and prints one line per migration, then one
/// per relay table, the publication (replication mode) and each grant to
/// `grant_to`, all in one transaction.
pub async fn run(config: &Config, grant_to: Option<&str>) -> Result<(), MigrateError> {
    let table = TableName::parse(&config.outbox.table).map_err(MigrateError::Table)?;
    let dead_letters = crate::dead_letters::table_name(config).map_err(MigrateError::Table)?;
    let mut client = postgres::connect(&config.postgres, "migrate", None).await?;
    let values = placeholders(config, &table, &dead_letters);
    let schema = quote_ident(table.schema_or_public());
    let target = table.to_string();
    let channel = &config.source.polling.notify_channel;

    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {schema}.outbox_relay_migrations ( \
            target text NOT NULL, version int NOT NULL, name text NOT NULL, \
            detail text NOT NULL DEFAULT '', applied_at timestamptz NOT NULL DEFAULT now(), \
            PRIMARY KEY (target, version))"
    ))
    .await?;
    let applied = applied(&tx, &schema, &target).await?;

    for m in MIGRATIONS {
        let detail = match m.detail {
            Detail::None => String::new(),
            Detail::NotifyChannel => channel.clone(),
            Detail::DeadLetterTable => dead_letters.to_string(),
        };
        if m.detail == Detail::NotifyChannel && channel.is_empty() {
            println!(
                "{:04} {}: skipped (source.polling.notify_channel is empty)",
                m.version, m.name
            );
            continue;
        }
        if applied.get(&m.version).is_some_and(|d| *d == detail) {
            println!("{:04} {}: already applied to {target}", m.version, m.name);
            continue;
        }
        if m.version == 1 && crate::postgres::relation_exists(&tx, &target).await? {
            // An existing outbox (Debezium-shaped, say) is the application's:
            // left as it is; the column mapping adapts to it.
            record(&tx, &schema, &target, m, &detail).await?;
            println!(
                "{:04} {}: {target} already exists; left unchanged",
                m.version, m.name
            );
            continue;
        }
        let sql = fill(m.sql, &values);
        tx.batch_execute(&sql)
            .await
            .map_err(|source| MigrateError::Apply {
                version: m.version,
                name: m.name,
                source,
            })?;
        record(&tx, &schema, &target, m, &detail).await?;
        println!("{:04} {}: applied to {target}", m.version, m.name);
    }
    relay_tables(&tx, config, &table).await?;
    if let Some(role) = grant_to {
        for line in crate::grants::grant_to(&tx, config, role).await? {
            println!("grants: {line}");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// The tables the relay writes its own state to, which it would otherwise
/// create at start (needing CREATE on the schema), and in replication mode
/// the publication (which needs ownership of the outbox table).
async fn relay_tables(
    tx: &tokio_postgres::Transaction<'_>,
    config: &Config,
    table: &TableName,
) -> Result<(), MigrateError> {
    let guard = crate::crash_guard::table_name(table);
    crate::crash_guard::ensure_table(tx, &guard)
        .await
        .map_err(MigrateError::CrashGuard)?;
    println!("crash_guard: {guard} ready");
    if config.source.mode != SourceMode::Replication {
        return Ok(());
    }
    slot::ensure_state_table(tx, table)
        .await
        .map_err(MigrateError::State)?;
    println!(
        "replication_slots: {}.\"outbox_relay_slots\" ready",
        quote_ident(table.schema_or_public())
    );
    let name = &config.source.replication.publication;
    let failed = MigrateError::Publication;
    match publication::find(tx, name, table).await.map_err(failed)? {
        Found::Covers => println!("publication: `{name}` already publishes {table}"),
        Found::Elsewhere => println!(
            "publication: `{name}` exists but does not publish {table}; left unchanged \
             (ALTER PUBLICATION {} ADD TABLE {table}, as its owner)",
            quote_ident(name)
        ),
        Found::Missing if publication::may_create(tx, table).await.map_err(failed)? => {
            tx.batch_execute(&publication::create_sql(name, table))
                .await
                .map_err(failed)?;
            println!("publication: `{name}` created for {table} (inserts)");
        }
        Found::Missing => println!(
            "publication: `{name}` not created: CREATE PUBLICATION needs ownership of {table} \
             and CREATE on the database (run migrate as the table's owner)"
        ),
    }
    Ok(())
}

async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    target: &str,
    m: &Migration,
    detail: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        &format!(
            "INSERT INTO {schema}.outbox_relay_migrations (target, version, name, detail) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (target, version) \
             DO UPDATE SET detail = EXCLUDED.detail, applied_at = now()"
        ),
        &[&target, &m.version, &m.name, &detail],
    )
    .await?;
    Ok(())
}

async fn applied(
    client: &impl tokio_postgres::GenericClient,
    schema: &str,
    target: &str,
) -> Result<HashMap<i32, String>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT version, detail FROM {schema}.outbox_relay_migrations WHERE target = $1"
            ),
            &[&target],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Values for the `{{placeholders}}` of the migration files. A column
/// configured as absent gets its default name: the table is ours to shape.
fn placeholders(
    config: &Config,
    table: &TableName,
    dead_letters: &TableName,
) -> Vec<(&'static str, String)> {
    let c = &config.outbox.columns;
    let d = ColumnsConfig::default();
    let column =
        |name: &str, default: &str| quote_ident(if name.is_empty() { default } else { name });
    let id = column(&c.id, &d.id);
    let order_columns = if config.outbox.order_column() == c.id {
        id.clone()
    } else {
        format!("{}, {id}", quote_ident(config.outbox.order_column()))
    };
    vec![
        ("schema", quote_ident(table.schema_or_public())),
        ("table", table.to_string()),
        (
            "unsent_index",
            quote_ident(&format!("{}_unsent_idx", table.name)),
        ),
        ("order_columns", order_columns),
        ("id", id),
        (
            "aggregate_type",
            column(&c.aggregate_type, &d.aggregate_type),
        ),
        ("aggregate_id", column(&c.aggregate_id, &d.aggregate_id)),
        ("event_type", column(&c.event_type, &d.event_type)),
        ("payload", column(&c.payload, &d.payload)),
        ("headers", column(&c.headers, &d.headers)),
        ("created_at", column(&c.created_at, &d.created_at)),
        ("sent_at", column(&c.sent_at, &d.sent_at)),
        ("dead_letters", dead_letters.to_string()),
        (
            "dead_letters_pending_index",
            quote_ident(&format!("{}_pending_idx", dead_letters.name)),
        ),
        (
            "channel",
            quote_literal(&config.source.polling.notify_channel),
        ),
    ]
}

fn fill(template: &str, values: &[(&'static str, String)]) -> String {
    let mut sql = template.to_owned();
    for (name, value) in values {
        sql = sql.replace(&format!("{{{{{name}}}}}"), value);
    }
    sql
}

/// Used by `check` to say whether the trigger is installed.
pub async fn trigger_installed(client: &Client, table: &TableName) -> bool {
    client
        .query_opt(
            "SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass($1) AND tgname = 'outbox_relay_notify'",
            &[&table.to_string()],
        )
        .await
        .ok()
        .flatten()
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let config = Config::default();
        let table = TableName::parse(&config.outbox.table).expect("valid");
        let values = placeholders(&config, &table, &table);
        for m in MIGRATIONS {
            let sql = fill(m.sql, &values);
            // The header comment mentions {{placeholders}} by name.
            let body: String = sql.lines().filter(|l| !l.starts_with("--")).collect();
            assert!(
                !body.contains("{{"),
                "unfilled placeholder in {}: {body}",
                m.name
            );
        }
    }
}
