//! Why one event cannot be published as it is. Every sink's message builder
//! is a total function from an event to a message or one of these: a value
//! from the row that a protocol cannot carry in the place it would go is
//! caught here, before any client library sees it (and could panic on it),
//! and the event is dead-lettered with a reason that names the field and
//! the limit, while the events behind it go on.

use super::SinkError;
use crate::event::OutboxEvent;

/// One event-derived value out of a protocol's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct EventError {
    /// The dead-letter table's `reason`: one of [`EventError::REASONS`].
    pub reason: &'static str,
    /// Where the value would go, as an operator reads it: `header key`,
    /// `property type (event_type)`, `payload`, `topic`.
    pub field: String,
    /// What is wrong, with the limit: `300 bytes is more than AMQP's
    /// 255-byte short string`.
    pub problem: String,
}

impl EventError {
    /// Every reason an [`EventError`] can carry.
    pub const REASONS: &[&str] = &[OVERSIZED, TOO_LONG, INVALID, TEMPLATE];

    /// A value longer than `limit` bytes where the protocol allows no more.
    pub fn too_long(field: impl Into<String>, len: usize, limit: usize, rule: &str) -> Self {
        EventError {
            reason: TOO_LONG,
            field: field.into(),
            problem: format!("{len} bytes is more than {rule} allows ({limit})"),
        }
    }

    /// The whole message (or its payload) over a size limit.
    pub fn oversized(field: impl Into<String>, len: usize, limit: usize, setting: &str) -> Self {
        EventError {
            reason: OVERSIZED,
            field: field.into(),
            problem: format!("{len} bytes is more than {setting} ({limit})"),
        }
    }

    /// A value of a kind or character set the place does not take.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        EventError {
            reason: INVALID,
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// A destination template that cannot be rendered from this row.
    pub fn template(field: impl Into<String>, problem: impl Into<String>) -> Self {
        EventError {
            reason: TEMPLATE,
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The sink error the pipeline dead-letters `event` for.
    pub fn rejecting(self, event: &OutboxEvent) -> SinkError {
        SinkError::Rejected {
            event_id: event.id.clone(),
            reason: self.reason,
            detail: self.to_string(),
        }
    }
}

/// The message, payload or record is larger than a configured maximum.
pub const OVERSIZED: &str = "oversized";
/// A value is longer than the protocol allows where it goes.
pub const TOO_LONG: &str = "too_long";
/// A value has a type or characters the protocol does not allow there.
pub const INVALID: &str = "invalid";
/// A destination template cannot be rendered from the row.
pub const TEMPLATE: &str = "template";
