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

    /// The event of an inserted row. Without a configured created_at column
    /// the commit time is the event's time; with one, its value is, when
    /// [`parse_timestamp`] accepts it, and otherwise the event has none (the
    /// same rule as polling's claim: docs/columns.md).
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
        let created_at = match self.created_at {
            Some(i) => row
                .get(i)
                .and_then(Value::as_text)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(parse_timestamp),
            None => Some(commit_time),
        };
        OutboxEvent {
            id: text(self.id),
            aggregate_type: text(self.aggregate_type),
            aggregate_id: text(self.aggregate_id),
            event_type: text(self.event_type),
            payload,
            payload_kind: self.payload_kind,
            headers,
            created_at,
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

/// A created_at in the text form pgoutput sends under the session's
/// `DateStyle=ISO, TimeZone=UTC`: `2026-11-23 05:17:15.23773+00`
/// (timestamptz), the same without `+00` (timestamp, read as UTC), or
/// `2026-11-23` (date, midnight UTC). `None` for anything outside
/// [1970-01-01, 10000-01-01) UTC, as polling's claim decides: `infinity`,
/// `-infinity`, five-digit years, ` BC` dates, years before 1970.
///
/// humantime does the calendar arithmetic; what it accepts is narrower or
/// looser than needed in ways checked here: it takes only four-digit years
/// from 1970 (the range wanted), no date without a time, and with a fraction
/// ignores whatever offset follows a `+`, so anything but digits and the ISO
/// separators is refused before it sees the text.
pub(super) fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix("+00").unwrap_or(text);
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' '))
    {
        return None;
    }
    if text.len() == "2026-11-23".len() {
        return humantime::parse_rfc3339_weak(&format!("{text} 00:00:00")).ok();
    }
    humantime::parse_rfc3339_weak(text).ok()
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

    fn rfc3339(text: &str) -> Option<String> {
        parse_timestamp(text).map(|t| humantime::format_rfc3339_micros(t).to_string())
    }

    #[test]
    fn timestamps_in_range_in_every_column_type() {
        for (text, expected) in [
            (
                "2026-11-23 05:17:15.23773+00",
                "2026-11-23T05:17:15.237730Z",
            ),
            ("2026-11-23 05:17:15+00", "2026-11-23T05:17:15.000000Z"),
            ("2026-11-23 05:17:15.5", "2026-11-23T05:17:15.500000Z"),
            ("2026-11-23", "2026-11-23T00:00:00.000000Z"),
            ("1970-01-01 00:00:00+00", "1970-01-01T00:00:00.000000Z"),
            ("1970-01-01", "1970-01-01T00:00:00.000000Z"),
            (
                "9999-12-31 23:59:59.999999+00",
                "9999-12-31T23:59:59.999999Z",
            ),
            ("2024-02-29 12:00:00+00", "2024-02-29T12:00:00.000000Z"),
        ] {
            assert_eq!(rfc3339(text).as_deref(), Some(expected), "{text}");
        }
    }

    #[test]
    fn timestamps_out_of_range_have_none() {
        for text in [
            "infinity",
            "-infinity",
            "10000-01-01 00:00:00+00",
            "294276-12-31 23:59:59.999999+00",
            "12026-11-23",
            "1969-12-31 23:59:59.999999+00",
            "1969-12-31",
            "0001-01-01 00:00:00+00",
            "2026-11-23 05:17:15+00 BC",
            "2026-11-23 05:17:15.5+00 BC",
            "2026-11-23 BC",
            "4713-11-24 00:00:00+00 BC",
            "2026-11-23 05:17:15.5+05:30",
            "2026-11-23 05:17:15Z",
            "",
            "2026-13-01",
            "not a time",
        ] {
            assert_eq!(rfc3339(text), None, "{text}");
        }
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
