//! One event as a Kafka record. Building it is a total function: every
//! value taken from the row is checked against what Kafka and librdkafka
//! accept where it goes, before rdkafka sees it, and a value out of bounds
//! is an [`EventError`] (the event is dead-lettered), never a panic, a
//! produce error or a broker rejection that the relay would retry.
//!
//! Where each field goes and its limit are in `docs/limits.md` (Kafka).

use std::borrow::Cow;
use std::time::SystemTime;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::config::KafkaConfig;
use crate::event::OutboxEvent;
use crate::sink::EventError;
use crate::sink::template::Template;
use crate::sink::trace::is_trace_header;

/// librdkafka's default `message.max.bytes`, the producer's limit on one
/// record when the passthrough table does not set it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

/// The passthrough property that sets the producer's record limit.
pub const MAX_MESSAGE_BYTES_PROPERTY: &str = "message.max.bytes";

/// Kafka's longest topic name.
pub const MAX_TOPIC_LEN: usize = 249;

/// What librdkafka adds to key, value and headers when it checks a record
/// against `message.max.bytes` (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`: the
/// record's varints at their widest, attributes and timestamp delta).
const RECORD_OVERHEAD: usize = 36;

/// The operator's name for the record limit, in dead-letter reasons.
const LIMIT_SETTING: &str = "the producer's message.max.bytes";

/// The producer's record limit: `message.max.bytes` from the passthrough
/// table, or librdkafka's default. An error names the setting.
pub fn max_message_bytes(config: &KafkaConfig) -> Result<usize, String> {
    let Some(text) = config.librdkafka.get(MAX_MESSAGE_BYTES_PROPERTY) else {
        return Ok(DEFAULT_MAX_MESSAGE_BYTES);
    };
    // librdkafka's own range for the property.
    match text.trim().parse::<usize>() {
        Ok(n) if (1000..=1_000_000_000).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a whole number of bytes from 1000 to 1000000000"
        )),
    }
}

/// Turns events into records for one topic template; the sink has one for
/// its topics and one for its dead-letter topic.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    topic: Template,
    key: Template,
    max_message_bytes: usize,
    /// The setting `topic` came from, for reasons (`topic`, `dead_letter_topic`).
    topic_field: &'static str,
    /// A key that cannot render is empty instead of refusing the event.
    lenient_key: bool,
}

/// A record that librdkafka will take: every value checked, the size
/// counted as librdkafka counts it.
#[derive(Debug, Clone)]
pub struct KafkaMessage<'a> {
    /// A legal Kafka topic name.
    pub topic: String,
    pub key: String,
    payload: &'a [u8],
    headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)>,
    /// Milliseconds since 1970 (>= 0); `None` leaves it to librdkafka
    /// (the time of sending).
    pub timestamp: Option<i64>,
    max_message_bytes: usize,
}

impl MessageBuilder {
    /// A builder for `topic` (a template, named `topic_field` in reasons)
    /// with the sink's key template and record limit.
    pub fn new(
        config: &KafkaConfig,
        topic: Template,
        topic_field: &'static str,
    ) -> Result<Self, String> {
        Ok(MessageBuilder {
            topic,
            key: Template::parse(&config.key).map_err(|e| format!("key: {e}"))?,
            max_message_bytes: max_message_bytes(config)
                .map_err(|e| format!("librdkafka.\"{MAX_MESSAGE_BYTES_PROPERTY}\": {e}"))?,
            topic_field,
            lenient_key: false,
        })
    }

    /// This builder, with an empty key for events whose key cannot render:
    /// for dead-letter copies, whose event may be dead-lettered for its key.
    pub fn lenient_key(self) -> Self {
        MessageBuilder {
            lenient_key: true,
            ..self
        }
    }

    /// The record of `event`: its standard headers, then its own (standard
    /// names win), without trace context (see [`KafkaMessage::with_trace`]).
    pub fn build<'a>(&self, event: &'a OutboxEvent) -> Result<KafkaMessage<'a>, EventError> {
        let topic = self
            .topic
            .render(event)
            .map_err(|e| EventError::template(self.topic_field, e))?;
        check_topic(self.topic_field, &topic)?;
        let key = match self.key.render(event) {
            Ok(key) => key,
            Err(_) if self.lenient_key => String::new(),
            Err(e) => return Err(EventError::template("key", e)),
        };

        let standard = event.standard_headers();
        let mut headers: Vec<(Cow<'a, str>, Cow<'a, [u8]>)> =
            Vec::with_capacity(standard.len() + event.headers.len());
        for (name, value) in standard {
            headers.push((Cow::Borrowed(name), Cow::Borrowed(value.as_bytes())));
        }
        for (name, value) in &event.headers {
            if standard.iter().any(|(k, _)| k == name) {
                continue;
            }
            check_header_key(name)?;
            let value = match value {
                serde_json::Value::String(s) => Cow::Borrowed(s.as_bytes()),
                other => Cow::Owned(other.to_string().into_bytes()),
            };
            headers.push((Cow::Borrowed(name.as_str()), value));
        }

        let message = KafkaMessage {
            topic,
            key,
            payload: &event.payload,
            headers,
            timestamp: timestamp(event.created_at),
            max_message_bytes: self.max_message_bytes,
        };
        message.check_size()?;
        Ok(message)
    }
}

impl<'a> KafkaMessage<'a> {
    /// The record with `trace` (the publish span's context) in place of
    /// the row's own trace headers.
    pub fn with_trace(mut self, trace: &[(String, String)]) -> Result<Self, EventError> {
        self.headers.retain(|(name, _)| !is_trace_header(name));
        for (name, value) in trace {
            check_header_key(name)?;
            self.headers.push((
                Cow::Owned(name.clone()),
                Cow::Owned(value.as_bytes().to_vec()),
            ));
        }
        self.check_size()?;
        Ok(self)
    }

    /// The record as rdkafka sends it.
    pub fn record(&self) -> FutureRecord<'_, str, [u8]> {
        let mut record = FutureRecord::to(&self.topic)
            .key(self.key.as_str())
            .payload(self.payload)
            .headers(self.owned_headers());
        if let Some(ms) = self.timestamp {
            record = record.timestamp(ms);
        }
        record
    }

    /// The headers in librdkafka's own list.
    pub fn owned_headers(&self) -> OwnedHeaders {
        let mut owned = OwnedHeaders::new_with_capacity(self.headers.len());
        for (key, value) in &self.headers {
            owned = owned.insert(Header {
                key: key.as_ref(),
                value: Some(value.as_ref()),
            });
        }
        owned
    }

    /// The headers, in order, as name and value bytes.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// The record's size as librdkafka checks it against `message.max.bytes`.
    pub fn size(&self) -> usize {
        RECORD_OVERHEAD + self.key.len() + self.payload.len() + self.headers_size()
    }

    fn headers_size(&self) -> usize {
        self.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + varint_len(k.len()) + varint_len(v.len()))
            .sum()
    }

    fn check_size(&self) -> Result<(), EventError> {
        let size = self.size();
        if size <= self.max_message_bytes {
            return Ok(());
        }
        let field = format!(
            "record (key {} bytes, payload {} bytes, headers {} bytes)",
            self.key.len(),
            self.payload.len(),
            self.headers_size()
        );
        Err(EventError::oversized(
            field,
            size,
            self.max_message_bytes,
            LIMIT_SETTING,
        ))
    }
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`, and not
/// `.` or `..`.
fn check_topic(field: &str, topic: &str) -> Result<(), EventError> {
    if topic.len() > MAX_TOPIC_LEN {
        return Err(EventError::too_long(
            field,
            topic.len(),
            MAX_TOPIC_LEN,
            "a Kafka topic name",
        ));
    }
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic == "." || topic == ".." || !topic.chars().all(legal) {
        return Err(EventError::invalid(
            field,
            format!(
                "{} is not a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -, not . or ..)",
                shown(topic)
            ),
        ));
    }
    Ok(())
}

/// librdkafka keeps header names as C strings: a NUL byte would end the
/// name early for every librdkafka consumer.
fn check_header_key(key: &str) -> Result<(), EventError> {
    if key.contains('\0') {
        return Err(EventError::invalid(
            format!("header key {}", shown(key)),
            "contains a NUL byte, which librdkafka reads as the end of the name",
        ));
    }
    Ok(())
}

/// Kafka's record timestamp: milliseconds since 1970, not negative (a
/// negative value means "no timestamp" or is refused). A time Kafka cannot
/// carry (before 1970, or past 64-bit milliseconds) leaves the timestamp
/// out, as the RabbitMQ sink does: the event has no time it can be given
/// (the sources already give such a created_at as none).
fn timestamp(created_at: Option<SystemTime>) -> Option<i64> {
    let since = created_at?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// Bytes of the zig-zag varint librdkafka writes for a length.
fn varint_len(n: usize) -> usize {
    let mut zigzag = (n as u64) << 1;
    let mut bytes = 1;
    while zigzag >= 0x80 {
        zigzag >>= 7;
        bytes += 1;
    }
    bytes
}

/// A value for a reason: quoted and escaped, cut after 64 characters.
fn shown(text: &str) -> String {
    const SHOWN: usize = 64;
    let head: String = text.chars().take(SHOWN).collect();
    if head.len() < text.len() {
        format!("{head:?}... ({} bytes)", text.len())
    } else {
        format!("{head:?}")
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
