//! The backlog gauges: unsent rows and the age of the oldest, refreshed on an
//! interval over a connection of their own so they never delay publishing.

use std::time::Duration;

use crate::config::Config;
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
        if let Some((client, sql)) = &session {
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
                    tracing::debug!(error = %e, "refreshing backlog gauges failed");
                    session = None;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.requested() => return,
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
