//! The event a source yields and a sink publishes: one outbox row, already
//! decoded, independent of Postgres and of any broker.

#[cfg(test)]
pub mod arbitrary;

use std::time::SystemTime;

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// The row's id as text (bigint, uuid or text ids alike); becomes the
    /// message id, so consumers can drop duplicates by it.
    pub id: String,
    pub aggregate_type: String,
    /// Events sharing an aggregate id are published in order.
    pub aggregate_id: String,
    pub event_type: String,
    /// The payload exactly as stored (json text, text, or raw bytea bytes).
    pub payload: Vec<u8>,
    pub payload_kind: PayloadKind,
    /// Keys of the row's headers object, in the order Postgres rendered them.
    pub headers: Vec<(String, serde_json::Value)>,
    /// When the event was written, if the table records it.
    pub created_at: Option<SystemTime>,
}

/// The Postgres type of the payload column, which decides the content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// `json` or `jsonb`.
    Json,
    /// `text` or `varchar`: UTF-8 text.
    Text,
    /// `bytea`: opaque bytes.
    Binary,
}

impl PayloadKind {
    /// MIME type sent with the message.
    pub fn content_type(self) -> &'static str {
        match self {
            PayloadKind::Json => "application/json",
            PayloadKind::Text => "text/plain; charset=utf-8",
            PayloadKind::Binary => "application/octet-stream",
        }
    }
}

/// The standard fields every message carries as headers, beside the row's own.
pub const HEADER_EVENT_ID: &str = "event_id";
pub const HEADER_AGGREGATE_TYPE: &str = "aggregate_type";
pub const HEADER_AGGREGATE_ID: &str = "aggregate_id";
pub const HEADER_EVENT_TYPE: &str = "event_type";

impl OutboxEvent {
    /// The standard headers as name/value pairs.
    pub fn standard_headers(&self) -> [(&'static str, &str); 4] {
        [
            (HEADER_EVENT_ID, &self.id),
            (HEADER_AGGREGATE_TYPE, &self.aggregate_type),
            (HEADER_AGGREGATE_ID, &self.aggregate_id),
            (HEADER_EVENT_TYPE, &self.event_type),
        ]
    }

    /// Seconds since the event was written, if known and not in the future.
    pub fn age(&self, now: SystemTime) -> Option<f64> {
        let created = self.created_at?;
        now.duration_since(created).ok().map(|d| d.as_secs_f64())
    }
}
