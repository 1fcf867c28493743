//! Turning decoded rows and logical messages into outbox events, using the
//! column names of the configuration against the Relation message (so column
//! order and later-added columns do not matter).

use std::time::SystemTime;

use super::pgoutput::{Lsn, PG_EPOCH_OFFSET_MICROS, Relation, Tuple, Value};
use crate::config::{ColumnsConfig, OutboxConfig};
use crate::event::{OutboxEvent, PayloadKind};
use crate::outbox::{from_unix_micros, parse_headers};

/// Where each event field sits in the outbox table's rows.
#[derive(Debug, Clone)]
pub struct RowMapping {
    id: usize,
    aggregate_type: usize,
    aggregate_id: usize,
    event_type: usize,
    payload: usize,
    payload_kind: PayloadKind,
    headers: Option<usize>,
    created_at: Option<usize>,
}

/// Postgres type oids the payload may have.
const JSON: u32 = 114;
const JSONB: u32 = 3802;
const BYTEA: u32 = 17;

impl RowMapping {
    /// Finds the configured columns in `relation`; names a missing one.
    pub fn new(relation: &Relation, config: &OutboxConfig) -> Result<Self, String> {
        let c = &config.columns;
        let find = |name: &str| {
            relation.column_index(name).ok_or_else(|| {
                format!(
                    "column \"{name}\" is not in {}.{}",
                    relation.namespace, relation.name
                )
            })
        };
        let payload = find(&c.payload)?;
        let payload_kind = match relation.columns[payload].type_oid {
            JSON | JSONB => PayloadKind::Json,
            BYTEA => PayloadKind::Binary,
            _ => PayloadKind::Text,
        };
        Ok(RowMapping {
            id: find(&c.id)?,
            aggregate_type: find(&c.aggregate_type)?,
            aggregate_id: find(&c.aggregate_id)?,
            event_type: find(&c.event_type)?,
            payload,
            payload_kind,
            headers: ColumnsConfig::optional(&c.headers).map(find).transpose()?,
            created_at: ColumnsConfig::optional(&c.created_at)
                .map(find)
                .transpose()?,
        })
    }

    /// The event of an inserted row; `commit_time` stands in for a missing
    /// or unreadable created_at.
    pub fn event(&self, row: &Tuple, commit_time: SystemTime) -> OutboxEvent {
        let text = |i: usize| {
            row.get(i)
                .and_then(Value::as_text)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let raw = row
            .get(self.payload)
            .and_then(Value::as_text)
            .unwrap_or_default();
        let payload = match self.payload_kind {
            PayloadKind::Binary => unhex(raw),
            PayloadKind::Json | PayloadKind::Text => raw.to_vec(),
        };
        let headers = self
            .headers
            .and_then(|i| row.get(i))
            .and_then(Value::as_text)
            .map(|text| parse_headers(&String::from_utf8_lossy(text)))
            .unwrap_or_default();
        let created_at = self
            .created_at
            .map(text)
            .and_then(|t| parse_timestamp(&t))
            .unwrap_or(commit_time);
        OutboxEvent {
            id: text(self.id),
            aggregate_type: text(self.aggregate_type),
            aggregate_id: text(self.aggregate_id),
            event_type: text(self.event_type),
            payload,
            payload_kind: self.payload_kind,
            headers,
            created_at: Some(created_at),
        }
    }
}

/// The event of a `pg_logical_emit_message` whose content is a JSON envelope
/// `{"aggregate_type", "aggregate_id", "event_type", "payload", "headers"}`.
/// Its id is the message's LSN, unique and increasing. Content that is not
/// such an envelope is published whole as the payload, typed `message`.
pub fn message_event(lsn: Lsn, content: &[u8], commit_time: SystemTime) -> OutboxEvent {
    let envelope: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(content).ok();
    let field = |name: &str| {
        envelope
            .as_ref()
            .and_then(|e| e.get(name))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (payload, kind) = match envelope.as_ref().and_then(|e| e.get("payload")) {
        Some(value) => (value.to_string().into_bytes(), PayloadKind::Json),
        None => (content.to_vec(), PayloadKind::Binary),
    };
    let headers = envelope
        .as_ref()
        .and_then(|e| e.get("headers"))
        .and_then(|h| h.as_object())
        .map(|h| h.clone().into_iter().collect())
        .unwrap_or_default();
    let event_type = Some(field("event_type"))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "message".into());
    OutboxEvent {
        id: lsn.to_string(),
        aggregate_type: field("aggregate_type"),
        aggregate_id: field("aggregate_id"),
        event_type,
        payload,
        payload_kind: kind,
        headers,
        created_at: Some(commit_time),
    }
}

/// Microseconds since 2000-01-01 as a time.
pub fn from_pg_micros(micros: i64) -> SystemTime {
    from_unix_micros(micros.saturating_add(PG_EPOCH_OFFSET_MICROS))
}

/// Parses a timestamptz in ISO style with a UTC offset (the replication
/// session runs with TimeZone=UTC): `2026-11-23 05:17:15.23773+00`.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let utc = text.strip_suffix("+00").unwrap_or(text);
    humantime::parse_rfc3339_weak(utc).ok()
}

/// Decodes bytea's text form `\x0a0b…`.
fn unhex(text: &[u8]) -> Vec<u8> {
    let digits = text.strip_prefix(b"\\x").unwrap_or(text);
    digits
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_utc_iso_style() {
        let t = parse_timestamp("2026-11-23 05:17:15.23773+00").expect("parses");
        assert_eq!(
            humantime::format_rfc3339_micros(t).to_string(),
            "2026-11-23T05:17:15.237730Z"
        );
    }

    #[test]
    fn bytea_text_form() {
        assert_eq!(unhex(b"\\x00ff10"), vec![0, 255, 16]);
    }

    #[test]
    fn message_envelopes() {
        let e = message_event(
            Lsn(0x10),
            br#"{"aggregate_type":"order","aggregate_id":"o-1","event_type":"paid","payload":{"a":1},"headers":{"t":"x"}}"#,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(
            (
                e.id.as_str(),
                e.aggregate_id.as_str(),
                e.event_type.as_str()
            ),
            ("0/10", "o-1", "paid")
        );
        assert_eq!(e.payload, br#"{"a":1}"#);
        assert_eq!(e.headers.len(), 1);
        let raw = message_event(Lsn(0x20), b"not json", SystemTime::UNIX_EPOCH);
        assert_eq!(
            (raw.event_type.as_str(), raw.payload.as_slice()),
            ("message", &b"not json"[..])
        );
    }
}
