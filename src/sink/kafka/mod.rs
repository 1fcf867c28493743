//! The Kafka sink: an idempotent `acks=all` producer whose in-flight limit
//! keeps per-partition order across retries. A batch is handed to librdkafka
//! whole; its delivery reports are then awaited in order.

mod context;

use std::time::{Duration, SystemTime};

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};

use context::RelayContext;

use super::template::{Template, unrenderable};
use super::trace::{Destination, PublishSpan, is_trace_header};
use super::{PublishFailure, Sink, SinkError, dead_letter_copy};
use crate::classify::{Disposition, kafka};
use crate::config::KafkaConfig;
use crate::event::OutboxEvent;
use crate::metrics::{Component, metrics};

/// Compression codecs this build of librdkafka has.
pub const COMPRESSIONS: &[&str] = &["none", "snappy", "lz4"];

/// Producer properties the relay's guarantees rest on; the passthrough
/// table may not change them.
pub const OWNED_PROPERTIES: &[&str] = &[
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
];

/// The most requests in flight per connection that an idempotent producer
/// can retry without reordering.
const MAX_IN_FLIGHT: &str = "5";

/// How often librdkafka reports the statistics behind the gauges.
const STATISTICS_INTERVAL_MS: &str = "5000";

type Client = FutureProducer<RelayContext>;

/// Publishes to Kafka; recreates its producer after a fatal error.
pub struct KafkaSink {
    config: KafkaConfig,
    topic: Template,
    key: Template,
    /// Where copies of dead letters go, if anywhere.
    dead_letter_topic: Option<Template>,
    producer: Option<Client>,
    ever_connected: bool,
}

impl KafkaSink {
    pub fn new(config: &KafkaConfig) -> Result<Self, SinkError> {
        let template = |text: &str| {
            Template::parse(text).map_err(|e| SinkError::Connect(format!("template: {e}")))
        };
        Ok(KafkaSink {
            topic: template(&config.topic)?,
            key: template(&config.key)?,
            dead_letter_topic: match config.dead_letter_topic.as_str() {
                "" => None,
                text => Some(template(text)?),
            },
            config: config.clone(),
            producer: None,
            ever_connected: false,
        })
    }

    /// The librdkafka configuration: ours, then the passthrough table.
    pub fn client_config(config: &KafkaConfig) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            .set("client.id", "outbox-relay")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", MAX_IN_FLIGHT)
            .set("compression.type", &config.compression)
            .set("message.timeout.ms", millis(config.message_timeout))
            .set("linger.ms", millis(config.linger))
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        for (key, value) in &config.librdkafka {
            c.set(key, value);
        }
        c
    }

    fn producer(&mut self) -> Result<Client, SinkError> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        let producer: Client = Self::client_config(&self.config)
            .create_with_context(RelayContext)
            .map_err(|e| SinkError::Connect(format!("creating the kafka producer: {e}")))?;
        if self.ever_connected {
            metrics().reconnects.with_label_values(&["broker"]).inc();
            tracing::info!("recreated the kafka producer");
        }
        self.ever_connected = true;
        self.producer = Some(producer.clone());
        Ok(producer)
    }

    /// Ends the producer session after a failed delivery: whatever it still
    /// holds is purged (the relay resends from the first unconfirmed event),
    /// and the next batch starts a new idempotent session. Continuing the old
    /// one would carry librdkafka's epoch bump, which some Kafka-protocol
    /// brokers (tansu 0.6) cannot handle, and after a fatal error it must end.
    fn reset_producer(&mut self) {
        let Some(producer) = self.producer.take() else {
            return;
        };
        if let Some((code, reason)) = producer.client().fatal_error() {
            tracing::error!(?code, reason, "kafka producer hit a fatal error");
        }
        metrics().set_connected(Component::Broker, false);
        producer.purge(PurgeConfig::default().queue().inflight());
        // Destroying a librdkafka handle can block while it closes its
        // connections: keep that off the async workers.
        tokio::task::spawn_blocking(move || drop(producer));
    }

    fn record_error(&self, error: KafkaError, event: &OutboxEvent, topic: &str) -> SinkError {
        match kafka::classify(&error) {
            Disposition::DeadLetter => SinkError::Rejected {
                event_id: event.id.clone(),
                reason: kafka::reason(&error),
                detail: format!("topic `{topic}`: {error}"),
            },
            Disposition::Retry | Disposition::Stop => {
                SinkError::Connection(format!("topic `{topic}`: {error}"))
            }
        }
    }

    async fn publish_all(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        let fail = |confirmed, error| PublishFailure { confirmed, error };
        let producer = self.producer().map_err(|e| fail(0, e))?;
        let mut pending = Vec::with_capacity(events.len());
        let mut enqueue_error = None;
        'events: for event in events {
            let rendered = self.topic.render(event).and_then(|topic| {
                check_topic(&topic)?;
                Ok((topic, self.key.render(event)?))
            });
            let (topic, key) = match rendered {
                Ok(names) => names,
                Err(detail) => {
                    enqueue_error = Some(unrenderable(event, "topic or key", detail));
                    break 'events;
                }
            };
            let span = PublishSpan::start(
                event,
                Destination::Kafka {
                    topic: &topic,
                    key: &key,
                },
            );
            let headers = headers(event, span.as_ref().map(PublishSpan::headers));
            loop {
                let mut record = FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&event.payload)
                    .headers(headers.clone());
                if let Some(ms) = event.created_at.and_then(unix_millis) {
                    record = record.timestamp(ms);
                }
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((delivery, topic, span));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's queue is full: let it drain a little.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => {
                        let error = self.record_error(error, event, &topic);
                        if let Some(span) = &span {
                            span.fail(&error);
                        }
                        enqueue_error = Some(error);
                        break 'events;
                    }
                }
            }
        }

        let sent = pending.len();
        for (index, (delivery, topic, span)) in pending.into_iter().enumerate() {
            let error = match delivery.await {
                Ok(Ok(_)) => continue,
                Ok(Err((error, _))) => self.record_error(error, &events[index], &topic),
                Err(_) => SinkError::Connection("the producer dropped a delivery report".into()),
            };
            if let Some(span) = &span {
                span.fail(&error);
            }
            self.reset_producer();
            return Err(fail(index, error));
        }
        metrics().set_connected(Component::Broker, true);
        match enqueue_error {
            None => Ok(()),
            Some(error) => {
                self.reset_producer();
                Err(fail(sent, error))
            }
        }
    }
}

impl Sink for KafkaSink {
    fn label(&self) -> &'static str {
        "kafka"
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        let producer = self.producer()?;
        let timeout = self.config.message_timeout;
        let metadata = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(None, timeout)
                .map(|m| m.brokers().len())
        })
        .await
        .map_err(|e| SinkError::Connect(format!("metadata task: {e}")))?
        .map_err(|e| SinkError::Connect(format!("{}: {e}", self.config.brokers)))?;
        tracing::debug!(brokers = metadata, "kafka cluster reachable");
        metrics().set_connected(Component::Broker, true);
        Ok(())
    }

    async fn publish(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        self.publish_all(events).await
    }

    fn reset(&mut self) {
        self.reset_producer();
    }

    async fn publish_dead_letter(
        &mut self,
        event: &OutboxEvent,
        reason: &str,
        error: &str,
    ) -> Result<(), SinkError> {
        let Some(topic) = &self.dead_letter_topic else {
            return Ok(());
        };
        let topic = topic
            .render(event)
            .map_err(|e| unrenderable(event, "dead_letter_topic", e))?;
        let key = self.key.render(event).unwrap_or_default();
        let copy = dead_letter_copy(event, reason, error);
        let producer = self.producer()?;
        let record = FutureRecord::to(&topic)
            .key(&key)
            .payload(&copy.payload)
            .headers(headers(&copy, None));
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| self.record_error(e, event, &topic))?;
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(self.record_error(e, event, &topic)),
            Err(_) => Err(SinkError::Connection(
                "the producer dropped a delivery report".into(),
            )),
        }
    }
}

/// The standard headers, then the row's own (standard names win), then
/// `trace` (the publish span's context) in place of the row's trace headers.
fn headers(event: &OutboxEvent, trace: Option<&[(String, String)]>) -> OwnedHeaders {
    let standard = event.standard_headers();
    let replace_trace = trace.is_some();
    let trace = trace.unwrap_or_default();
    let mut headers =
        OwnedHeaders::new_with_capacity(standard.len() + event.headers.len() + trace.len());
    for (key, value) in standard {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    for (key, value) in &event.headers {
        if standard.iter().any(|(k, _)| k == key) || (replace_trace && is_trace_header(key)) {
            continue;
        }
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        headers = headers.insert(Header {
            key,
            value: Some(text.as_bytes()),
        });
    }
    for (key, value) in trace {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    headers
}

fn unix_millis(at: SystemTime) -> Option<i64> {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Kafka's rule for topic names: 1 to 249 of `[a-zA-Z0-9._-]`.
fn check_topic(topic: &str) -> Result<(), String> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 249 || !topic.chars().all(legal) {
        return Err(format!(
            "`{topic}` is not a legal Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;
    use crate::event::PayloadKind;

    fn event(headers: &[(&str, &str)]) -> OutboxEvent {
        OutboxEvent {
            id: "7".into(),
            aggregate_type: "order".into(),
            aggregate_id: "42".into(),
            event_type: "paid".into(),
            payload: b"{}".to_vec(),
            payload_kind: PayloadKind::Json,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).into()))
                .collect(),
            created_at: None,
        }
    }

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                let value = String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned();
                (h.key.to_owned(), value)
            })
            .collect()
    }

    const ROW_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const SPAN_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";

    #[test]
    fn the_publish_span_context_replaces_the_rows() {
        let row = event(&[
            ("tenant", "acme"),
            ("Traceparent", ROW_PARENT),
            ("tracestate", "vendor=x"),
        ]);
        let trace = [
            ("traceparent".to_owned(), SPAN_PARENT.to_owned()),
            ("tracestate".to_owned(), "vendor=x".to_owned()),
        ];
        let got = pairs(&headers(&row, Some(&trace)));
        let trace_headers: Vec<_> = got
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("traceparent") || k == "tracestate")
            .collect();
        assert_eq!(
            trace_headers,
            [
                &("traceparent".to_owned(), SPAN_PARENT.to_owned()),
                &("tracestate".to_owned(), "vendor=x".to_owned())
            ]
        );
        assert!(got.contains(&("tenant".to_owned(), "acme".to_owned())));
        assert!(got.contains(&("event_id".to_owned(), "7".to_owned())));
    }

    #[test]
    fn without_tracing_the_rows_headers_go_out_unchanged() {
        let row = event(&[("traceparent", ROW_PARENT), ("tracestate", "vendor=x")]);
        let got = pairs(&headers(&row, None));
        assert!(got.contains(&("traceparent".to_owned(), ROW_PARENT.to_owned())));
        assert!(got.contains(&("tracestate".to_owned(), "vendor=x".to_owned())));
        assert_eq!(got.len(), 6);
    }
}
