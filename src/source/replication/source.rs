//! The replication source: streams the outbox table's inserts (and
//! table-less logical messages) from a pgoutput slot, hands them out in
//! commit order, marks rows sent after the broker confirmed them, and moves
//! the slot only past transactions whose every event is confirmed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use tokio_postgres::{Client, Statement};

use super::connection::{ReplicationConnection, ReplicationError, StreamMessage};
use super::mapping::{RowMapping, from_pg_micros, message_event};
use super::pgoutput::{Lsn, PgOutput, decode};
use super::slot::{self, Partial};
use crate::config::{
    ColumnsConfig, Config, MarkMode, OutboxConfig, PostgresConfig, ReplicationConfig,
};
use crate::event::OutboxEvent;
use crate::metrics::{Component, metrics};
use crate::outbox::{OutboxSchema, OutboxSql, TableName, mark_when_visible, quote_ident};
use crate::postgres;
use crate::source::{Source, SourceError};

/// The longest a mark waits for streamed rows whose transaction is still
/// finishing its commit (normally microseconds; see [`mark_when_visible`]).
/// Rows that are gone cost no wait: only a safety net.
const VISIBILITY_WAIT: Duration = Duration::from_secs(30);

/// Ids named in the warning about rows not found; the rest are counted.
const MISSING_SHOWN: usize = 5;

/// An event and the transaction it belongs to.
#[derive(Debug, Clone)]
struct Pending {
    event: OutboxEvent,
    /// A table row (to mark sent) rather than a logical message.
    row: bool,
    /// Sequence number of its transaction in this session.
    txn: u64,
    /// The transaction's xid (0 outside any).
    xid: u32,
}

/// A transaction whose events are not all confirmed yet. The slot may move
/// to its end once it has committed and it and all before it are confirmed.
#[derive(Debug)]
struct TxnProgress {
    id: u64,
    unconfirmed: usize,
    /// Known once its Commit arrived.
    end: Option<Lsn>,
    /// Its identity across sessions (from Begin): see [`Partial`].
    final_lsn: Lsn,
    xid: u32,
    /// Its events confirmed so far, counting those skipped below.
    confirmed: u64,
    /// Its first events still to skip: confirmed before a restart.
    skip: u64,
}

impl TxnProgress {
    fn new(id: u64, final_lsn: Lsn, xid: u32) -> Self {
        TxnProgress {
            id,
            unconfirmed: 0,
            end: None,
            final_lsn,
            xid,
            confirmed: 0,
            skip: 0,
        }
    }

    /// Its progress, if some but not all of it is done with.
    fn partial(&self) -> Option<Partial> {
        (self.confirmed > 0).then_some(Partial {
            final_lsn: self.final_lsn,
            xid: self.xid,
            confirmed: self.confirmed,
        })
    }
}

/// Reads the outbox through logical replication.
pub struct ReplicationSource {
    postgres: PostgresConfig,
    outbox: OutboxConfig,
    settings: ReplicationConfig,
    table: TableName,
    stream: Option<ReplicationConnection>,
    marks: Option<(Client, Statement)>,
    mappings: HashMap<u32, RowMapping>,
    /// The transaction being streamed: commit time, sequence number, xid.
    open: Option<(SystemTime, u64, u32)>,
    /// Transactions with events in flight, oldest first.
    txns: VecDeque<TxnProgress>,
    next_txn: u64,
    ready: VecDeque<Pending>,
    claimed: Vec<Pending>,
    /// The position reported to the server as flushed.
    confirmed: Lsn,
    /// The furthest position the server said it has sent.
    received: Lsn,
    last_status: Instant,
    ever_connected: bool,
    /// Prepared (slot checked) but not yet streaming.
    prepared: bool,
    catch_up: Option<String>,
    /// Recorded progress inside the first transaction the stream resends.
    resume: Option<Partial>,
    /// An error found while waiting that retrying cannot fix, for the next
    /// claim to report (a wait has no way to).
    fatal: Option<SourceError>,
}

impl ReplicationSource {
    pub fn new(config: &Config) -> Result<Self, SourceError> {
        let table = TableName::parse(&config.outbox.table).map_err(SourceError::Replication)?;
        Ok(ReplicationSource {
            postgres: config.postgres.clone(),
            outbox: config.outbox.clone(),
            settings: config.source.replication.clone(),
            table,
            stream: None,
            marks: None,
            mappings: HashMap::new(),
            open: None,
            txns: VecDeque::new(),
            next_txn: 0,
            ready: VecDeque::new(),
            claimed: Vec::new(),
            confirmed: Lsn(0),
            received: Lsn(0),
            last_status: Instant::now(),
            ever_connected: false,
            prepared: false,
            catch_up: None,
            resume: None,
            fatal: None,
        })
    }

    /// Checks the table, publication and slot (creating them if allowed)
    /// and opens the session rows are marked on. Streaming starts at the
    /// first claim, after any catch-up pass.
    async fn prepare(&mut self) -> Result<(), SourceError> {
        if self.prepared {
            return Ok(());
        }
        let client = postgres::connect(&self.postgres, "replication marks", None).await?;
        let schema = OutboxSchema::load(&client, &self.outbox).await?;
        let mark = client
            .prepare(&OutboxSql::new(&self.outbox, &schema).mark)
            .await
            .map_err(SourceError::Ack)?;
        let unsent = ColumnsConfig::optional(&self.outbox.columns.sent_at)
            .filter(|_| self.outbox.mark == MarkMode::Update)
            .map(|c| format!(" WHERE {} IS NULL", quote_ident(c)))
            .unwrap_or_default();
        let state = slot::prepare(
            &client,
            &self.postgres,
            &self.settings,
            &schema,
            &self.outbox.columns.id,
            &unsent,
        )
        .await?;
        self.confirmed = state.confirmed;
        self.received = state.confirmed;
        self.resume = state.partial;
        // Without marks nothing tells which older rows were already sent:
        // with mark = none the stream starts at the slot.
        self.catch_up = state
            .catch_up
            .filter(|_| self.outbox.mark != MarkMode::None);
        self.marks = Some((client, mark));
        self.prepared = true;
        Ok(())
    }

    async fn ensure_connected(&mut self) -> Result<(), SourceError> {
        if self.stream.is_some() {
            return Ok(());
        }
        self.prepare().await?;
        let mut stream = ReplicationConnection::connect(&self.postgres)
            .await
            .map_err(replication)?;
        stream
            .start_replication(
                &self.settings.slot,
                self.confirmed,
                &self.settings.publication,
            )
            .await
            .map_err(replication)?;
        if self.ever_connected {
            metrics().reconnects.with_label_values(&["postgres"]).inc();
            tracing::info!(slot = %self.settings.slot, from = %self.confirmed, "replication resumed");
        } else {
            tracing::info!(slot = %self.settings.slot, from = %self.confirmed, "replication started");
            if !stream.streams_messages() && !self.settings.message_prefix.is_empty() {
                tracing::warn!(
                    prefix = %self.settings.message_prefix,
                    "postgres before 14 streams no logical messages: pg_logical_emit_message \
                     events are not published (table rows are)"
                );
            }
        }
        self.ever_connected = true;
        metrics().set_connected(Component::Postgres, true);
        self.stream = Some(stream);
        Ok(())
    }

    /// Forgets the session; the slot will send everything after
    /// `confirmed` again, so what was buffered is dropped with it.
    fn reset(&mut self, error: &dyn std::fmt::Display) {
        tracing::warn!(error = %error, "replication session lost; resuming from the slot");
        self.stream = None;
        self.marks = None;
        self.prepared = false;
        self.mappings.clear();
        self.open = None;
        self.txns.clear();
        self.ready.clear();
        self.claimed.clear();
        metrics().set_connected(Component::Postgres, false);
    }

    fn nothing_pending(&self) -> bool {
        self.ready.is_empty()
            && self.claimed.is_empty()
            && self.open.is_none()
            && self.txns.is_empty()
    }

    fn handle(&mut self, message: StreamMessage) -> Result<bool, SourceError> {
        match message {
            StreamMessage::Keepalive {
                end,
                reply_requested,
            } => {
                self.received = self.received.max(end);
                Ok(reply_requested)
            }
            StreamMessage::XLogData { start, data, .. } => {
                let message = decode(&data).map_err(|e| SourceError::Undecodable {
                    lsn: start.to_string(),
                    kind: data.first().map_or('?', |&b| char::from(b)),
                    len: data.len(),
                    error: e.to_string(),
                })?;
                self.apply(message)?;
                Ok(false)
            }
        }
    }

    /// Events go to `ready` as they arrive, so a huge transaction is cut
    /// into batches (the stream is read only while fewer than a batch are
    /// waiting); the slot still moves only at commit boundaries.
    fn apply(&mut self, message: PgOutput) -> Result<(), SourceError> {
        match message {
            PgOutput::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                let id = self.next_txn;
                self.next_txn += 1;
                self.open = Some((from_pg_micros(commit_time), id, xid));
                let mut progress = TxnProgress::new(id, final_lsn, xid);
                if let Some(resume) = self
                    .resume
                    .filter(|r| r.final_lsn == final_lsn && r.xid == xid)
                {
                    progress.skip = resume.confirmed;
                    tracing::info!(
                        xid,
                        final_lsn = %final_lsn,
                        skipped = resume.confirmed,
                        "transaction streamed again from its start: skipping its events already confirmed before the restart"
                    );
                }
                self.txns.push_back(progress);
            }
            PgOutput::Relation(relation) => {
                let ours = relation.name == self.table.name
                    && self
                        .table
                        .schema
                        .as_deref()
                        .is_none_or(|s| s == relation.namespace);
                if ours {
                    let mapping = RowMapping::new(&relation, &self.outbox)
                        .map_err(SourceError::Replication)?;
                    self.mappings.insert(relation.id, mapping);
                }
            }
            PgOutput::Insert { relation, new } => {
                if let (Some(mapping), Some((commit_time, txn, xid))) =
                    (self.mappings.get(&relation), self.open)
                {
                    let event = mapping.event(&new, commit_time);
                    self.push(event, true, txn, xid);
                }
            }
            PgOutput::LogicalMessage {
                transactional,
                lsn,
                prefix,
                content,
            } if !self.settings.message_prefix.is_empty()
                && prefix == self.settings.message_prefix =>
            {
                match (transactional, self.open) {
                    (true, Some((commit_time, txn, xid))) => {
                        self.push(message_event(lsn, &content, commit_time), false, txn, xid);
                    }
                    _ => {
                        // Outside any transaction: it is its own, ending at itself.
                        let txn = self.next_txn;
                        self.next_txn += 1;
                        let mut progress = TxnProgress::new(txn, lsn, 0);
                        progress.end = Some(lsn);
                        self.txns.push_back(progress);
                        let event = message_event(lsn, &content, SystemTime::now());
                        self.push(event, false, txn, 0);
                    }
                }
            }
            PgOutput::Commit { end_lsn, .. } => {
                if let Some((_, txn, _)) = self.open.take()
                    && let Some(progress) = self.progress(txn)
                {
                    progress.end = Some(end_lsn);
                }
                self.received = self.received.max(end_lsn);
                self.advance();
            }
            _ => {}
        }
        Ok(())
    }

    /// Queues an event of transaction `txn`, unless it is one of those
    /// confirmed before a restart.
    fn push(&mut self, event: OutboxEvent, row: bool, txn: u64, xid: u32) {
        if let Some(progress) = self.progress(txn) {
            if progress.skip > 0 {
                progress.skip -= 1;
                progress.confirmed += 1;
                return;
            }
            progress.unconfirmed += 1;
        }
        self.ready.push_back(Pending {
            event,
            row,
            txn,
            xid,
        });
    }

    /// The progress entry of transaction `txn`. Entries are pushed with
    /// consecutive ids and only leave from the front, so this is an index.
    fn progress(&mut self, txn: u64) -> Option<&mut TxnProgress> {
        let first = self.txns.front()?.id;
        let index = usize::try_from(txn.checked_sub(first)?).ok()?;
        self.txns.get_mut(index)
    }

    /// Moves `confirmed` past every leading transaction that has committed
    /// and has no unconfirmed events left.
    fn advance(&mut self) -> bool {
        let before = self.confirmed;
        while let Some(front) = self.txns.front() {
            match front.end {
                Some(end) if front.unconfirmed == 0 => {
                    self.confirmed = self.confirmed.max(end);
                    self.txns.pop_front();
                }
                _ => break,
            }
        }
        self.confirmed != before
    }

    /// Reports the confirmed position. With nothing of ours pending, every
    /// transaction the server has sent is done with, so the slot follows the
    /// server (WAL does not pile up while the outbox is idle).
    async fn send_status(&mut self, force: bool) -> Result<(), SourceError> {
        if !force && self.last_status.elapsed() < self.settings.status_interval {
            return Ok(());
        }
        if self.nothing_pending() {
            self.confirmed = self.confirmed.max(self.received);
        }
        let (received, confirmed) = (self.received, self.confirmed);
        if let Some(stream) = self.stream.as_mut() {
            stream
                .send_status(received, confirmed, false)
                .await
                .map_err(replication)?;
        }
        self.last_status = Instant::now();
        Ok(())
    }

    /// Reads what the server has already sent, without waiting.
    async fn drain_available(&mut self, limit: usize) -> Result<(), SourceError> {
        while self.ready.len() < limit {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            match tokio::time::timeout(Duration::ZERO, stream.next_message()).await {
                Ok(Ok(message)) => {
                    if self.handle(message)? {
                        self.send_status(true).await?;
                    }
                }
                Ok(Err(e)) => return Err(replication(e)),
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    async fn claim_inner(&mut self, limit: usize) -> Result<Vec<OutboxEvent>, SourceError> {
        if let Some(fatal) = self.fatal.take() {
            return Err(fatal);
        }
        self.ensure_connected().await?;
        self.drain_available(limit).await?;
        self.send_status(false).await?;
        let n = limit.min(self.ready.len());
        self.claimed = self.ready.drain(..n).collect();
        Ok(self.claimed.iter().map(|p| p.event.clone()).collect())
    }

    async fn ack_inner(&mut self, count: usize) -> Result<(), SourceError> {
        let count = count.min(self.claimed.len());
        let rows = self.claimed[..count].iter().filter(|p| p.row);
        let ids: Vec<String> = rows.clone().map(|p| p.event.id.clone()).collect();
        let mut writers: Vec<u32> = rows.map(|p| p.xid).collect();
        writers.dedup();
        if !ids.is_empty() && self.outbox.mark != MarkMode::None {
            let (client, mark) = self.marks.as_ref().ok_or(SourceError::SessionLost)?;
            let total = ids.len();
            let missing = mark_when_visible(client, mark, ids, &writers, VISIBILITY_WAIT)
                .await
                .map_err(SourceError::Ack)?;
            if !missing.is_empty() {
                tracing::warn!(
                    count = missing.len(),
                    of = total,
                    first = ?&missing[..missing.len().min(MISSING_SHOWN)],
                    "rows streamed and published were not found to mark: deleted or truncated since they were written"
                );
            }
            metrics()
                .events_acknowledged
                .inc_by((total - missing.len()) as u64);
        }
        for i in 0..count {
            let txn = self.claimed[i].txn;
            if let Some(progress) = self.progress(txn) {
                progress.unconfirmed = progress.unconfirmed.saturating_sub(1);
                progress.confirmed += 1;
            }
        }
        let moved = self.advance();
        let partial = self.txns.front().and_then(TxnProgress::partial);
        if moved || (count > 0 && partial.is_some()) {
            let (client, _) = self.marks.as_ref().ok_or(SourceError::SessionLost)?;
            slot::record_confirmed(
                client,
                &self.table,
                &self.settings.slot,
                self.confirmed,
                partial,
            )
            .await?;
        }
        let rest: Vec<Pending> = self.claimed.drain(..).skip(count).collect();
        for p in rest.into_iter().rev() {
            self.ready.push_front(p);
        }
        self.send_status(true).await
    }
}

impl Source for ReplicationSource {
    fn label(&self) -> &'static str {
        "replication"
    }

    async fn connect(&mut self) -> Result<(), SourceError> {
        let result = self.prepare().await;
        if result.is_ok() {
            metrics().set_connected(Component::Postgres, true);
        }
        result
    }

    fn catch_up_bound(&self) -> Option<String> {
        self.catch_up.clone()
    }

    async fn finish_catch_up(&mut self) -> Result<(), SourceError> {
        self.prepare().await?;
        let (client, _) = self.marks.as_ref().ok_or(SourceError::SessionLost)?;
        slot::finish_catch_up(client, &self.table, &self.settings.slot).await?;
        self.catch_up = None;
        tracing::info!("rows written before the slot existed are published; streaming");
        Ok(())
    }

    async fn claim(&mut self, limit: usize) -> Result<Vec<OutboxEvent>, SourceError> {
        self.release().await;
        let result = self.claim_inner(limit).await;
        if let Err(e) = &result {
            self.reset(e);
        }
        result
    }

    async fn ack(&mut self, count: usize) -> Result<(), SourceError> {
        let result = self.ack_inner(count).await;
        if let Err(e) = &result {
            self.reset(e);
        }
        result
    }

    async fn release(&mut self) {
        for p in self.claimed.drain(..).rev() {
            self.ready.push_front(p);
        }
    }

    async fn wait(&mut self) {
        if !self.ready.is_empty() || self.stream.is_none() {
            return;
        }
        let interval = self.settings.status_interval;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let result = match tokio::time::timeout(interval, stream.next_message()).await {
            Ok(Ok(message)) => match self.handle(message) {
                Ok(reply) => self.send_status(reply).await,
                Err(e) => Err(e),
            },
            Ok(Err(e)) => Err(replication(e)),
            Err(_) => self.send_status(true).await,
        };
        if let Err(e) = result {
            self.reset(&e);
            if e.is_fatal() {
                self.fatal = Some(e);
            }
        }
    }
}

/// A replication session error as a source error; a refused connect
/// keeps its cause, so the caller retries it at the refusal pace.
pub(super) fn replication(e: ReplicationError) -> SourceError {
    let failure = e.failure();
    if failure.is_refusal() {
        SourceError::ReplicationRefused {
            failure,
            message: e.to_string(),
        }
    } else {
        SourceError::Replication(e.to_string())
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
