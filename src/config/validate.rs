//! Checks on values that parsed but may still be unusable; no I/O.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use super::{Config, ConfigError, MarkMode, SinkKind, SourceMode};
use crate::outbox::TableName;
use crate::sink::template::Template;

/// Largest batch we accept: far beyond any measured benefit, small enough
/// that one batch's rows and messages fit comfortably in memory.
const MAX_BATCH_SIZE: usize = 100_000;

impl Config {
    /// Rejects values that parsed but cannot work, naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive("shutdown_grace", self.shutdown_grace)?;

        crate::postgres::Conninfo::parse(self.postgres.url.expose())
            .map_err(|e| ConfigError::invalid("postgres.url", e))?;
        positive("postgres.connect_timeout", self.postgres.connect_timeout)?;

        TableName::parse(&self.outbox.table)
            .map_err(|e| ConfigError::invalid("outbox.table", e))?;
        let columns = &self.outbox.columns;
        for (key, value) in [
            ("outbox.columns.id", &columns.id),
            ("outbox.columns.aggregate_type", &columns.aggregate_type),
            ("outbox.columns.aggregate_id", &columns.aggregate_id),
            ("outbox.columns.event_type", &columns.event_type),
            ("outbox.columns.payload", &columns.payload),
        ] {
            if value.is_empty() {
                return Err(ConfigError::invalid(key, "must name a column"));
            }
        }
        if self.outbox.mark == MarkMode::None && self.source.mode != SourceMode::Replication {
            return Err(ConfigError::invalid(
                "outbox.mark",
                "\"none\" only works with source.mode = \"replication\"; polling must mark rows",
            ));
        }
        if self.outbox.mark == MarkMode::Update && columns.sent_at.is_empty() {
            return Err(ConfigError::invalid(
                "outbox.columns.sent_at",
                "must name a column when outbox.mark = \"update\" (or set outbox.mark = \"delete\")",
            ));
        }

        let polling = &self.source.polling;
        if !(1..=MAX_BATCH_SIZE).contains(&polling.batch_size) {
            return Err(ConfigError::invalid(
                "source.polling.batch_size",
                format!(
                    "must be between 1 and {MAX_BATCH_SIZE}, got {}",
                    polling.batch_size
                ),
            ));
        }
        positive("source.polling.poll_interval", polling.poll_interval)?;
        let replication = &self.source.replication;
        if !(1..=MAX_BATCH_SIZE).contains(&replication.batch_size) {
            return Err(ConfigError::invalid(
                "source.replication.batch_size",
                format!(
                    "must be between 1 and {MAX_BATCH_SIZE}, got {}",
                    replication.batch_size
                ),
            ));
        }
        positive(
            "source.replication.status_interval",
            replication.status_interval,
        )?;
        if replication.on_lost_slot == super::LostSlot::Recover
            && self.outbox.mark == MarkMode::None
        {
            return Err(ConfigError::invalid(
                "source.replication.on_lost_slot",
                "\"recover\" needs outbox.mark = \"update\" or \"delete\": with \"none\" the \
                 table does not say which rows were sent (use `outbox-relay recover-slot`)",
            ));
        }
        for (key, value) in [
            ("source.replication.slot", &replication.slot),
            ("source.replication.publication", &replication.publication),
        ] {
            if value.is_empty() || value.len() > 63 {
                return Err(ConfigError::invalid(key, "must be 1 to 63 characters"));
            }
        }

        let retention = &self.retention;
        if retention.sent_after.is_some() && self.outbox.mark != MarkMode::Update {
            return Err(ConfigError::invalid(
                "retention.sent_after",
                "needs outbox.mark = \"update\" (with \"delete\" sent rows are gone already; \
                 with \"none\" use retention.streamed_after)",
            ));
        }
        if retention.streamed_after.is_some()
            && (self.outbox.mark != MarkMode::None || self.source.mode != SourceMode::Replication)
        {
            return Err(ConfigError::invalid(
                "retention.streamed_after",
                "needs source.mode = \"replication\" and outbox.mark = \"none\" (otherwise \
                 the marks say what was sent: use retention.sent_after)",
            ));
        }
        if retention.streamed_after.is_some() && self.outbox.columns.created_at.is_empty() {
            return Err(ConfigError::invalid(
                "retention.streamed_after",
                "needs outbox.columns.created_at: rows are deleted by their age",
            ));
        }
        if !(1..=100_000).contains(&retention.batch_size) {
            return Err(ConfigError::invalid(
                "retention.batch_size",
                format!("must be between 1 and 100000, got {}", retention.batch_size),
            ));
        }
        positive("retention.interval", retention.interval)?;
        positive("retention.statement_timeout", retention.statement_timeout)?;

        if self.sink.kind == SinkKind::Rabbitmq {
            let rabbit = &self.sink.rabbitmq;
            let url = url::Url::parse(rabbit.url.expose()).map_err(|e| {
                ConfigError::invalid("sink.rabbitmq.url", format!("not a valid URL: {e}"))
            })?;
            check_amqp_security(rabbit, &url)?;
            amqp_name("sink.rabbitmq.exchange", &rabbit.exchange)?;
            amqp_name("sink.rabbitmq.routing_key", &rabbit.routing_key)?;
            if !["direct", "topic", "fanout", "headers"].contains(&rabbit.exchange_type.as_str()) {
                return Err(ConfigError::invalid(
                    "sink.rabbitmq.exchange_type",
                    format!(
                        "`{}` is not one of direct, topic, fanout, headers",
                        rabbit.exchange_type
                    ),
                ));
            }
            positive("sink.rabbitmq.confirm_timeout", rabbit.confirm_timeout)?;
            if rabbit.max_message_bytes == 0 {
                return Err(ConfigError::invalid(
                    "sink.rabbitmq.max_message_bytes",
                    "must be at least 1",
                ));
            }
            amqp_name(
                "sink.rabbitmq.dead_letter_exchange",
                &rabbit.dead_letter_exchange,
            )?;
            amqp_name(
                "sink.rabbitmq.dead_letter_routing_key",
                &rabbit.dead_letter_routing_key,
            )?;
        }

        if self.sink.kind == SinkKind::Kafka {
            let kafka = &self.sink.kafka;
            if kafka.brokers.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "sink.kafka.brokers",
                    "must list at least one host:port",
                ));
            }
            Template::parse(&kafka.topic)
                .map_err(|e| ConfigError::invalid("sink.kafka.topic", e))?;
            Template::parse(&kafka.key).map_err(|e| ConfigError::invalid("sink.kafka.key", e))?;
            Template::parse(&kafka.dead_letter_topic)
                .map_err(|e| ConfigError::invalid("sink.kafka.dead_letter_topic", e))?;
            if !crate::sink::kafka::COMPRESSIONS.contains(&kafka.compression.as_str()) {
                return Err(ConfigError::invalid(
                    "sink.kafka.compression",
                    format!(
                        "`{}` is not one of {}",
                        kafka.compression,
                        crate::sink::kafka::COMPRESSIONS.join(", ")
                    ),
                ));
            }
            positive("sink.kafka.message_timeout", kafka.message_timeout)?;
            crate::sink::kafka::message::max_message_bytes(kafka).map_err(|e| {
                ConfigError::invalid(
                    format!(
                        "sink.kafka.librdkafka.\"{}\"",
                        crate::sink::kafka::message::MAX_MESSAGE_BYTES_PROPERTY
                    ),
                    e,
                )
            })?;
            check_propagation(kafka)?;
            for key in kafka.librdkafka.keys() {
                if crate::sink::kafka::OWNED_PROPERTIES.contains(&key.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("sink.kafka.librdkafka.\"{key}\""),
                        "is set by the relay for at-least-once, ordered delivery and cannot be overridden",
                    ));
                }
            }
            super::kafka::validate_security(kafka)?;
        }

        if self.sink.burst > 0 && self.sink.max_events_per_second == 0 {
            return Err(ConfigError::invalid(
                "sink.burst",
                "only applies with sink.max_events_per_second set (0 there is unlimited)",
            ));
        }

        positive("retry.initial_backoff", self.retry.initial_backoff)?;
        if self.dead_letters.max_attempts == 0 {
            return Err(ConfigError::invalid(
                "dead_letters.max_attempts",
                "must be at least 1",
            ));
        }
        if !self.dead_letters.table.is_empty() {
            TableName::parse(&self.dead_letters.table)
                .map_err(|e| ConfigError::invalid("dead_letters.table", e))?;
        }
        positive("leader.takeover_interval", self.leader.takeover_interval)?;
        if self.leader.lease < Duration::from_millis(300) {
            return Err(ConfigError::invalid(
                "leader.lease",
                "must be at least 300ms (the lock session is checked three times per lease)",
            ));
        }
        if self.retry.max_backoff < self.retry.initial_backoff {
            return Err(ConfigError::invalid(
                "retry.max_backoff",
                "must not be shorter than retry.initial_backoff",
            ));
        }

        SocketAddr::from_str(&self.metrics.listen).map_err(|e| {
            ConfigError::invalid(
                "metrics.listen",
                format!("`{}` is not host:port ({e})", self.metrics.listen),
            )
        })?;
        positive("metrics.backlog_interval", self.metrics.backlog_interval)?;

        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| ConfigError::invalid("log.level", format!("`{}`: {e}", self.log.level)))?;

        if self.tracing.enabled {
            let tracing = &self.tracing;
            if let Some(endpoint) = tracing.traces_endpoint() {
                let url = url::Url::parse(&endpoint).map_err(|e| {
                    ConfigError::invalid(
                        "tracing.endpoint",
                        format!("`{}` is not a valid URL: {e}", tracing.endpoint),
                    )
                })?;
                if url.scheme() != "http" {
                    return Err(ConfigError::invalid(
                        "tracing.endpoint",
                        format!(
                            "scheme must be http, got `{}` (the OTLP exporter is built without TLS; send to a local collector)",
                            url.scheme()
                        ),
                    ));
                }
            }
            if tracing.service_name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "tracing.service_name",
                    "must not be empty",
                ));
            }
            if !(0.0..=1.0).contains(&tracing.sample_ratio) {
                return Err(ConfigError::invalid(
                    "tracing.sample_ratio",
                    format!("must be between 0.0 and 1.0, got {}", tracing.sample_ratio),
                ));
            }
        }
        Ok(())
    }
}

/// An exchange or routing-key template: it parses, and without
/// placeholders it fits an AMQP short string (a longer fixed name would
/// dead-letter every event; templated ones are checked per event).
/// The URL's scheme against the TLS and login keys: TLS files only with
/// `amqps://`, a certificate with its key, EXTERNAL only with a certificate.
fn check_amqp_security(rabbit: &super::RabbitMqConfig, url: &url::Url) -> Result<(), ConfigError> {
    let tls = match url.scheme() {
        "amqps" => true,
        "amqp" => false,
        other => {
            return Err(ConfigError::invalid(
                "sink.rabbitmq.url",
                format!("scheme must be amqp or amqps, got `{other}`"),
            ));
        }
    };
    for (key, value) in [
        ("sink.rabbitmq.ca_file", &rabbit.ca_file),
        ("sink.rabbitmq.cert_file", &rabbit.cert_file),
        ("sink.rabbitmq.key_file", &rabbit.key_file),
    ] {
        if value.is_empty() {
            continue;
        }
        // The files themselves are read at each connection (a mounted
        // secret may appear later); a missing one is named then.
        if !tls {
            return Err(ConfigError::invalid(
                key,
                "is set but sink.rabbitmq.url is amqp:// (plain text): use amqps://",
            ));
        }
    }
    if rabbit.cert_file.is_empty() != rabbit.key_file.is_empty() {
        return Err(ConfigError::invalid(
            "sink.rabbitmq.cert_file",
            "cert_file and key_file go together: set both or neither",
        ));
    }
    if rabbit.auth_mechanism == super::AmqpAuth::External && rabbit.cert_file.is_empty() {
        return Err(ConfigError::invalid(
            "sink.rabbitmq.auth_mechanism",
            "external logs in with the client certificate: set cert_file and key_file \
             (and use amqps://)",
        ));
    }
    if rabbit.auth_mechanism == super::AmqpAuth::External && !rabbit.password_file.is_empty() {
        return Err(ConfigError::invalid(
            "sink.rabbitmq.password_file",
            "is set but auth_mechanism = \"external\" sends no password",
        ));
    }
    Ok(())
}

fn amqp_name(key: &str, text: &str) -> Result<(), ConfigError> {
    let template = Template::parse(text).map_err(|e| ConfigError::invalid(key, e))?;
    match template.fixed() {
        Some(name) if name.len() > 255 => Err(ConfigError::invalid(
            key,
            format!(
                "{} bytes is more than an AMQP short string allows (255)",
                name.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// A `topic.metadata.propagation.max.ms` set in the passthrough table must
/// end before the message timeout, or a message to a missing topic times
/// out (retried for ever) before it can fail as unknown (dead-lettered).
fn check_propagation(kafka: &super::KafkaConfig) -> Result<(), ConfigError> {
    use crate::sink::kafka::{PROPAGATION_PROPERTY, effective_message_timeout};
    let Some(text) = kafka.librdkafka.get(PROPAGATION_PROPERTY) else {
        return Ok(());
    };
    let key = format!("sink.kafka.librdkafka.\"{PROPAGATION_PROPERTY}\"");
    let propagation = text
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| {
            ConfigError::invalid(&key, format!("`{text}` is not a number of milliseconds"))
        })?;
    let timeout = effective_message_timeout(kafka);
    if !timeout.is_zero() && propagation >= timeout {
        return Err(ConfigError::invalid(
            &key,
            format!(
                "{propagation:?} must be shorter than the message timeout ({timeout:?}): \
                 an event to a missing topic would time out and be retried for ever \
                 instead of being dead-lettered"
            ),
        ));
    }
    Ok(())
}

fn positive(key: &str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(key, "must be longer than zero"));
    }
    Ok(())
}
