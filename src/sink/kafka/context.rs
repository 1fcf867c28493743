//! The producer's client context: librdkafka's logs and errors into
//! tracing with every secret scrubbed, the last error kept for the
//! connect error, and its statistics into two gauges.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;

use super::security::scrub;
use crate::metrics::metrics;

/// The last error librdkafka reported (a failed TLS handshake or login),
/// scrubbed: the connect error names it.
#[derive(Clone, Default)]
pub struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    /// The error, for the connect error's text.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|e| e.clone())
    }

    fn set(&self, text: Option<String>) {
        if let Ok(mut last) = self.0.lock() {
            *last = text;
        }
    }

    /// Forgets it: a new producer starts without one.
    pub fn clear(&self) {
        self.set(None);
    }
}

/// Forwards librdkafka's logs, errors and statistics.
pub struct RelayContext {
    /// Text no line may show (the SASL password, passthrough secrets).
    secrets: Vec<String>,
    last_error: LastError,
}

impl RelayContext {
    /// A context scrubbing `secrets` and recording into `last_error`.
    pub fn new(secrets: Vec<String>, last_error: LastError) -> Self {
        RelayContext {
            secrets,
            last_error,
        }
    }
}

impl ClientContext for RelayContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let message = scrub(message, &self.secrets);
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(facility, "librdkafka: {message}")
            }
            // Connection failures arrive here at error level; the relay
            // reports their consequences itself, so they are warnings.
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning => {
                tracing::warn!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility, "librdkafka: {message}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility, "librdkafka: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let text = scrub(&format!("{error}: {reason}"), &self.secrets);
        // librdkafka logs the failure itself (at error level, see `log`);
        // this is its summary, repeated on every reconnection attempt.
        tracing::debug!("librdkafka error: {text}");
        // "All brokers down" follows the error that says why; keep that one.
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            self.last_error.set(Some(text));
        }
    }

    fn stats(&self, statistics: Statistics) {
        let m = metrics();
        m.kafka_queue_messages
            .set(i64::try_from(statistics.msg_cnt).unwrap_or(i64::MAX));
        let in_flight: i64 = statistics.brokers.values().map(|b| b.waitresp_cnt).sum();
        m.kafka_in_flight_requests.set(in_flight);
    }
}
