//! The Kafka sink: an idempotent `acks=all` producer whose in-flight limit
//! keeps per-partition order across retries. A batch is handed to librdkafka
//! whole; its delivery reports are then awaited in order.

mod context;
pub mod message;
pub mod security;
pub mod tls_diagnosis;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, Producer, PurgeConfig};

use context::{LastError, RelayContext};
use message::{KafkaMessage, MessageBuilder};

use super::template::Template;
use super::trace::{Destination, PublishSpan};
use super::{EventError, PublishFailure, Sink, SinkError, dead_letter_copy};
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

/// librdkafka's property for how long a topic the brokers say does not
/// exist still counts as being created (propagating through the cluster)
/// before the messages queued for it fail as unknown.
pub const PROPAGATION_PROPERTY: &str = "topic.metadata.propagation.max.ms";

/// The longest the relay lets a missing topic count as propagating.
const MAX_PROPAGATION: Duration = Duration::from_secs(10);

/// How long a topic the brokers do not know counts as still propagating:
/// a third of the message timeout, at most 10 s. librdkafka's default
/// (30 s) is as long as the default message timeout, so a message to a
/// missing topic timed out (a path error, retried for ever) before it
/// could fail as unknown (the event's fault, dead-lettered). The relay
/// recreates its producer after a failed delivery, which starts this
/// window again, so every attempt must fit it inside the message timeout.
pub fn topic_propagation(message_timeout: Duration) -> Duration {
    (message_timeout / 3).min(MAX_PROPAGATION)
}

/// The message timeout librdkafka will use: the passthrough table's
/// `message.timeout.ms` or `delivery.timeout.ms` (its alias) if set,
/// else `sink.kafka.message_timeout`. Zero is librdkafka's "no timeout".
pub fn effective_message_timeout(config: &KafkaConfig) -> Duration {
    ["message.timeout.ms", "delivery.timeout.ms"]
        .iter()
        .find_map(|key| config.librdkafka.get(*key)?.trim().parse::<u64>().ok())
        .map_or(config.message_timeout, Duration::from_millis)
}

type Client = FutureProducer<RelayContext>;

/// Publishes to Kafka; recreates its producer after a fatal error.
pub struct KafkaSink {
    config: KafkaConfig,
    messages: MessageBuilder,
    /// Copies of dead letters, to their topic, if one is configured.
    dead_letters: Option<MessageBuilder>,
    producer: Option<Client>,
    /// What the current producer's librdkafka last reported as an error.
    last_error: LastError,
    ever_connected: bool,
}

impl KafkaSink {
    pub fn new(config: &KafkaConfig) -> Result<Self, SinkError> {
        let builder = |text: &str, field| {
            Template::parse(text)
                .and_then(|topic| MessageBuilder::new(config, topic, field))
                .map_err(|e| SinkError::Connect(format!("sink.kafka: {e}")))
        };
        Ok(KafkaSink {
            messages: builder(&config.topic, "topic")?,
            dead_letters: match config.dead_letter_topic.as_str() {
                "" => None,
                text => Some(builder(text, "dead_letter_topic")?.lenient_key()),
            },
            config: config.clone(),
            producer: None,
            last_error: LastError::default(),
            ever_connected: false,
        })
    }

    /// The librdkafka configuration: ours, the typed security keys (the
    /// SASL password file read now), then the passthrough table.
    pub fn client_config(config: &KafkaConfig) -> Result<ClientConfig, SinkError> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &config.brokers)
            .set("client.id", "outbox-relay")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", MAX_IN_FLIGHT)
            .set("compression.type", &config.compression)
            .set("message.timeout.ms", millis(config.message_timeout))
            .set("linger.ms", millis(config.linger))
            .set(
                PROPAGATION_PROPERTY,
                millis(topic_propagation(effective_message_timeout(config))),
            )
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .set(security::HOST_NAME_CHECK, "https");
        let typed = security::properties(config).map_err(SinkError::Connect)?;
        for (key, value) in typed {
            c.set(key, value);
        }
        for (key, value) in &config.librdkafka {
            c.set(key, value);
        }
        Ok(c)
    }

    fn producer(&mut self) -> Result<Client, SinkError> {
        if let Some(p) = &self.producer {
            return Ok(p.clone());
        }
        self.last_error.clear();
        let context = RelayContext::new(security::secrets(&self.config), self.last_error.clone());
        let producer: Client = Self::client_config(&self.config)?
            .create_with_context(context)
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
            let (message, span) = match self.message(event) {
                Ok(built) => built,
                Err(error) => {
                    enqueue_error = Some(error.rejecting(event));
                    break 'events;
                }
            };
            loop {
                match producer.send_result(message.record()) {
                    Ok(delivery) => {
                        pending.push((delivery, message.topic, span));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // librdkafka's queue is full: let it drain a little.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => {
                        let error = self.record_error(error, event, &message.topic);
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

    /// A failed metadata request, with what librdkafka last reported (a
    /// refused login, a failed handshake) and, over TLS, the reason a
    /// handshake of the relay's own finds.
    async fn connect_error(&self, error: KafkaError) -> SinkError {
        let mut text = format!("{}: {error}", crate::config::redact(&self.config.brokers));
        if let Some(last) = self.last_error.get() {
            text.push_str(&format!("; last broker error: {last}"));
        }
        if let Some(reason) = tls_diagnosis::diagnose(&self.config).await {
            text.push_str(&format!("; TLS: {reason}"));
        }
        SinkError::Connect(text)
    }

    /// The record of `event` and its publish span (whose trace context
    /// replaces the row's); an event it cannot be is refused.
    fn message<'a>(
        &self,
        event: &'a OutboxEvent,
    ) -> Result<(KafkaMessage<'a>, Option<PublishSpan>), EventError> {
        let message = self.messages.build(event)?;
        let span = PublishSpan::start(
            event,
            Destination::Kafka {
                topic: &message.topic,
                key: &message.key,
            },
        );
        let message = match &span {
            Some(span) => message
                .with_trace(span.headers())
                .inspect_err(|e| span.fail(e))?,
            None => message,
        };
        Ok((message, span))
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
        .map_err(|e| SinkError::Connect(format!("metadata task: {e}")))?;
        let metadata = match metadata {
            Ok(brokers) => brokers,
            Err(e) => return Err(self.connect_error(e).await),
        };
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
        let Some(builder) = &self.dead_letters else {
            return Ok(());
        };
        let copy = dead_letter_copy(event, reason, error);
        let message = builder.build(&copy).map_err(|e| e.rejecting(event))?;
        let producer = self.producer()?;
        let delivery = producer
            .send_result(message.record())
            .map_err(|(e, _)| self.record_error(e, event, &message.topic))?;
        let topic = message.topic.clone();
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(self.record_error(e, event, &topic)),
            Err(_) => Err(SinkError::Connection(
                "the producer dropped a delivery report".into(),
            )),
        }
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_topic_fails_as_unknown_well_inside_the_message_timeout() {
        let secs = Duration::from_secs;
        assert_eq!(topic_propagation(secs(30)), secs(10));
        assert_eq!(topic_propagation(secs(6)), secs(2));
        assert_eq!(topic_propagation(secs(300)), secs(10));
        let mut config = KafkaConfig::default();
        let property = |config: &KafkaConfig| {
            KafkaSink::client_config(config)
                .expect("client config")
                .get(PROPAGATION_PROPERTY)
                .map(str::to_owned)
        };
        assert_eq!(property(&config).as_deref(), Some("10000"));
        // The passthrough's message timeout is the one librdkafka uses.
        config
            .librdkafka
            .insert("message.timeout.ms".into(), "9000".into());
        assert_eq!(effective_message_timeout(&config), secs(9));
        assert_eq!(property(&config).as_deref(), Some("3000"));
        config
            .librdkafka
            .insert(PROPAGATION_PROPERTY.into(), "500".into());
        assert_eq!(property(&config).as_deref(), Some("500"));
    }
}
