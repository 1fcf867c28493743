//! The polling source: claims rows with `FOR UPDATE SKIP LOCKED` inside a
//! transaction held open while the batch is published, marks the confirmed
//! ones in one statement and commits. A row another session holds locked
//! holds back only its own aggregate's later rows (see `outbox::claim`). LISTEN/NOTIFY wakes it at once; the
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
    /// Whether the last claim held back an aggregate (for logging changes).
    holding_back: bool,
}

/// Claim statements per batch at most, when rows are held back.
const MAX_CLAIM_ROUNDS: usize = 4;

/// What one claim found.
#[derive(Default)]
struct Claimed {
    /// Ready to publish, in order.
    events: Vec<OutboxEvent>,
    /// Aggregate ids waiting behind a row another session holds.
    held_back: Vec<String>,
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
            holding_back: false,
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

    /// Runs the claim (inside the open transaction) until `limit` events are
    /// ready, the outbox has no more, or [`MAX_CLAIM_ROUNDS`] rounds ran. A
    /// round after the first leaves out the rows already locked and the
    /// aggregates held back, so one aggregate stuck behind another
    /// session's lock cannot fill every batch and starve the rest.
    async fn claim_rounds(&mut self, limit: usize) -> Result<Claimed, tokio_postgres::Error> {
        let mut claimed = Claimed::default();
        let mut locked: Vec<String> = Vec::new();
        let until = self.until.clone();
        let Some(session) = self.session.as_mut() else {
            return Ok(claimed);
        };
        for round in 0..MAX_CLAIM_ROUNDS {
            let wanted = limit.saturating_sub(claimed.events.len());
            let wanted_sql = i64::try_from(wanted).unwrap_or(i64::MAX);
            let mut params: Vec<&(dyn ToSql + Sync)> =
                vec![&wanted_sql, &claimed.held_back, &locked];
            if let Some(until) = &until {
                params.push(until);
            }
            let rows = if round == 0 {
                // BEGIN and the first round share one round trip.
                let begin = session.client.batch_execute("BEGIN");
                tokio::try_join!(begin, session.client.query(&session.claim, &params))?.1
            } else {
                session.client.query(&session.claim, &params).await?
            };
            let mut held_this_round = false;
            let mut round_ids = Vec::with_capacity(rows.len());
            for row in &rows {
                let (event, held_back) = session.sql.decode(row)?;
                round_ids.push(event.id.clone());
                if held_back {
                    held_this_round = true;
                    if !claimed.held_back.contains(&event.aggregate_id) {
                        claimed.held_back.push(event.aggregate_id);
                    }
                } else {
                    claimed.events.push(event);
                }
            }
            locked.extend(round_ids);
            // Rows held back behind another session's lock took room in
            // the window: look further, without their aggregates.
            if !held_this_round || claimed.events.len() >= limit {
                break;
            }
        }
        Ok(claimed)
    }

    /// Says once when aggregates start waiting behind a row another session
    /// holds, and once when none do any more.
    fn report_held_back(&mut self, aggregates: &[String]) {
        match (self.holding_back, aggregates.is_empty()) {
            (false, false) => tracing::warn!(
                aggregates = ?aggregates.iter().take(10).collect::<Vec<_>>(),
                count = aggregates.len(),
                "rows locked by another session hold back their aggregates' later events; \
                 other aggregates go on"
            ),
            (true, true) => tracing::info!("no aggregate is held back by another session's lock"),
            _ => {}
        }
        self.holding_back = !aggregates.is_empty();
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
        self.session().await?;
        let claimed = match self.claim_rounds(limit).await {
            Ok(claimed) => claimed,
            Err(e) => {
                self.reset();
                return Err(SourceError::Claim(e));
            }
        };
        self.report_held_back(&claimed.held_back);
        if claimed.events.is_empty() {
            // Held-back rows are locked too: end the transaction either way.
            let session = self.session.as_mut().ok_or(SourceError::SessionLost)?;
            if let Err(e) = session.client.batch_execute("COMMIT").await {
                self.reset();
                return Err(SourceError::Claim(e));
            }
        } else {
            self.claimed = claimed.events.iter().map(|e| e.id.clone()).collect();
        }
        Ok(claimed.events)
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
            tracing::warn!(error = %postgres::describe(&e), "releasing claimed rows failed; dropping the session");
            self.reset();
        }
    }

    async fn wait(&mut self) {
        let _ = tokio::time::timeout(self.poll_interval, self.woken.notified()).await;
    }
}
