//! Where events come from. A source knows Postgres and nothing of brokers.
//!
//! # Delivery contract
//! A source hands out events in order (per aggregate, in id order) and
//! forgets nothing it handed out until told: [`Source::claim`] returns events
//! that stay reserved for this relay, [`Source::ack`] records a prefix of them
//! as sent (only ever called after the broker confirmed that prefix) and
//! releases the rest, [`Source::release`] gives them all back unsent. A crash
//! at any point leaves every unacknowledged event to be claimed again, so
//! delivery is at-least-once: duplicates are possible, loss is not.

mod polling;
pub mod replication;

use std::future::Future;

pub use polling::PollingSource;
pub use replication::ReplicationSource;

use crate::event::OutboxEvent;
use crate::outbox::SchemaError;
use crate::postgres::{ConnectError, ConnectFailure};

/// A source of outbox events; see the module docs for the contract.
pub trait Source {
    /// The `source` label of metrics.
    fn label(&self) -> &'static str;

    /// Connects now, so problems are reported at startup.
    fn connect(&mut self) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Claims up to `limit` unsent events, oldest first; empty when none are
    /// ready. Must be followed by `ack` or `release` before the next claim.
    fn claim(
        &mut self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<OutboxEvent>, SourceError>> + Send;

    /// Records the first `count` claimed events as sent and releases the rest.
    fn ack(&mut self, count: usize) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Releases every claimed event unsent.
    fn release(&mut self) -> impl Future<Output = ()> + Send;

    /// Resolves when new events may be ready. Cancel-safe.
    fn wait(&mut self) -> impl Future<Output = ()> + Send;

    /// Rows that predate the source's own position and must be published
    /// first, by a one-time polling pass over ids up to the bound ("" for
    /// all unsent rows). Only a new replication slot has any.
    fn catch_up_bound(&self) -> Option<String> {
        None
    }

    /// Records that the catch-up pass is complete.
    fn finish_catch_up(&mut self) -> impl Future<Output = Result<(), SourceError>> + Send {
        async { Ok(()) }
    }
}

/// Why a source operation failed. The pipeline retries every error but
/// those [`SourceError::is_fatal`] names: claimed events are released (by
/// the database, when the session is lost), so nothing is skipped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("connecting: {0}")]
    Connect(#[from] ConnectError),
    #[error("outbox table: {0}")]
    Schema(#[from] SchemaError),
    #[error("claiming events: {}", crate::postgres::describe(.0))]
    Claim(#[source] tokio_postgres::Error),
    #[error("marking events sent: {}", crate::postgres::describe(.0))]
    Ack(#[source] tokio_postgres::Error),
    #[error("the postgres session was lost")]
    SessionLost,
    #[error("replication: {0}")]
    Replication(String),
    /// The server refused the replication session (login, database, or
    /// the REPLICATION attribute): retried slowly, like a refused login on
    /// a normal session, since a grant or a rotated secret fixes it.
    #[error("replication: {message}")]
    ReplicationRefused {
        failure: ConnectFailure,
        message: String,
    },
    /// Another session streams from the slot: a previous leader whose
    /// connection the server has not closed yet, or a foreign consumer.
    #[error(
        "replication slot `{0}` is in use by another session (a previous leader still closing, or another consumer); waiting"
    )]
    SlotInUse(String),
    /// The replication slot cannot be trusted (lost, or gone after the
    /// relay created it): continuing could skip events, so the relay stops.
    #[error("replication slot: {0}")]
    SlotUnusable(String),
    /// The server lacks what the configuration asks for (a failover slot
    /// before 17, a server older than the oldest supported version).
    #[error("{0}")]
    Unsupported(String),
    /// A stream message the pgoutput decoder cannot read. The slot sends
    /// the same bytes again after every reconnect, so the relay stops and
    /// names the position instead of looping (or skipping what it holds).
    #[error(
        "replication: undecodable pgoutput message at LSN {lsn} (kind {kind:?}, {len} bytes): {error}; \
         stopping rather than skipping it (events after it stay unsent until the relay can read it)"
    )]
    Undecodable {
        lsn: String,
        kind: char,
        len: usize,
        error: String,
    },
}

impl SourceError {
    /// Errors retrying cannot fix and that must stop the relay loudly. A
    /// refused connect (login, database, privilege) is not one: it is
    /// retried slowly (see [`SourceError::refusal`]), since a rotated
    /// secret, a migration job or a grant can fix it while the relay waits.
    pub fn is_fatal(&self) -> bool {
        if self.refusal().is_some() {
            return false;
        }
        match self {
            SourceError::Schema(_)
            | SourceError::Unsupported(_)
            | SourceError::SlotUnusable(_)
            | SourceError::Undecodable { .. } => true,
            SourceError::Connect(e) if e.failure().is_fatal() => true,
            SourceError::Claim(e)
            | SourceError::Ack(e)
            | SourceError::Connect(ConnectError::Postgres(e)) => {
                crate::classify::postgres::classify(e) == crate::classify::Disposition::Stop
            }
            _ => false,
        }
    }

    /// How the server refused a connect, if this error is such a refusal;
    /// `None` for every other error, including an unreachable server.
    pub fn refusal(&self) -> Option<ConnectFailure> {
        let failure = match self {
            SourceError::Connect(e) => e.failure(),
            SourceError::ReplicationRefused { failure, .. } => *failure,
            _ => return None,
        };
        failure.is_refusal().then_some(failure)
    }

    /// Every value [`SourceError::reason`] returns.
    pub const REASONS: &[&str] = &[
        "connect",
        "schema",
        "claim",
        "ack",
        "session_lost",
        "replication",
        "slot_unusable",
        "slot_in_use",
        "unsupported",
        "undecodable",
    ];

    /// The `reason` label of `outbox_relay_source_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Connect(_) => "connect",
            SourceError::Schema(_) => "schema",
            SourceError::Claim(_) => "claim",
            SourceError::Ack(_) => "ack",
            SourceError::SessionLost => "session_lost",
            SourceError::Replication(_) | SourceError::ReplicationRefused { .. } => "replication",
            SourceError::SlotUnusable(_) => "slot_unusable",
            SourceError::SlotInUse(_) => "slot_in_use",
            SourceError::Unsupported(_) => "unsupported",
            SourceError::Undecodable { .. } => "undecodable",
        }
    }
}
