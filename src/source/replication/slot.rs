//! The publication and slot the replication source reads from: checked, and
//! created when missing and allowed, with errors that say what to do. The
//! relay records every slot it creates in `<schema>.outbox_relay_slots`, so a
//! slot that disappears later is reported, never silently re-created (which
//! would skip whatever was written while it was gone).

use tokio_postgres::Client;

use super::connection::ReplicationConnection;
use super::pgoutput::Lsn;
use crate::config::{FailoverSlot, LostSlot, PostgresConfig, ReplicationConfig};
use crate::outbox::{OutboxSchema, TableName, quote_ident, quote_literal};
use crate::source::SourceError;

/// What `prepare` found or made.
#[derive(Debug, Clone)]
pub struct SlotState {
    /// Where streaming resumes.
    pub confirmed: Lsn,
    /// Rows written before the slot existed still to publish: `Some("")`
    /// for all unsent rows, `Some(id)` for unsent rows with ids up to `id`.
    pub catch_up: Option<String>,
    /// How far the last run got inside the transaction after `confirmed`.
    pub partial: Option<Partial>,
}

/// Progress inside a transaction whose events are not all confirmed: the
/// slot can only resume before it, so after a restart it is streamed again
/// from its start, and its first `confirmed` events (in stream order, which
/// a replay repeats) are known published. `final_lsn` and `xid` (from its
/// Begin message) tell the same transaction when it comes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub final_lsn: Lsn,
    pub xid: u32,
    pub confirmed: u64,
}

/// Id types whose order is the order rows were written in (sequences), so
/// that "ids up to the last one before the slot" is exactly the backlog.
const SEQUENTIAL_IDS: &[&str] = &["bigint", "integer", "smallint"];

/// The relay's own record of its slots: name, pending catch-up, the newest
/// position whose events are confirmed and marked, and the [`Partial`]
/// progress inside the transaction after it.
fn state_table(table: &TableName) -> String {
    format!(
        "{}.outbox_relay_slots",
        quote_ident(table.schema_or_public())
    )
}

/// Columns of the state table, as the statement below makes them.
const STATE_COLUMNS: &[&str] = &[
    "slot",
    "catch_up_until",
    "created_at",
    "confirmed_lsn",
    "txn_final_lsn",
    "txn_xid",
    "txn_confirmed",
    "confirmed_at",
];

/// Creates the state table if missing (and adds columns newer versions
/// use). `migrate` calls it too; a table that already has every column is
/// left alone, so a relay role without CREATE on the schema (or not owning
/// the table) can use the one `migrate` made.
pub async fn ensure_state_table(
    client: &impl tokio_postgres::GenericClient,
    table: &TableName,
) -> Result<(), SourceError> {
    let state = state_table(table);
    let present: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) \
             AND attname = ANY($2) AND attnum > 0 AND NOT attisdropped",
            &[&state, &STATE_COLUMNS],
        )
        .await
        .map_err(SourceError::Claim)?
        .get(0);
    if usize::try_from(present).ok() == Some(STATE_COLUMNS.len()) {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {state} (slot text PRIMARY KEY, \
             catch_up_until text, created_at timestamptz NOT NULL DEFAULT now()); \
             ALTER TABLE {state} ADD COLUMN IF NOT EXISTS confirmed_lsn text; \
             ALTER TABLE {state} ADD COLUMN IF NOT EXISTS txn_final_lsn text; \
             ALTER TABLE {state} ADD COLUMN IF NOT EXISTS txn_xid bigint; \
             ALTER TABLE {state} ADD COLUMN IF NOT EXISTS txn_confirmed bigint; \
             ALTER TABLE {state} ADD COLUMN IF NOT EXISTS confirmed_at timestamptz"
        ))
        .await
        .map_err(SourceError::Claim)
}

/// Makes sure replication can start.
pub async fn prepare(
    client: &Client,
    postgres: &PostgresConfig,
    settings: &ReplicationConfig,
    schema: &OutboxSchema,
    id_column: &str,
    unsent_filter: &str,
) -> Result<SlotState, SourceError> {
    let fail = |text: String| SourceError::Replication(text);
    let db = |e: tokio_postgres::Error| SourceError::Claim(e);
    let table = &schema.table;
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(db)?
        .get(0);
    if wal_level != "logical" {
        return Err(fail(format!(
            "wal_level is `{wal_level}`; logical replication needs `logical` \
             (ALTER SYSTEM SET wal_level = logical, then restart Postgres)"
        )));
    }
    let version = crate::postgres::version::server_version_num(client)
        .await
        .map_err(db)?;
    let failover = wants_failover(settings.failover, version)?;
    let can_replicate = crate::grants::can_replicate(client).await.map_err(db)?;
    if !can_replicate {
        // What the server would refuse with 42501 on the replication
        // session: a grant fixes it, so it is retried like that refusal.
        return Err(SourceError::ReplicationRefused {
            failure: crate::postgres::ConnectFailure::Permission,
            message:
                "the database user lacks the REPLICATION attribute (ALTER ROLE ... REPLICATION; \
                 on RDS and Aurora: GRANT rds_replication TO ...)"
                    .into(),
        });
    }

    let publication = &settings.publication;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[publication],
        )
        .await
        .map_err(db)?
        .is_some();
    if !exists {
        if !settings.create {
            return Err(fail(format!(
                "publication `{publication}` does not exist and source.replication.create is false"
            )));
        }
        client
            .batch_execute(&super::publication::create_sql(publication, table))
            .await
            .map_err(|e| match e.code() {
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => fail(format!(
                    "publication `{publication}` does not exist and creating it failed: {} \
                     (CREATE PUBLICATION needs ownership of {table} and CREATE on the database; \
                     run `outbox-relay migrate` as its owner with source.mode = \"replication\")",
                    crate::postgres::describe(&e)
                )),
                _ => db(e),
            })?;
        tracing::info!(publication = %publication, "created publication");
    }

    let state = state_table(table);
    ensure_state_table(client, table).await?;
    let recorded = client
        .query_opt(
            &format!(
                "SELECT catch_up_until, created_at::text, confirmed_lsn, \
                 txn_final_lsn, txn_xid, txn_confirmed FROM {state} WHERE slot = $1"
            ),
            &[&settings.slot],
        )
        .await
        .map_err(db)?;

    let name = &settings.slot;
    // Invalidated by a conflict on a standby it was synced to (16+), with
    // the reason (17+): as unusable as a slot that lost its WAL.
    let columns = match version {
        170_000.. => "failover, invalidation_reason",
        160_000.. => "false, CASE WHEN conflicting THEN 'conflict' END",
        _ => "false, NULL::text",
    };
    let slot = client
        .query_opt(
            &format!(
                "SELECT active, wal_status, confirmed_flush_lsn::text, {columns} \
                 FROM pg_replication_slots WHERE slot_name = $1"
            ),
            &[name],
        )
        .await
        .map_err(db)?;
    let create = Creation {
        postgres,
        name,
        schema,
        id_column,
        unsent_filter,
        state: &state,
        version,
        failover,
    };
    match (slot, recorded) {
        (Some(row), recorded) => {
            let active: bool = row.get(0);
            let wal_status: Option<String> = row.get(1);
            let invalidated: Option<String> = row.get(4);
            let lost = match (wal_status.as_deref(), invalidated) {
                (Some("lost"), _) => Some("lost".to_owned()),
                (_, Some(reason)) => Some(format!("invalidated ({reason})")),
                _ => None,
            };
            if let Some(lost) = lost {
                if settings.on_lost_slot == LostSlot::Recover && !active {
                    recover_slot(client, &create, "lost", &lost).await?;
                    return create.run(client).await;
                }
                return Err(SourceError::SlotUnusable(format!(
                    "`{name}` is {lost}: Postgres removed WAL or rows it still needed (see \
                     max_slot_wal_keep_size), so events may be missing from the stream. \
                     Run `outbox-relay recover-slot` to recreate it and publish every row \
                     not yet marked sent, or set source.replication.on_lost_slot = \"recover\""
                )));
            }
            if active {
                return Err(SourceError::SlotInUse(name.to_owned()));
            }
            let is_failover: bool = row.get(3);
            if version >= 170_000 && is_failover != failover {
                set_failover(postgres, name, failover).await?;
            }
            let (catch_up, marked, partial) = match recorded {
                Some(r) => (
                    r.get::<_, Option<String>>(0),
                    r.get::<_, Option<String>>(2)
                        .and_then(|l| l.parse::<Lsn>().ok()),
                    partial(&r),
                ),
                None => {
                    // A slot made outside the relay: adopt it as it is.
                    client
                        .execute(&format!("INSERT INTO {state} (slot) VALUES ($1)"), &[name])
                        .await
                        .map_err(db)?;
                    (None, None, None)
                }
            };
            let lsn: Option<String> = row.get(2);
            let slot_lsn: Lsn = lsn.and_then(|l| l.parse().ok()).unwrap_or_default();
            // Postgres 15 may not persist a slot's confirmed position across
            // a restart; our own record (written with the marks) is at least
            // as new, and starting there skips what was already delivered.
            Ok(SlotState {
                confirmed: slot_lsn.max(marked.unwrap_or_default()),
                catch_up,
                partial,
            })
        }
        (None, Some(recorded)) => {
            let created: String = recorded.get(1);
            let gone = format!(
                "was created by the relay at {created} but does not exist on this server \
                 (a promoted standby without a synchronised copy, or dropped)"
            );
            if settings.on_lost_slot == LostSlot::Recover {
                recover_slot(client, &create, "missing", &gone).await?;
                return create.run(client).await;
            }
            Err(SourceError::SlotUnusable(format!(
                "`{name}` {gone}; events written since it vanished would be skipped if it were \
                 re-created silently. Run `outbox-relay recover-slot` to recreate it and publish \
                 every row not yet marked sent, or set source.replication.on_lost_slot = \"recover\""
            )))
        }
        (None, None) => {
            if !settings.create {
                return Err(fail(format!(
                    "replication slot `{name}` does not exist and source.replication.create is false"
                )));
            }
            create.run(client).await
        }
    }
}

/// Whether the slot should be a failover slot on a server of `version`
/// (`server_version_num`).
fn wants_failover(setting: FailoverSlot, version: i32) -> Result<bool, SourceError> {
    let supported = version >= 170_000;
    match setting {
        FailoverSlot::Auto => Ok(supported),
        FailoverSlot::Off => Ok(false),
        FailoverSlot::On if supported => Ok(true),
        FailoverSlot::On => Err(SourceError::Unsupported(format!(
            "source.replication.failover = true needs PostgreSQL 17 or newer (failover slots); \
             this server is {}; set it to \"auto\" or false",
            version_name(version)
        ))),
    }
}

/// `150004` as `15.4`.
pub fn version_name(version: i32) -> String {
    format!("{}.{}", version / 10_000, version % 10_000)
}

/// Makes an existing slot a failover slot, or a plain one (17+; the slot
/// must not be in use, which the caller checked).
async fn set_failover(postgres: &PostgresConfig, name: &str, on: bool) -> Result<(), SourceError> {
    let mut conn = ReplicationConnection::connect(postgres)
        .await
        .map_err(super::source::replication)?;
    conn.simple_query(&format!(
        "ALTER_REPLICATION_SLOT {} (FAILOVER {on})",
        quote_ident(name)
    ))
    .await
    .map_err(|e| SourceError::Replication(format!("making `{name}` failover={on}: {e}")))?;
    tracing::info!(slot = %name, failover = on, "changed the replication slot's failover setting");
    Ok(())
}

/// `on_lost_slot = "recover"`: forgets the lost or missing slot so that
/// [`Creation::run`] makes it again with a pass over every unsent row.
/// Logged, counted and alerted on (`outbox_relay_replication_slot_recoveries_total`).
async fn recover_slot(
    client: &Client,
    create: &Creation<'_>,
    reason: &'static str,
    what: &str,
) -> Result<(), SourceError> {
    let db = |e: tokio_postgres::Error| SourceError::Claim(e);
    let name = create.name;
    tracing::warn!(
        slot = %name,
        reason,
        "replication slot {what}: creating it again and publishing every row not marked sent \
         before streaming (on_lost_slot = \"recover\"; rows published but not yet marked are \
         published again)"
    );
    client
        .query_opt(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1 AND NOT active",
            &[&name],
        )
        .await
        .map_err(db)?;
    client
        .execute(
            &format!("DELETE FROM {} WHERE slot = $1", create.state),
            &[&name],
        )
        .await
        .map_err(db)?;
    crate::metrics::metrics()
        .slot_recoveries
        .with_label_values(&[reason])
        .inc();
    Ok(())
}

/// What creating the slot needs.
struct Creation<'a> {
    postgres: &'a PostgresConfig,
    name: &'a str,
    schema: &'a OutboxSchema,
    id_column: &'a str,
    unsent_filter: &'a str,
    state: &'a str,
    /// `server_version_num`: the command's syntax changed in 15.
    version: i32,
    failover: bool,
}

impl Creation<'_> {
    /// `CREATE_REPLICATION_SLOT` with an exported snapshot, in the syntax
    /// of the server's version.
    fn command(&self) -> String {
        let name = quote_ident(self.name);
        if self.version < 150_000 {
            return format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput EXPORT_SNAPSHOT");
        }
        let failover = if self.failover { ", FAILOVER true" } else { "" };
        format!("CREATE_REPLICATION_SLOT {name} LOGICAL pgoutput (SNAPSHOT 'export'{failover})")
    }

    async fn run(&self, client: &Client) -> Result<SlotState, SourceError> {
        create(
            client,
            self.postgres,
            self.name,
            &self.command(),
            self.schema,
            self.id_column,
            self.unsent_filter,
            self.state,
        )
        .await
    }
}

/// Creates the slot and records where the one-time pass over older rows
/// ends, reading the table in the slot's own snapshot so that every row is
/// either before it (the pass) or in the stream.
#[allow(clippy::too_many_arguments)]
async fn create(
    client: &Client,
    postgres: &PostgresConfig,
    name: &str,
    command: &str,
    schema: &OutboxSchema,
    id_column: &str,
    unsent_filter: &str,
    state: &str,
) -> Result<SlotState, SourceError> {
    let fail = |text: String| SourceError::Replication(text);
    let db = |e: tokio_postgres::Error| SourceError::Claim(e);
    let mut conn = ReplicationConnection::connect(postgres)
        .await
        .map_err(super::source::replication)?;
    let rows = conn
        .simple_query(command)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let field = |i: usize| rows.first().and_then(|r| r.get(i).cloned().flatten());
    let confirmed: Lsn = field(1).and_then(|l| l.parse().ok()).unwrap_or_default();
    let snapshot = field(2).ok_or_else(|| fail("slot created without a snapshot".into()))?;

    let catch_up = if SEQUENTIAL_IDS.contains(&schema.id_type.as_str()) {
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&snapshot)
            ))
            .await
            .map_err(db)?;
        let id = quote_ident(id_column);
        let last: Option<String> = client
            .query_one(
                &format!(
                    "SELECT max({id})::text FROM {}{unsent_filter}",
                    schema.table
                ),
                &[],
            )
            .await
            .map_err(db)?
            .get(0);
        client.batch_execute("COMMIT").await.map_err(db)?;
        last
    } else {
        // No write order in the ids: the pass takes every unsent row.
        Some(String::new())
    };
    drop(conn);
    client
        .execute(
            &format!("INSERT INTO {state} (slot, catch_up_until) VALUES ($1, $2)"),
            &[&name, &catch_up],
        )
        .await
        .map_err(db)?;
    tracing::info!(slot = %name, at = %confirmed, catch_up = ?catch_up, command, "created replication slot");
    Ok(SlotState {
        confirmed,
        catch_up,
        partial: None,
    })
}

/// The recorded [`Partial`] of a state row, if it has a whole one.
fn partial(row: &tokio_postgres::Row) -> Option<Partial> {
    let final_lsn = row.get::<_, Option<String>>(3)?.parse().ok()?;
    let xid = u32::try_from(row.get::<_, Option<i64>>(4)?).ok()?;
    let confirmed = u64::try_from(row.get::<_, Option<i64>>(5)?).ok()?;
    Some(Partial {
        final_lsn,
        xid,
        confirmed,
    })
}

/// Records the newest position whose events are all confirmed and marked,
/// and how far the relay got inside the transaction after it.
pub async fn record_confirmed(
    client: &Client,
    table: &TableName,
    slot: &str,
    lsn: Lsn,
    partial: Option<Partial>,
) -> Result<(), SourceError> {
    let final_lsn = partial.map(|p| p.final_lsn.to_string());
    let xid = partial.map(|p| i64::from(p.xid));
    let confirmed = partial.map(|p| i64::try_from(p.confirmed).unwrap_or(i64::MAX));
    client
        .execute(
            &format!(
                "UPDATE {} SET confirmed_lsn = $2, txn_final_lsn = $3, txn_xid = $4, \
                 txn_confirmed = $5, confirmed_at = now() WHERE slot = $1",
                state_table(table)
            ),
            &[&slot, &lsn.to_string(), &final_lsn, &xid, &confirmed],
        )
        .await
        .map_err(SourceError::Ack)?;
    Ok(())
}

/// Records that the pass over older rows is complete.
pub async fn finish_catch_up(
    client: &Client,
    table: &TableName,
    slot: &str,
) -> Result<(), SourceError> {
    client
        .execute(
            &format!(
                "UPDATE {} SET catch_up_until = NULL WHERE slot = $1",
                state_table(table)
            ),
            &[&slot],
        )
        .await
        .map_err(SourceError::Claim)?;
    Ok(())
}

/// `outbox-relay recover-slot`: drops the slot (if any) and forgets it, so
/// the next start creates it again and publishes every unsent row first.
pub async fn recover(
    client: &Client,
    table: &TableName,
    slot: &str,
) -> Result<String, SourceError> {
    let db = |e: tokio_postgres::Error| SourceError::Claim(e);
    let dropped = client
        .query_opt(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(db)?
        .is_some();
    ensure_state_table(client, table).await?;
    client
        .execute(
            &format!("DELETE FROM {} WHERE slot = $1", state_table(table)),
            &[&slot],
        )
        .await
        .map_err(db)?;
    Ok(if dropped {
        format!(
            "dropped slot `{slot}`; the next start recreates it and first publishes every unsent row"
        )
    } else {
        format!(
            "slot `{slot}` did not exist; the next start creates it and first publishes every unsent row"
        )
    })
}
