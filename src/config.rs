//! The relay's configuration: plain serde structs with documented defaults,
//! loaded by figment (defaults < TOML file < `OUTBOX_RELAY_*` environment) and
//! checked by [`Config::validate`] before anything connects.
//!
//! Every error names the dotted key it is about, so an operator can find the
//! line to fix. `config.example.toml` documents the same keys.

mod kafka;
mod load;
mod retention;
mod secret;
mod validate;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use kafka::{SaslMechanism, SecurityProtocol};
pub use load::ConfigError;
pub use retention::RetentionConfig;
pub(crate) use secret::is_secret;
pub use secret::{Secret, SecretUrl, read_secret_file, redact};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How long SIGTERM/SIGINT waits for the in-flight batch before abandoning it.
    #[serde(deserialize_with = "duration::deserialize")]
    pub shutdown_grace: Duration,
    pub postgres: PostgresConfig,
    pub outbox: OutboxConfig,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub retry: RetryConfig,
    pub dead_letters: DeadLetterConfig,
    pub leader: LeaderConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub tracing: TracingConfig,
    /// How long sent rows and retried dead letters are kept.
    pub retention: RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(10),
            postgres: PostgresConfig::default(),
            outbox: OutboxConfig::default(),
            source: SourceConfig::default(),
            sink: SinkConfig::default(),
            retry: RetryConfig::default(),
            dead_letters: DeadLetterConfig::default(),
            leader: LeaderConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            tracing: TracingConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (which must exist when given), then the
    /// environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let config = load::extract(file)?;
        config.validate()?;
        Ok(config)
    }
}

/// Where the outbox lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// libpq-style URL or key=value connection string; may hold a password,
    /// and libpq's TLS keys (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
    /// `sslsni`; see [`crate::postgres::ssl`]).
    pub url: SecretUrl,
    /// A file holding the password (a mounted Kubernetes or Docker secret);
    /// it wins over a password in `url`. Empty: none.
    pub password_file: String,
    /// Bound on one connection attempt.
    #[serde(deserialize_with = "duration::deserialize")]
    pub connect_timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("postgres://postgres@127.0.0.1:5432/postgres"),
            password_file: String::new(),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl PostgresConfig {
    /// The password of `password_file`, read now (a rotated secret is
    /// picked up at the next connection); `None` when no file is set.
    pub fn password(&self) -> Result<Option<String>, String> {
        if self.password_file.is_empty() {
            return Ok(None);
        }
        read_secret_file("postgres.password_file", &self.password_file).map(Some)
    }
}

/// The outbox table and how its rows map to events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Optionally schema-qualified table name; quoted parts keep their case.
    pub table: String,
    /// What happens to a row once the broker confirmed it.
    pub mark: MarkMode,
    /// Column that orders claims; empty means `columns.id`.
    pub order_by: String,
    pub columns: ColumnsConfig,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            table: "public.outbox".into(),
            mark: MarkMode::Update,
            order_by: String::new(),
            columns: ColumnsConfig::default(),
        }
    }
}

impl SourceConfig {
    /// Events per batch for the configured mode.
    pub fn batch_size(&self) -> usize {
        match self.mode {
            SourceMode::Polling => self.polling.batch_size,
            SourceMode::Replication => self.replication.batch_size,
        }
    }
}

impl OutboxConfig {
    /// The column claims are ordered by.
    pub fn order_column(&self) -> &str {
        if self.order_by.is_empty() {
            &self.columns.id
        } else {
            &self.order_by
        }
    }
}

/// How a published row is recorded as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkMode {
    /// `sent_at = statement_timestamp()` (when the mark ran, after the
    /// broker confirmed): rows stay for auditing; clean them up yourself.
    Update,
    /// `DELETE`: the table holds only unsent rows.
    Delete,
    /// Leave rows alone (replication mode only: the slot alone records
    /// progress, and rows can be cleaned up by the application).
    None,
}

/// Column names of the outbox table; an empty optional column means absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnsConfig {
    pub id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    pub payload: String,
    /// Optional json/jsonb object whose keys become message headers.
    pub headers: String,
    /// Optional event time, used for the lag metrics and the message timestamp.
    pub created_at: String,
    /// Required when `outbox.mark = "update"`.
    pub sent_at: String,
}

impl Default for ColumnsConfig {
    fn default() -> Self {
        Self {
            id: "id".into(),
            aggregate_type: "aggregate_type".into(),
            aggregate_id: "aggregate_id".into(),
            event_type: "event_type".into(),
            payload: "payload".into(),
            headers: "headers".into(),
            created_at: "created_at".into(),
            sent_at: "sent_at".into(),
        }
    }
}

impl ColumnsConfig {
    /// `None` for a column configured as absent (`""`).
    pub fn optional(name: &str) -> Option<&str> {
        (!name.is_empty()).then_some(name)
    }
}

/// How events are read from Postgres.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    pub mode: SourceMode,
    pub polling: PollingConfig,
    pub replication: ReplicationConfig,
}

/// The source implementation to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    /// Claim rows with `FOR UPDATE SKIP LOCKED`, woken by LISTEN/NOTIFY.
    #[default]
    Polling,
    /// Stream inserts from a logical replication slot (pgoutput).
    Replication,
}

impl SourceMode {
    /// The `source` label of metrics.
    pub fn label(self) -> &'static str {
        match self {
            SourceMode::Polling => "polling",
            SourceMode::Replication => "replication",
        }
    }
}

/// Settings of the logical replication source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Replication slot name; the slot remembers how far the broker confirmed.
    pub slot: String,
    /// Publication covering the outbox table (inserts only).
    pub publication: String,
    /// Create the slot and publication when missing; false requires them.
    pub create: bool,
    /// Prefix of `pg_logical_emit_message` messages to publish as events;
    /// empty ignores messages.
    pub message_prefix: String,
    /// Events per batch handed to the sink.
    pub batch_size: usize,
    /// How often the relay reports its confirmed position to the server.
    #[serde(deserialize_with = "duration::deserialize")]
    pub status_interval: Duration,
    /// Whether the slot is created as a failover slot (PostgreSQL 17+),
    /// which a standby with `sync_replication_slots` keeps a copy of.
    pub failover: FailoverSlot,
    /// What to do when the slot is gone or lost (after a promotion, or
    /// past `max_slot_wal_keep_size`).
    pub on_lost_slot: LostSlot,
}

/// `source.replication.failover`: `true`, `false` or `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailoverSlot {
    /// A failover slot where the server has them (17+), else a plain one.
    #[default]
    Auto,
    /// A failover slot; a server without them is a configuration error.
    On,
    /// A plain slot, also on 17+.
    Off,
}

impl<'de> Deserialize<'de> for FailoverSlot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Flag(true) => Ok(FailoverSlot::On),
            Raw::Flag(false) => Ok(FailoverSlot::Off),
            Raw::Word(w) if w == "auto" => Ok(FailoverSlot::Auto),
            Raw::Word(w) if w == "true" => Ok(FailoverSlot::On),
            Raw::Word(w) if w == "false" => Ok(FailoverSlot::Off),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "`{w}` is not true, false or \"auto\""
            ))),
        }
    }
}

/// `source.replication.on_lost_slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LostSlot {
    /// Stop and ask for `outbox-relay recover-slot` (the only safe choice
    /// with `outbox.mark = "none"`: the table does not say what was sent).
    #[default]
    Stop,
    /// Create the slot again, publish every row not marked sent by a
    /// polling pass, then stream: duplicates are possible, loss is not.
    Recover,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            slot: "outbox_relay".into(),
            publication: "outbox_relay".into(),
            create: true,
            message_prefix: "outbox".into(),
            batch_size: 500,
            status_interval: Duration::from_secs(10),
            failover: FailoverSlot::Auto,
            on_lost_slot: LostSlot::Stop,
        }
    }
}

/// Settings of the polling source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingConfig {
    /// Rows claimed and published per batch.
    pub batch_size: usize,
    /// Fallback wake-up when no notification arrives.
    #[serde(deserialize_with = "duration::deserialize")]
    pub poll_interval: Duration,
    /// Channel to LISTEN on; empty disables LISTEN.
    pub notify_channel: String,
}

impl Default for PollingConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            notify_channel: "outbox_relay".into(),
        }
    }
}

/// Where events are published.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// Most events handed to the broker per second, in every mode, so a
    /// backlog after an outage does not flood consumers sized for the
    /// normal rate; 0 (the default) is unlimited. See [`crate::rate_limit`].
    pub max_events_per_second: u32,
    /// Events that may go at once after a quiet spell, above the rate;
    /// 0 (the default) is one second's worth (`max_events_per_second`).
    pub burst: u32,
    pub rabbitmq: RabbitMqConfig,
    pub kafka: KafkaConfig,
}

/// The sink implementation to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    #[default]
    Rabbitmq,
    /// Apache Kafka or any broker speaking its protocol.
    Kafka,
    /// One JSON line per event on stdout.
    Stdout,
}

impl SinkKind {
    /// The `sink` label of metrics.
    pub fn label(self) -> &'static str {
        match self {
            SinkKind::Rabbitmq => "rabbitmq",
            SinkKind::Kafka => "kafka",
            SinkKind::Stdout => "stdout",
        }
    }
}

/// Settings of the RabbitMQ sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RabbitMqConfig {
    /// AMQP URL; may hold a password.
    pub url: SecretUrl,
    /// Exchange template over the row.
    pub exchange: String,
    /// Routing key template over the row.
    pub routing_key: String,
    /// Declare the exchange (durable) when connecting.
    pub declare_exchange: bool,
    /// Exchange type used by `declare_exchange`.
    pub exchange_type: String,
    /// How long a batch may wait for its publisher confirms.
    #[serde(deserialize_with = "duration::deserialize")]
    pub confirm_timeout: Duration,
    /// Largest payload published; a larger event is dead-lettered as
    /// `oversized` without being sent. Keep it at or below the broker's
    /// `max_message_size` (16 MiB by default since RabbitMQ 4.0).
    pub max_message_bytes: usize,
    /// Also publish dead-lettered events to this exchange (empty: only the
    /// dead-letter table), with the routing key `dead_letter_routing_key`.
    pub dead_letter_exchange: String,
    /// Routing key template for `dead_letter_exchange`.
    pub dead_letter_routing_key: String,
    /// A file holding the password (a mounted Kubernetes or Docker secret);
    /// it wins over a password in `url`. Empty: none.
    pub password_file: String,
    /// With `amqps://`: the PEM file of the CAs the broker's certificate
    /// must chain to; empty: the operating system's CAs.
    pub ca_file: String,
    /// With `amqps://`: a client certificate (PEM) to present, for brokers
    /// that require one or for `auth_mechanism = "external"`.
    pub cert_file: String,
    /// The private key (PEM, unencrypted) of `cert_file`.
    pub key_file: String,
    /// How the relay logs in: `plain` (user and password of the URL) or
    /// `external` (the client certificate, RabbitMQ's
    /// rabbitmq_auth_mechanism_ssl plugin).
    pub auth_mechanism: AmqpAuth,
}

/// RabbitMQ's SASL mechanism for the relay's login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmqpAuth {
    /// User name and password (the URL's, or `password_file`).
    Plain,
    /// The TLS client certificate names the user; no password is sent.
    External,
}

impl RabbitMqConfig {
    /// The password of `password_file`, read now (a rotated secret is
    /// picked up at the next connection); `None` when no file is set.
    pub fn password(&self) -> Result<Option<String>, String> {
        if self.password_file.is_empty() {
            return Ok(None);
        }
        read_secret_file("sink.rabbitmq.password_file", &self.password_file).map(Some)
    }

    /// The TLS settings of an `amqps://` URL: the chain and host name are
    /// always verified.
    pub fn tls(&self) -> crate::tls::ClientTls {
        let trust = if self.ca_file.is_empty() {
            crate::tls::Trust::System
        } else {
            crate::tls::Trust::File(self.ca_file.clone().into())
        };
        let identity = (!self.cert_file.is_empty()).then(|| crate::tls::Identity {
            cert: self.cert_file.clone().into(),
            key: self.key_file.clone().into(),
        });
        crate::tls::ClientTls {
            verification: crate::tls::Verification::ChainAndHostName,
            trust: Some(trust),
            identity,
            sni: true,
        }
    }
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        Self {
            url: SecretUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            exchange: "outbox".into(),
            routing_key: "{aggregate_type}.{event_type}".into(),
            declare_exchange: false,
            exchange_type: "topic".into(),
            confirm_timeout: Duration::from_secs(30),
            max_message_bytes: 16 * 1024 * 1024,
            dead_letter_exchange: String::new(),
            dead_letter_routing_key: "{aggregate_type}.{event_type}".into(),
            password_file: String::new(),
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            auth_mechanism: AmqpAuth::Plain,
        }
    }
}

/// Settings of the Kafka sink. `Debug` masks the SASL password and any
/// secret in the passthrough table (see `config/kafka.rs`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` bootstrap servers.
    pub brokers: String,
    /// Topic template over the row.
    pub topic: String,
    /// Message key template over the row; events with one key share a
    /// partition, which keeps their order.
    pub key: String,
    /// `none`, `snappy` or `lz4` (built in); `zstd` with the `kafka-zstd` feature.
    pub compression: String,
    /// How long librdkafka may keep retrying a message before reporting it
    /// failed (`message.timeout.ms`); the relay then retries the batch.
    #[serde(deserialize_with = "duration::deserialize")]
    pub message_timeout: Duration,
    /// How long to wait for a batch to fill (`linger.ms`).
    #[serde(deserialize_with = "duration::deserialize")]
    pub linger: Duration,
    /// Also publish dead-lettered events to this topic template (empty:
    /// only the dead-letter table), keyed like `key`.
    pub dead_letter_topic: String,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`
    /// (`security.protocol`). Unset: the passthrough table's, else
    /// `plaintext`.
    pub security_protocol: Option<SecurityProtocol>,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`
    /// (`sasl.mechanisms`); needed with a `sasl_*` protocol.
    pub sasl_mechanism: Option<SaslMechanism>,
    /// The SASL user (`sasl.username`) of PLAIN and SCRAM.
    pub sasl_username: String,
    /// The SASL password (`sasl.password`); prefer `sasl_password_file`.
    pub sasl_password: Secret,
    /// A file holding the SASL password (a mounted Kubernetes or Docker
    /// secret), read each time the producer is made, so a rotated
    /// password is used from the next reconnection. Empty: none.
    pub sasl_password_file: String,
    /// PEM file of the CAs the brokers' certificates must chain to
    /// (`ssl.ca.location`). Empty: the operating system's CAs.
    pub ca_file: String,
    /// PEM client certificate for mutual TLS (`ssl.certificate.location`);
    /// needs `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file`, unencrypted (`ssl.key.location`).
    pub key_file: String,
    /// Any other librdkafka property, passed through as is; values here
    /// win over the relay's own, but may not repeat a property a typed key
    /// above sets. `message.max.bytes` is also the limit the relay checks
    /// each record against before sending (librdkafka's default: 1000000
    /// bytes).
    pub librdkafka: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "outbox.event.{aggregate_type}".into(),
            key: "{aggregate_id}".into(),
            compression: "lz4".into(),
            message_timeout: Duration::from_secs(30),
            linger: Duration::from_millis(5),
            dead_letter_topic: String::new(),
            security_protocol: None,
            sasl_mechanism: None,
            sasl_username: String::new(),
            sasl_password: Secret::default(),
            sasl_password_file: String::new(),
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            librdkafka: std::collections::BTreeMap::new(),
        }
    }
}

/// Backoff between attempts after a broker or database error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    #[serde(deserialize_with = "duration::deserialize")]
    pub initial_backoff: Duration,
    #[serde(deserialize_with = "duration::deserialize")]
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Where events the broker can never take are moved, and when.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadLetterConfig {
    /// Optionally schema-qualified table, created by `migrate`; empty means
    /// `<outbox table>_dead_letters` in the outbox's schema.
    pub table: String,
    /// Attempts at an event-specific error (oversized, unroutable, ...)
    /// before the event is dead-lettered; the last attempt publishes it
    /// alone, so a neighbour's fault is never blamed on it. At least 1.
    pub max_attempts: u32,
    /// Consecutive deaths of the process (abort, OOM kill, segfault) while
    /// publishing one event alone before that event is dead-lettered with
    /// reason `crashed`, unpublished (see `docs/crash-guard.md`). 0 turns
    /// the crash guard off.
    pub max_crashes: u32,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self {
            table: String::new(),
            max_attempts: 3,
            max_crashes: 3,
        }
    }
}

/// One active relay per outbox: replicas elect a leader with a Postgres
/// advisory lock held on a dedicated session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderConfig {
    /// Off only when a single relay runs and an extra session must be saved.
    pub enabled: bool,
    /// How often a standby tries to take the lock: the takeover delay after
    /// a leader dies with its session.
    #[serde(deserialize_with = "duration::deserialize")]
    pub takeover_interval: Duration,
    /// A leader that could not confirm its lock session for this long stops
    /// publishing. The server ends an idle lock session after twice this,
    /// so a cut-off leader always stops before a standby can start.
    #[serde(deserialize_with = "duration::deserialize")]
    pub lease: Duration,
}

impl Default for LeaderConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            takeover_interval: Duration::from_secs(1),
            lease: Duration::from_secs(3),
        }
    }
}

/// The HTTP listener for metrics and health.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to bind.
    pub listen: String,
    /// Refresh period of the backlog gauges.
    #[serde(deserialize_with = "duration::deserialize")]
    pub backlog_interval: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9469".into(),
            backlog_interval: Duration::from_secs(10),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Default filter; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// OpenTelemetry traces: a span per batch and per published event, exported
/// over OTLP/HTTP, and the trace context of a row's `traceparent` header
/// carried on to the message, so a consumer's span joins the writer's trace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// Off by default: then no span is made and no header is added or
    /// replaced, so the relay's throughput is unchanged.
    pub enabled: bool,
    /// OTLP/HTTP (protobuf) collector URL, `http://` only. A URL without a
    /// path gets `/v1/traces` appended. Empty: the standard
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// else `http://localhost:4318`.
    pub endpoint: String,
    /// The `service.name` resource attribute of every span.
    pub service_name: String,
    /// Fraction of new traces recorded, 0.0 to 1.0. Events whose row carries
    /// a `traceparent` follow that trace's sampling decision instead.
    pub sample_ratio: f64,
}

impl TracingConfig {
    /// Where the exporter sends spans, when `endpoint` is set.
    pub const TRACES_PATH: &str = "/v1/traces";

    /// `endpoint` with [`Self::TRACES_PATH`] added to a bare URL; `None`
    /// leaves the choice to the `OTEL_EXPORTER_OTLP_*` variables.
    pub fn traces_endpoint(&self) -> Option<String> {
        let endpoint = self.endpoint.trim();
        if endpoint.is_empty() {
            return None;
        }
        match url::Url::parse(endpoint) {
            Ok(url) if url.path() == "/" => Some(format!(
                "{}{}",
                endpoint.trim_end_matches('/'),
                Self::TRACES_PATH
            )),
            _ => Some(endpoint.to_owned()),
        }
    }
}

impl Default for TracingConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            endpoint: String::new(),
            service_name: "outbox-relay".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Durations written as strings such as `"250ms"` or `"5s"`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            D::Error::custom(format!(
                "`{text}` is not a duration ({e}); write e.g. \"250ms\", \"5s\" or \"1m\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example is a valid configuration with the defaults.
    #[test]
    fn the_example_file_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
        let config = Config::load(Some(path)).expect("config.example.toml loads");
        let defaults = Config::default();
        assert_eq!(
            config.dead_letters.max_attempts,
            defaults.dead_letters.max_attempts
        );
        assert_eq!(config.leader.lease, defaults.leader.lease);
        assert_eq!(
            config.sink.rabbitmq.max_message_bytes,
            defaults.sink.rabbitmq.max_message_bytes
        );
        assert_eq!(config.tracing.enabled, defaults.tracing.enabled);
        assert_eq!(config.tracing.endpoint, defaults.tracing.endpoint);
        assert_eq!(config.tracing.service_name, defaults.tracing.service_name);
        assert_eq!(config.tracing.sample_ratio, defaults.tracing.sample_ratio);
    }

    #[test]
    fn a_bare_tracing_endpoint_gets_the_traces_path() {
        let with = |endpoint: &str| TracingConfig {
            endpoint: endpoint.into(),
            ..TracingConfig::default()
        };
        assert_eq!(with("").traces_endpoint(), None);
        assert_eq!(
            with("http://collector:4318").traces_endpoint().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            with("http://collector:4318/").traces_endpoint().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            with("http://collector:4318/otlp/v1/traces")
                .traces_endpoint()
                .as_deref(),
            Some("http://collector:4318/otlp/v1/traces")
        );
    }
}
