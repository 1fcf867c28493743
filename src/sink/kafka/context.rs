//! The producer's client context: librdkafka's logs into tracing, and its
//! statistics into two gauges.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::statistics::Statistics;

use crate::metrics::metrics;

/// Forwards librdkafka's logs and statistics.
pub struct RelayContext;

impl ClientContext for RelayContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
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

    fn stats(&self, statistics: Statistics) {
        let m = metrics();
        m.kafka_queue_messages
            .set(i64::try_from(statistics.msg_cnt).unwrap_or(i64::MAX));
        let in_flight: i64 = statistics.brokers.values().map(|b| b.waitresp_cnt).sum();
        m.kafka_in_flight_requests.set(in_flight);
    }
}
