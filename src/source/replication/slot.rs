//! The publication and slot the replication source reads from: checked, and
//! created when missing and allowed, with errors that say what to do.

use tokio_postgres::Client;

use super::connection::ReplicationConnection;
use super::pgoutput::Lsn;
use crate::config::{PostgresConfig, ReplicationConfig};
use crate::outbox::{TableName, quote_ident};
use crate::source::SourceError;

/// Makes sure replication can start; returns the slot's confirmed position.
pub async fn prepare(
    client: &Client,
    postgres: &PostgresConfig,
    settings: &ReplicationConfig,
    table: &TableName,
) -> Result<Lsn, SourceError> {
    let fail = |text: String| SourceError::Replication(text);
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(SourceError::Claim)?
        .get(0);
    if wal_level != "logical" {
        return Err(fail(format!(
            "wal_level is `{wal_level}`; logical replication needs `logical` \
             (ALTER SYSTEM SET wal_level = logical, then restart Postgres)"
        )));
    }
    let can_replicate: bool = client
        .query_one(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(SourceError::Claim)?
        .get(0);
    if !can_replicate {
        return Err(fail(
            "the database user lacks the REPLICATION attribute (ALTER ROLE ... REPLICATION)".into(),
        ));
    }

    let publication = &settings.publication;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[publication],
        )
        .await
        .map_err(SourceError::Claim)?
        .is_some();
    if !exists {
        if !settings.create {
            return Err(fail(format!(
                "publication `{publication}` does not exist and source.replication.create is false"
            )));
        }
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {} FOR TABLE {table} WITH (publish = 'insert')",
                quote_ident(publication)
            ))
            .await
            .map_err(SourceError::Claim)?;
        tracing::info!(publication = %publication, "created publication");
    }

    let name = &settings.slot;
    let row = client
        .query_opt(
            "SELECT active, wal_status, confirmed_flush_lsn::text FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[name],
        )
        .await
        .map_err(SourceError::Claim)?;
    match row {
        Some(row) => {
            let active: bool = row.get(0);
            let wal_status: Option<String> = row.get(1);
            if active {
                return Err(fail(format!(
                    "replication slot `{name}` is in use by another session (another relay?)"
                )));
            }
            if wal_status.as_deref() == Some("lost") {
                return Err(fail(format!(
                    "replication slot `{name}` is lost (its WAL was removed, see \
                     max_slot_wal_keep_size); events may be missing from the stream"
                )));
            }
            let lsn: Option<String> = row.get(2);
            Ok(lsn.and_then(|l| l.parse().ok()).unwrap_or_default())
        }
        None => {
            if !settings.create {
                return Err(fail(format!(
                    "replication slot `{name}` does not exist and source.replication.create is false"
                )));
            }
            let mut conn = ReplicationConnection::connect(postgres)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let rows = conn
                .simple_query(&format!(
                    "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                    quote_ident(name)
                ))
                .await
                .map_err(|e| fail(e.to_string()))?;
            let lsn = rows
                .first()
                .and_then(|r| r.get(1).cloned().flatten())
                .and_then(|l| l.parse().ok())
                .unwrap_or_default();
            tracing::info!(slot = %name, at = %lsn, "created replication slot");
            Ok(lsn)
        }
    }
}
