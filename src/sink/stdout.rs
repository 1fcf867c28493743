//! The stdout sink: one JSON object per line, for trying the relay without a
//! broker, piping events into other tools, and benchmarking the source alone.
//! An event counts as confirmed once its line is written and flushed.

use std::fmt::Write as _;

use tokio::io::{AsyncWriteExt, Stdout};

use super::{PublishFailure, Sink, SinkError};
use crate::event::{OutboxEvent, PayloadKind};
use crate::metrics::{Component, metrics};

/// Writes events to standard output.
pub struct StdoutSink {
    out: Stdout,
    buffer: Vec<u8>,
}

impl StdoutSink {
    pub fn new() -> Self {
        StdoutSink {
            out: tokio::io::stdout(),
            buffer: Vec::new(),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for StdoutSink {
    fn label(&self) -> &'static str {
        "stdout"
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        // Nothing to connect to: the sink is as ready as stdout is open.
        metrics().set_connected(Component::Broker, true);
        Ok(())
    }

    async fn publish(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        self.buffer.clear();
        for event in events {
            write_line(event, &mut self.buffer);
        }
        let written = async {
            self.out.write_all(&self.buffer).await?;
            self.out.flush().await
        }
        .await;
        written.map_err(|e| PublishFailure {
            confirmed: 0,
            error: SinkError::Io(e),
        })
    }
}

/// Appends the event as one JSON line.
pub fn write_line(event: &OutboxEvent, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"event_id\":");
    json_string(&event.id, out);
    out.extend_from_slice(b",\"aggregate_type\":");
    json_string(&event.aggregate_type, out);
    out.extend_from_slice(b",\"aggregate_id\":");
    json_string(&event.aggregate_id, out);
    out.extend_from_slice(b",\"event_type\":");
    json_string(&event.event_type, out);
    out.extend_from_slice(b",\"payload\":");
    match event.payload_kind {
        // Postgres guarantees json/jsonb text is valid JSON; inline it as is.
        PayloadKind::Json if event.payload.is_empty() => out.extend_from_slice(b"null"),
        PayloadKind::Json => out.extend_from_slice(&event.payload),
        PayloadKind::Text => json_string(&String::from_utf8_lossy(&event.payload), out),
        PayloadKind::Binary => {
            let mut hex = String::with_capacity(2 + event.payload.len() * 2);
            hex.push_str("\\x");
            for byte in &event.payload {
                let _ = write!(hex, "{byte:02x}");
            }
            json_string(&hex, out);
        }
    }
    out.extend_from_slice(b",\"headers\":");
    if event.headers.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        let map: serde_json::Map<String, serde_json::Value> =
            event.headers.iter().cloned().collect();
        // Serializing a Map into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &map);
    }
    out.extend_from_slice(b",\"created_at\":");
    match event.created_at {
        Some(at) => json_string(&humantime::format_rfc3339_micros(at).to_string(), out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

fn json_string(text: &str, out: &mut Vec<u8>) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::write_line;
    use crate::event::{OutboxEvent, PayloadKind};

    #[test]
    fn writes_one_parseable_line() {
        let event = OutboxEvent {
            id: "7".into(),
            aggregate_type: "order".into(),
            aggregate_id: "o\"1".into(),
            event_type: "created".into(),
            payload: br#"{"n": 1}"#.to_vec(),
            payload_kind: PayloadKind::Json,
            headers: vec![("trace".into(), "t-1".into())],
            created_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        };
        let mut out = Vec::new();
        write_line(&event, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["aggregate_id"], "o\"1");
        assert_eq!(v["payload"]["n"], 1);
        assert_eq!(v["headers"]["trace"], "t-1");
        assert_eq!(v["created_at"], "2023-11-14T22:13:20.000000Z");

        let binary = OutboxEvent {
            payload: vec![0, 255],
            payload_kind: PayloadKind::Binary,
            headers: Vec::new(),
            created_at: None,
            ..event
        };
        let mut out = Vec::new();
        write_line(&binary, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["payload"], "\\x00ff");
        assert!(v["headers"].is_null());
    }
}
