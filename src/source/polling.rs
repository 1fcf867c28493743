//! The polling source: claims rows with `FOR UPDATE SKIP LOCKED` inside a
//! transaction held open while the batch is published, marks the confirmed
//! ones in one statement and commits. LISTEN/NOTIFY wakes it at once; the
//! poll interval is only the fallback.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::{Source, SourceError};
use crate::config::{Config, PostgresConfig};
use crate::event::OutboxEvent;
use crate::metrics::{Component, metrics};
use crate::outbox::{OutboxSchema, OutboxSql, quote_ident};
use crate::postgres;

/// Reads the outbox table by polling; reconnects on its own after an error.
pub struct PollingSource {
    postgres: PostgresConfig,
    outbox: crate::config::OutboxConfig,
    notify_channel: String,
    poll_interval: Duration,
    woken: Arc<Notify>,
    session: Option<Session>,
    /// Ids of the rows locked by the open transaction, in claim order.
    claimed: Vec<String>,
    ever_connected: bool,
    /// Only rows with ids up to this (the replication catch-up pass).
    until: Option<String>,
}

/// One live connection with its prepared statements.
struct Session {
    client: Client,
    claim: Statement,
    mark: Statement,
    sql: OutboxSql,
}

impl PollingSource {
    pub fn new(config: &Config) -> Self {
        PollingSource {
            postgres: config.postgres.clone(),
            outbox: config.outbox.clone(),
            notify_channel: config.source.polling.notify_channel.clone(),
            poll_interval: config.source.polling.poll_interval,
            woken: Arc::new(Notify::new()),
            session: None,
            claimed: Vec::new(),
            ever_connected: false,
            until: None,
        }
    }

    /// A source that only sees unsent rows with ids up to `until`: the
    /// one-time pass over rows written before a replication slot existed.
    pub fn until(config: &Config, until: String) -> Self {
        let mut source = Self::new(config);
        source.notify_channel = String::new();
        source.until = (!until.is_empty()).then_some(until);
        source
    }

    async fn session(&mut self) -> Result<&mut Session, SourceError> {
        if self.session.is_none() {
            let session = self.open().await?;
            if self.ever_connected {
                metrics().reconnects.with_label_values(&["postgres"]).inc();
                tracing::info!("reconnected to postgres");
            }
            self.ever_connected = true;
            metrics().set_connected(Component::Postgres, true);
            // Rows may have arrived while we were away and their
            // notifications are lost: look at once.
            self.woken.notify_one();
            self.session = Some(session);
        }
        self.session.as_mut().ok_or(SourceError::SessionLost)
    }

    async fn open(&self) -> Result<Session, SourceError> {
        let notify = (!self.notify_channel.is_empty()).then(|| self.woken.clone());
        let client = postgres::connect(&self.postgres, "source", notify).await?;
        let schema = OutboxSchema::load(&client, &self.outbox).await?;
        let sql = OutboxSql::new(&self.outbox, &schema);
        let claim_sql = if self.until.is_some() {
            &sql.claim_until
        } else {
            &sql.claim
        };
        let claim = client
            .prepare(claim_sql)
            .await
            .map_err(SourceError::Claim)?;
        let mark = client.prepare(&sql.mark).await.map_err(SourceError::Ack)?;
        if !self.notify_channel.is_empty() {
            client
                .batch_execute(&format!("LISTEN {}", quote_ident(&self.notify_channel)))
                .await
                .map_err(SourceError::Claim)?;
        }
        Ok(Session {
            client,
            claim,
            mark,
            sql,
        })
    }

    /// Drops the session after an error; its open transaction dies with it,
    /// which releases the claimed rows.
    fn reset(&mut self) {
        self.session = None;
        self.claimed.clear();
        metrics().set_connected(Component::Postgres, false);
    }
}

impl Source for PollingSource {
    fn label(&self) -> &'static str {
        "polling"
    }

    async fn connect(&mut self) -> Result<(), SourceError> {
        self.session().await.map(|_| ())
    }

    async fn claim(&mut self, limit: usize) -> Result<Vec<OutboxEvent>, SourceError> {
        if !self.claimed.is_empty() {
            self.release().await;
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let until = self.until.clone();
        let session = self.session().await?;
        // Sent together: BEGIN and the claim share one round trip.
        let params: Vec<&(dyn ToSql + Sync)> = match &until {
            Some(until) => vec![&limit, until],
            None => vec![&limit],
        };
        let result = tokio::try_join!(
            session.client.batch_execute("BEGIN"),
            session.client.query(&session.claim, &params),
        );
        let rows = match result {
            Ok((_, rows)) => rows,
            Err(e) => {
                self.reset();
                return Err(SourceError::Claim(e));
            }
        };
        let events: Result<Vec<OutboxEvent>, _> =
            rows.iter().map(|row| session.sql.decode(row)).collect();
        let events = match events {
            Ok(events) => events,
            Err(e) => {
                self.reset();
                return Err(SourceError::Claim(e));
            }
        };
        if events.is_empty() {
            if let Err(e) = session.client.batch_execute("COMMIT").await {
                self.reset();
                return Err(SourceError::Claim(e));
            }
        } else {
            self.claimed = events.iter().map(|e| e.id.clone()).collect();
        }
        Ok(events)
    }

    async fn ack(&mut self, count: usize) -> Result<(), SourceError> {
        if count == 0 {
            self.release().await;
            return Ok(());
        }
        let ids: Vec<String> = self.claimed.iter().take(count).cloned().collect();
        let Some(session) = self.session.as_mut() else {
            self.claimed.clear();
            return Err(SourceError::SessionLost);
        };
        let params: [&(dyn ToSql + Sync); 1] = [&ids];
        let result = tokio::try_join!(
            session.client.execute(&session.mark, &params),
            session.client.batch_execute("COMMIT"),
        );
        self.claimed.clear();
        match result {
            Ok((marked, _)) => {
                if marked != ids.len() as u64 {
                    tracing::warn!(
                        expected = ids.len(),
                        marked,
                        "fewer rows marked than confirmed; were some changed by another process?"
                    );
                }
                metrics().events_acknowledged.inc_by(ids.len() as u64);
                Ok(())
            }
            Err(e) => {
                self.reset();
                Err(SourceError::Ack(e))
            }
        }
    }

    async fn release(&mut self) {
        self.claimed.clear();
        if let Some(session) = self.session.as_mut()
            && let Err(e) = session.client.batch_execute("ROLLBACK").await
        {
            tracing::warn!(error = %e, "releasing claimed rows failed; dropping the session");
            self.reset();
        }
    }

    async fn wait(&mut self) {
        let _ = tokio::time::timeout(self.poll_interval, self.woken.notified()).await;
    }
}
