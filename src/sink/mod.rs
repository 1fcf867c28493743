//! Where events go. A sink knows its broker and nothing of Postgres.
//!
//! # Delivery contract
//! [`Sink::publish`] sends a batch in order, pipelined (every message is sent
//! before any confirmation is awaited), and returns `Ok` only once the broker
//! has confirmed every event of it as durably accepted. On failure it reports
//! how many events, from the start of the batch, were confirmed; the caller
//! marks exactly those as sent and offers the rest again later, so a sink may
//! see an event more than once but the broker never misses one.

pub mod event_error;
pub mod kafka;
pub mod rabbitmq;
pub mod stdout;
pub mod template;
pub mod trace;

use std::future::Future;

use crate::classify::Disposition;
use crate::config::SinkKind;
use crate::event::OutboxEvent;

pub use event_error::EventError;
pub use kafka::KafkaSink;
pub use rabbitmq::RabbitMqSink;
pub use stdout::StdoutSink;

/// A broker (or stand-in) that events are published to.
pub trait Sink {
    /// The `sink` label of metrics.
    fn label(&self) -> &'static str;

    /// Publishes `events` in order and waits for all confirmations.
    fn publish(
        &mut self,
        events: &[OutboxEvent],
    ) -> impl Future<Output = Result<(), PublishFailure>> + Send;

    /// Connects now, so problems are reported at startup. Later failures are
    /// handled inside `publish` by reconnecting.
    fn connect(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Publishes a copy of a dead-lettered event, with its reason in the
    /// `x-dead-letter-reason` and `x-dead-letter-error` headers, to the
    /// sink's dead-letter destination, if one is configured. The
    /// dead-letter table already holds the event; this is a convenience for
    /// consumers, so a failure is logged and not retried.
    fn publish_dead_letter(
        &mut self,
        event: &OutboxEvent,
        reason: &str,
        error: &str,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        let _ = (event, reason, error);
        async { Ok(()) }
    }

    /// Forgets the connection or producer, so the next publish starts on a
    /// fresh one: called after a panic inside [`Sink::publish`] left it in
    /// an unknown state (a message half-sent, confirmations untracked).
    fn reset(&mut self) {}
}

/// Every dead-letter reason a sink of `kind` can record: what
/// [`crate::classify::amqp::reason`] and [`crate::classify::kafka::reason`]
/// return, the [`EventError::REASONS`] its message builder can give, and
/// the pipeline's own `panic` and `crashed` (see [`crate::crash_guard`]).
pub fn dead_letter_reasons(kind: SinkKind) -> &'static [&'static str] {
    match kind {
        SinkKind::Rabbitmq => &[
            "oversized",
            "too_long",
            "invalid",
            "unroutable",
            "template",
            "exchange_not_found",
            "access_refused",
            "precondition_failed",
            "rejected",
            "panic",
            "crashed",
        ],
        SinkKind::Kafka => &[
            "oversized",
            "too_long",
            "invalid",
            "template",
            "unknown_topic",
            "invalid_topic",
            "topic_authorization_failed",
            "policy_violation",
            "invalid_timestamp",
            "invalid_record",
            "rejected",
            "panic",
            "crashed",
        ],
        SinkKind::Stdout => &["oversized", "too_long", "invalid", "panic", "crashed"],
    }
}

/// `event` with the dead-letter headers added.
pub fn dead_letter_copy(event: &OutboxEvent, reason: &str, error: &str) -> OutboxEvent {
    let mut copy = event.clone();
    copy.headers
        .push(("x-dead-letter-reason".into(), reason.into()));
    copy.headers
        .push(("x-dead-letter-error".into(), error.into()));
    copy
}

/// A batch that was not wholly confirmed.
#[derive(Debug)]
pub struct PublishFailure {
    /// Events at the start of the batch that the broker did confirm.
    pub confirmed: usize,
    pub error: SinkError,
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("connecting to the broker: {0}")]
    Connect(String),
    #[error("broker connection lost: {0}")]
    Connection(String),
    #[error("no confirmation within {0:?}")]
    ConfirmTimeout(std::time::Duration),
    #[error("the broker refused event {event_id} (nack)")]
    Nacked { event_id: String },
    #[error(
        "event {event_id} is unroutable: exchange `{exchange}` has no queue bound for routing key `{routing_key}` ({reply})"
    )]
    Unroutable {
        event_id: String,
        exchange: String,
        routing_key: String,
        reply: String,
    },
    /// The broker will never accept this event as it is (too large, a
    /// destination that is missing, forbidden or cannot be rendered from
    /// the row). It goes to the dead-letter table.
    #[error("event {event_id} cannot be published ({reason}): {detail}")]
    Rejected {
        event_id: String,
        /// A short label for the dead-letter table (`oversized`, `template`, ...).
        reason: &'static str,
        detail: String,
    },
    #[error("writing: {0}")]
    Io(#[from] std::io::Error),
    /// Building or sending a message panicked: a bug that this event's data
    /// reached. Treated as this event's fault, so it is dead-lettered after
    /// `max_attempts` (alone) instead of killing the process.
    #[error("publishing {events} event(s) from {event_id} panicked: {message}")]
    Panicked {
        /// The first event of the batch that panicked.
        event_id: String,
        events: usize,
        message: String,
    },
}

impl SinkError {
    /// Every value [`SinkError::reason`] returns.
    pub const REASONS: &[&str] = &[
        "connect",
        "connection",
        "timeout",
        "nacked",
        "unroutable",
        "rejected",
        "io",
        "panic",
    ];

    /// The `reason` label of `outbox_relay_publish_failures_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            SinkError::Connect(_) => "connect",
            SinkError::Connection(_) => "connection",
            SinkError::ConfirmTimeout(_) => "timeout",
            SinkError::Nacked { .. } => "nacked",
            SinkError::Unroutable { .. } => "unroutable",
            SinkError::Rejected { .. } => "rejected",
            SinkError::Io(_) => "io",
            SinkError::Panicked { .. } => "panic",
        }
    }

    /// What the pipeline does about it; see [`crate::classify`].
    pub fn disposition(&self) -> Disposition {
        match self {
            SinkError::Rejected { .. }
            | SinkError::Unroutable { .. }
            | SinkError::Panicked { .. } => Disposition::DeadLetter,
            _ => Disposition::Retry,
        }
    }

    /// The dead-letter table's `reason` for an event-specific error.
    pub fn dead_letter_reason(&self) -> &'static str {
        match self {
            SinkError::Rejected { reason, .. } => reason,
            other => other.reason(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SinkError;

    #[test]
    fn every_reason_is_listed() {
        let errors = [
            SinkError::Connect(String::new()),
            SinkError::Connection(String::new()),
            SinkError::ConfirmTimeout(Duration::ZERO),
            SinkError::Nacked {
                event_id: "1".into(),
            },
            SinkError::Unroutable {
                event_id: "1".into(),
                exchange: String::new(),
                routing_key: String::new(),
                reply: String::new(),
            },
            SinkError::Rejected {
                event_id: "1".into(),
                reason: "template",
                detail: String::new(),
            },
            SinkError::Io(std::io::Error::other("test")),
            SinkError::Panicked {
                event_id: "1".into(),
                events: 1,
                message: String::new(),
            },
        ];
        let reasons: Vec<&str> = errors.iter().map(SinkError::reason).collect();
        assert_eq!(reasons, SinkError::REASONS);
    }
}
