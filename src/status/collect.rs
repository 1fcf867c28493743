//! The part of a status read from Postgres, over one session of its own
//! (application name `outbox-relay status`), each statement bounded by
//! [`STATEMENT_TIMEOUT`] so a status never weighs on a busy server.

use tokio_postgres::Client;

use super::{Backlog, DeadLetters, LeaderState, LockHolder, ReasonCount, SlotState};
use crate::config::Config;
use crate::outbox::{OutboxSchema, OutboxSql, quote_ident};
use crate::postgres;

/// Bound on each statement of a status.
const STATEMENT_TIMEOUT: &str = "5s";

/// What Postgres said; a section that could not be read is `None` and its
/// reason was added to the attention list.
#[derive(Default)]
pub(super) struct FromPostgres {
    /// Why Postgres could not be read at all.
    pub error: Option<String>,
    pub leader: Option<LeaderState>,
    pub backlog: Option<Backlog>,
    /// Rows marked sent in the last minute, when `sent_at` says.
    pub sent_last_minute: Option<i64>,
    pub slot: Option<SlotState>,
    pub dead_letters: Option<DeadLetters>,
}

pub(super) async fn postgres(config: &Config, attention: &mut Vec<String>) -> FromPostgres {
    let client = match postgres::connect(&config.postgres, "status", None).await {
        Ok(client) => client,
        Err(e) => {
            return FromPostgres {
                error: Some(format!("{}: {e}", config.postgres.url)),
                ..FromPostgres::default()
            };
        }
    };
    if let Err(e) = client
        .batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'"))
        .await
    {
        return FromPostgres {
            error: Some(postgres::describe(&e).to_string()),
            ..FromPostgres::default()
        };
    }
    let mut out = FromPostgres {
        leader: note(attention, "the leader lock", leader(config, &client).await),
        ..FromPostgres::default()
    };
    match OutboxSchema::load(&client, &config.outbox).await {
        Err(e) => attention.push(format!("cannot read the backlog: {e}")),
        Ok(schema) => {
            out.backlog = note(
                attention,
                "the backlog",
                backlog(config, &schema, &client).await,
            );
            if let Some(column) = super::sent_at_column(config) {
                out.sent_last_minute = note(
                    attention,
                    "rows sent in the last minute",
                    sent_last_minute(&schema, column, &client).await,
                );
            }
        }
    }
    if super::replication(config) {
        out.slot = note(
            attention,
            "the replication slot",
            slot(config, &client).await,
        );
    }
    out.dead_letters = note(
        attention,
        "the dead letters",
        dead_letters(config, &client).await,
    );
    out
}

/// `result`'s value, or `None` with why `what` could not be read added to
/// `attention`.
fn note<T>(attention: &mut Vec<String>, what: &str, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            attention.push(format!("cannot read {what}: {e}"));
            None
        }
    }
}

fn describe(e: tokio_postgres::Error) -> String {
    postgres::describe(&e).to_string()
}

/// The session holding the advisory lock of [`crate::leader`] (key: the
/// lock class in the high half, the outbox table's oid in the low half),
/// and the other election sessions on this database.
async fn leader(config: &Config, client: &Client) -> Result<LeaderState, String> {
    if !config.leader.enabled {
        return Ok(LeaderState {
            election: false,
            holder: None,
            standbys: 0,
        });
    }
    let holder = client
        .query_opt(
            "SELECT a.pid, host(a.client_addr), a.client_port, \
                    to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SSOF'), a.application_name \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.classid = $1::int8::oid \
               AND l.objid = to_regclass($2)::oid \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             LIMIT 1",
            &[&crate::leader::LOCK_CLASS, &config.outbox.table],
        )
        .await
        .map_err(describe)?
        .map(|row| LockHolder {
            pid: row.get(0),
            client_addr: row.get(1),
            client_port: row.get(2),
            backend_start: row.get(3),
            application_name: row.get(4),
        });
    let holder_pid = holder.as_ref().map_or(0, |h| h.pid);
    let standbys: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'outbox-relay leader' \
               AND datname = current_database() AND pid <> $1",
            &[&holder_pid],
        )
        .await
        .map_err(describe)?
        .get(0);
    Ok(LeaderState {
        election: true,
        holder,
        standbys,
    })
}

/// The same statement as the backlog gauges ([`OutboxSql::backlog`]).
async fn backlog(
    config: &Config,
    schema: &OutboxSchema,
    client: &Client,
) -> Result<Backlog, String> {
    let sql = OutboxSql::new(&config.outbox, schema).backlog;
    let row = client.query_one(&sql, &[]).await.map_err(describe)?;
    let unsent: i64 = row.get(0);
    let oldest: Option<f64> = row.get(1);
    Ok(Backlog {
        unsent,
        oldest_unsent_age_seconds: oldest.filter(|_| unsent > 0).map(|a| a.max(0.0)),
    })
}

/// Rows whose `sent_at` is in the last minute (by any relay). No index
/// covers `sent_at`, so this reads the table: bounded by the statement
/// timeout.
async fn sent_last_minute(
    schema: &OutboxSchema,
    column: &str,
    client: &Client,
) -> Result<i64, String> {
    let sql = format!(
        "SELECT count(*) FROM {} WHERE {} >= now() - interval '1 minute'",
        schema.table,
        quote_ident(column)
    );
    Ok(client.query_one(&sql, &[]).await.map_err(describe)?.get(0))
}

async fn slot(config: &Config, client: &Client) -> Result<SlotState, String> {
    let name = config.source.replication.slot.clone();
    let version = crate::postgres::version::server_version_num(client)
        .await
        .map_err(describe)?;
    // The failover column arrived in PostgreSQL 17.
    let failover = if version >= 170_000 {
        "failover"
    } else {
        "NULL::bool"
    };
    let row = client
        .query_opt(
            &format!(
                "SELECT active, wal_status, \
                 (pg_current_wal_lsn() - confirmed_flush_lsn)::int8, {failover} \
                 FROM pg_replication_slots WHERE slot_name = $1"
            ),
            &[&name],
        )
        .await
        .map_err(describe)?;
    Ok(match row {
        None => SlotState {
            name,
            exists: false,
            active: None,
            wal_status: None,
            lag_bytes: None,
            failover: None,
        },
        Some(row) => SlotState {
            name,
            exists: true,
            active: row.get(0),
            wal_status: row.get(1),
            lag_bytes: row.get(2),
            failover: row.get(3),
        },
    })
}

async fn dead_letters(config: &Config, client: &Client) -> Result<DeadLetters, String> {
    let table = crate::dead_letters::table_name(config)?;
    let name = table.to_string();
    if !postgres::relation_exists(client, &name)
        .await
        .map_err(describe)?
    {
        return Err(format!(
            "table {name} does not exist (run `outbox-relay migrate`)"
        ));
    }
    let rows = client
        .query(
            &format!(
                "SELECT reason, count(*) FROM {name} WHERE retried_at IS NULL \
                 GROUP BY reason ORDER BY count(*) DESC, reason"
            ),
            &[],
        )
        .await
        .map_err(describe)?;
    let by_reason: Vec<ReasonCount> = rows
        .iter()
        .map(|row| ReasonCount {
            reason: row.get(0),
            count: row.get(1),
        })
        .collect();
    Ok(DeadLetters {
        table: name,
        pending: by_reason.iter().map(|r| r.count).sum(),
        by_reason,
    })
}
