//! The backlog gauges: unsent rows and the age of the oldest, refreshed on an
//! interval over a connection of their own so they never delay publishing.

use std::time::Duration;

use crate::config::{Config, SourceMode};
use crate::metrics::metrics;
use crate::outbox::{OutboxSchema, OutboxSql};
use crate::postgres;
use crate::shutdown::Shutdown;

/// Refreshes the gauges every `metrics.backlog_interval` until shutdown.
pub async fn run(config: Config, shutdown: Shutdown) {
    let interval = config.metrics.backlog_interval;
    let mut session = None;
    loop {
        if session.is_none() {
            session = open(&config).await;
        }
        let mut broken = false;
        if let Some((client, sql)) = &session {
            if config.source.mode == SourceMode::Replication {
                slot_gauges(client, &config.source.replication.slot).await;
            }
            dead_letter_gauge(client, &config).await;
            match client.query_one(sql, &[]).await {
                Ok(row) => {
                    let count: i64 = row.get(0);
                    let oldest: Option<f64> = row.get(1);
                    metrics().backlog_events.set(count);
                    metrics()
                        .oldest_unsent_age
                        .set(oldest.unwrap_or(0.0).max(0.0));
                }
                Err(e) => {
                    tracing::debug!(error = %postgres::describe(&e), "refreshing backlog gauges failed");
                    broken = true;
                }
            }
        }
        if broken {
            session = None;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.requested() => return,
        }
    }
}

/// Dead letters not yet retried; silent while the table does not exist.
async fn dead_letter_gauge(client: &tokio_postgres::Client, config: &Config) {
    let Ok(table) = crate::dead_letters::table_name(config) else {
        return;
    };
    let exists = crate::postgres::relation_exists(client, &table.to_string()).await;
    if !exists.unwrap_or(false) {
        return;
    }
    let sql = format!("SELECT count(*) FROM {table} WHERE retried_at IS NULL");
    match client.query_one(&sql, &[]).await {
        Ok(row) => metrics().dead_letters_pending.set(row.get(0)),
        Err(e) => tracing::debug!(error = %postgres::describe(&e), "counting dead letters failed"),
    }
}

/// The replication slot's health and the WAL it holds back. A slot that
/// is lost or gone is logged at error on every refresh until it is fixed.
async fn slot_gauges(client: &tokio_postgres::Client, slot: &str) {
    let row = client
        .query_opt(
            "SELECT wal_status, (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await;
    match row {
        Ok(Some(row)) => {
            let status: Option<String> = row.get(0);
            let lag: Option<i64> = row.get(1);
            metrics().slot_lag_bytes.set(lag.unwrap_or(0));
            let healthy = status.as_deref() != Some("lost");
            metrics().slot_healthy.set(i64::from(healthy));
            if !healthy {
                tracing::error!(
                    slot,
                    "replication slot is lost: run `outbox-relay recover-slot`"
                );
            }
        }
        Ok(None) => {
            // Normal for a moment before the first start creates it; the
            // source itself stops loudly if a slot it created vanished.
            metrics().slot_healthy.set(0);
            tracing::debug!(slot, "replication slot does not exist (yet)");
        }
        Err(e) => {
            tracing::debug!(error = %postgres::describe(&e), "reading the replication slot failed")
        }
    }
}

async fn open(config: &Config) -> Option<(tokio_postgres::Client, String)> {
    let opened = async {
        let client = postgres::connect(&config.postgres, "backlog", None).await?;
        let schema = OutboxSchema::load(&client, &config.outbox).await?;
        let sql = OutboxSql::new(&config.outbox, &schema).backlog;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((client, sql))
    };
    match tokio::time::timeout(Duration::from_secs(30), opened).await {
        Ok(Ok(session)) => Some(session),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "backlog gauges cannot connect");
            None
        }
        Err(_) => None,
    }
}
