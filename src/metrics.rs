//! Every metric the relay exports, named and described once.
//!
//! Labels are low-cardinality by rule: a sink kind, a component, a failure
//! reason; never an event id, aggregate id or routing key.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The relay's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// Events the broker confirmed, by sink.
    pub events_published: IntCounterVec,
    /// Rows marked sent (or deleted) after confirmation.
    pub events_acknowledged: IntCounter,
    /// Failed publish attempts, by sink and reason.
    pub publish_failures: IntCounterVec,
    /// Failed source operations (claim, mark, connect), by reason.
    pub source_errors: IntCounterVec,
    /// Events per claimed batch.
    pub batch_size: Histogram,
    /// Time from the first publish of a batch to its last confirmation, by sink.
    pub publish_duration: HistogramVec,
    /// Seconds the pipeline waited for `sink.max_events_per_second`.
    pub rate_limit_wait: prometheus::Counter,
    /// The configured `sink.max_events_per_second` (0: unlimited).
    pub rate_limit_events_per_second: IntGauge,
    /// Confirmation time minus the event's created_at.
    pub event_lag: Histogram,
    /// Unsent rows, refreshed every `metrics.backlog_interval`.
    pub backlog_events: IntGauge,
    /// Age of the oldest unsent row in seconds, same refresh.
    pub oldest_unsent_age: prometheus::Gauge,
    /// Reconnections after a lost connection, by component.
    pub reconnects: IntCounterVec,
    /// 1 while the component's connection is up, by component.
    pub connected: IntGaugeVec,
    /// Constant 1, labelled with the version.
    pub build_info: IntGaugeVec,
    /// WAL the replication slot holds back: server position minus the
    /// slot's confirmed position, in bytes (replication mode).
    pub slot_lag_bytes: IntGauge,
    /// 1 while the replication slot exists and is not lost (replication mode).
    pub slot_healthy: IntGauge,
    /// Slots created again by `on_lost_slot = "recover"` (after a promotion
    /// or lost WAL), by reason (`missing`, `lost`).
    pub slot_recoveries: IntCounterVec,
    /// Messages in librdkafka's producer queue (Kafka sink only).
    pub kafka_queue_messages: IntGauge,
    /// Produce requests awaiting a broker response (Kafka sink only).
    pub kafka_in_flight_requests: IntGauge,
    /// Events moved to the dead-letter table, by sink and reason.
    pub dead_letters: IntCounterVec,
    /// Rows in the dead-letter table not yet retried.
    pub dead_letters_pending: IntGauge,
    /// 1 while this relay holds the outbox's leader lock and publishes.
    pub leader: IntGauge,
    /// Rows retention deleted, by table (`outbox`, `dead_letters`).
    pub retention_deleted: IntCounterVec,
    /// Duration of each retention pass.
    pub retention_pass_duration: Histogram,
    /// Age of the oldest row retention keeps (sent, or streamed), seconds.
    pub retention_oldest_age: prometheus::Gauge,
    /// When the last retention pass ended (Unix seconds); 0 before the first.
    pub retention_last_pass: prometheus::Gauge,
    /// The configured window of the outbox rows (`sent_after` or
    /// `streamed_after`), seconds; 0 when rows are kept for ever.
    pub retention_window: prometheus::Gauge,
    /// 1 while the broker has blocked the relay's connection (RabbitMQ's
    /// memory or disk alarm): connected, but publishes wait.
    pub broker_blocked: IntGauge,
    /// The broker's reason for the block, for `/readyz`.
    broker_blocked_reason: std::sync::Mutex<Option<String>>,
}

/// Name prefix shared by every metric.
const NAMESPACE: &str = "outbox_relay";

/// Seconds, from 1 ms to about 10 minutes.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];

const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn histogram_opts(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help)
        .namespace(NAMESPACE)
        .buckets(buckets.to_vec())
}

impl Metrics {
    // `expect` below: the names and label sets are fixed, so a failure is a
    // bug that any test run catches.
    fn new() -> Self {
        let registry = Registry::new();
        let m = Metrics {
            registry: registry.clone(),
            events_published: IntCounterVec::new(
                opts("events_published_total", "Events the broker confirmed."),
                &["sink"],
            )
            .expect("metric"),
            events_acknowledged: IntCounter::with_opts(opts(
                "events_acknowledged_total",
                "Outbox rows marked sent or deleted after the broker confirmed them.",
            ))
            .expect("metric"),
            publish_failures: IntCounterVec::new(
                opts(
                    "publish_failures_total",
                    "Failed publish attempts, by reason.",
                ),
                &["sink", "reason"],
            )
            .expect("metric"),
            source_errors: IntCounterVec::new(
                opts(
                    "source_errors_total",
                    "Failed source operations, by reason.",
                ),
                &["source", "reason"],
            )
            .expect("metric"),
            batch_size: Histogram::with_opts(histogram_opts(
                "batch_size_events",
                "Events per claimed batch.",
                BATCH_BUCKETS,
            ))
            .expect("metric"),
            publish_duration: HistogramVec::new(
                histogram_opts(
                    "publish_duration_seconds",
                    "Time to publish a batch and receive every confirmation.",
                    LATENCY_BUCKETS,
                ),
                &["sink"],
            )
            .expect("metric"),
            rate_limit_wait: prometheus::Counter::with_opts(opts(
                "rate_limit_wait_seconds_total",
                "Time the relay waited before claiming because of sink.max_events_per_second.",
            ))
            .expect("metric"),
            rate_limit_events_per_second: IntGauge::with_opts(opts(
                "rate_limit_events_per_second",
                "The configured sink.max_events_per_second; 0 is unlimited.",
            ))
            .expect("metric"),
            event_lag: Histogram::with_opts(histogram_opts(
                "event_lag_seconds",
                "Broker confirmation time minus the event's created_at.",
                LATENCY_BUCKETS,
            ))
            .expect("metric"),
            backlog_events: IntGauge::with_opts(opts(
                "backlog_events",
                "Unsent outbox rows, refreshed every metrics.backlog_interval.",
            ))
            .expect("metric"),
            oldest_unsent_age: prometheus::Gauge::with_opts(opts(
                "oldest_unsent_age_seconds",
                "Age of the oldest unsent outbox row (0 when none), same refresh.",
            ))
            .expect("metric"),
            reconnects: IntCounterVec::new(
                opts("reconnects_total", "Reconnections after a lost connection."),
                &["component"],
            )
            .expect("metric"),
            connected: IntGaugeVec::new(
                opts("connected", "1 while the component's connection is up."),
                &["component"],
            )
            .expect("metric"),
            build_info: IntGaugeVec::new(
                opts(
                    "build_info",
                    "Constant 1, labelled with the relay's version.",
                ),
                &["version"],
            )
            .expect("metric"),
            slot_lag_bytes: IntGauge::with_opts(opts(
                "replication_slot_lag_bytes",
                "WAL held by the replication slot: pg_current_wal_lsn() - confirmed_flush_lsn.",
            ))
            .expect("metric"),
            slot_healthy: IntGauge::with_opts(opts(
                "replication_slot_healthy",
                "1 while the replication slot exists and its WAL is not lost.",
            ))
            .expect("metric"),
            kafka_queue_messages: IntGauge::with_opts(opts(
                "kafka_producer_queue_messages",
                "Messages waiting in librdkafka's producer queue.",
            ))
            .expect("metric"),
            kafka_in_flight_requests: IntGauge::with_opts(opts(
                "kafka_in_flight_requests",
                "Produce requests sent to Kafka brokers and awaiting a response.",
            ))
            .expect("metric"),
            dead_letters: IntCounterVec::new(
                opts(
                    "dead_letters_total",
                    "Events moved to the dead-letter table because the broker can never take them.",
                ),
                &["sink", "reason"],
            )
            .expect("metric"),
            dead_letters_pending: IntGauge::with_opts(opts(
                "dead_letters_pending",
                "Rows in the dead-letter table not yet retried.",
            ))
            .expect("metric"),
            slot_recoveries: IntCounterVec::new(
                opts(
                    "replication_slot_recoveries_total",
                    "Replication slots created again after they went missing or were lost (on_lost_slot = \"recover\"), by reason.",
                ),
                &["reason"],
            )
            .expect("metric"),
            retention_deleted: IntCounterVec::new(
                opts(
                    "retention_deleted_rows_total",
                    "Rows retention deleted, by table.",
                ),
                &["table"],
            )
            .expect("metric"),
            retention_pass_duration: Histogram::with_opts(histogram_opts(
                "retention_pass_duration_seconds",
                "Duration of each retention pass.",
                LATENCY_BUCKETS,
            ))
            .expect("metric"),
            retention_oldest_age: prometheus::Gauge::with_opts(opts(
                "retention_oldest_sent_age_seconds",
                "Age of the oldest row retention keeps that it deletes once past the window (a sent row, or a streamed one with mark = none).",
            ))
            .expect("metric"),
            retention_last_pass: prometheus::Gauge::with_opts(opts(
                "retention_last_pass_timestamp_seconds",
                "When the last retention pass ended, as Unix seconds; 0 before the first.",
            ))
            .expect("metric"),
            retention_window: prometheus::Gauge::with_opts(opts(
                "retention_window_seconds",
                "How long retention keeps sent (or streamed) outbox rows, seconds; 0 keeps them for ever.",
            ))
            .expect("metric"),
            leader: IntGauge::with_opts(opts(
                "leader",
                "1 while this relay holds the outbox's leader lock and publishes; 0 on standby.",
            ))
            .expect("metric"),
            broker_blocked: IntGauge::with_opts(opts(
                "broker_blocked",
                "1 while the broker blocks the relay's connection (RabbitMQ memory or disk alarm).",
            ))
            .expect("metric"),
            broker_blocked_reason: std::sync::Mutex::new(None),
        };
        // The replication slot gauges are registered by `prepare`, in
        // replication mode only: elsewhere there is no slot to report on.
        let collectors: [Box<dyn prometheus::core::Collector>; 23] = [
            Box::new(m.events_published.clone()),
            Box::new(m.events_acknowledged.clone()),
            Box::new(m.publish_failures.clone()),
            Box::new(m.source_errors.clone()),
            Box::new(m.batch_size.clone()),
            Box::new(m.publish_duration.clone()),
            Box::new(m.event_lag.clone()),
            Box::new(m.backlog_events.clone()),
            Box::new(m.oldest_unsent_age.clone()),
            Box::new(m.reconnects.clone()),
            Box::new(m.connected.clone()),
            Box::new(m.build_info.clone()),
            Box::new(m.kafka_queue_messages.clone()),
            Box::new(m.kafka_in_flight_requests.clone()),
            Box::new(m.dead_letters.clone()),
            Box::new(m.dead_letters_pending.clone()),
            Box::new(m.leader.clone()),
            Box::new(m.broker_blocked.clone()),
            Box::new(m.retention_deleted.clone()),
            Box::new(m.retention_pass_duration.clone()),
            Box::new(m.retention_oldest_age.clone()),
            Box::new(m.retention_last_pass.clone()),
            Box::new(m.retention_window.clone()),
        ];
        for c in collectors {
            registry.register(c).expect("unique metric names");
        }
        // The controlled rate's (src/rate_limit.rs): no labels, so both
        // exist at 0 from the start.
        registry
            .register(Box::new(m.rate_limit_wait.clone()))
            .expect("unique metric names");
        registry
            .register(Box::new(m.rate_limit_events_per_second.clone()))
            .expect("unique metric names");
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// Creates every series this relay can produce, at 0, before the first
    /// event: a dashboard then shows 0 rather than nothing, and an alert on
    /// `increase(...)` sees the first failure or dead letter of a reason
    /// (a series born at 1 has no increase). Also registers the replication
    /// slot gauges when the source is a replication slot. Call once, at
    /// startup.
    pub fn prepare(&self, sets: &LabelSets<'_>) {
        self.events_published.with_label_values(&[sets.sink]);
        self.publish_duration.with_label_values(&[sets.sink]);
        for reason in sets.publish_failure_reasons {
            self.publish_failures
                .with_label_values(&[sets.sink, reason]);
        }
        for reason in sets.dead_letter_reasons {
            self.dead_letters.with_label_values(&[sets.sink, reason]);
        }
        for reason in sets.source_error_reasons {
            self.source_errors.with_label_values(&[sets.source, reason]);
        }
        for component in sets.components {
            self.reconnects.with_label_values(&[component.label()]);
            self.connected.with_label_values(&[component.label()]);
        }
        for table in ["outbox", "dead_letters"] {
            self.retention_deleted.with_label_values(&[table]);
        }
        if sets.replication {
            for gauge in [&self.slot_lag_bytes, &self.slot_healthy] {
                if let Err(e) = self.registry.register(Box::new(gauge.clone())) {
                    tracing::debug!(error = %e, "replication slot gauges already registered");
                }
            }
            if let Err(e) = self
                .registry
                .register(Box::new(self.slot_recoveries.clone()))
            {
                tracing::debug!(error = %e, "slot recoveries already registered");
            }
            for reason in ["missing", "lost"] {
                self.slot_recoveries.with_label_values(&[reason]);
            }
        }
    }

    /// The text exposition format served on `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on metric families that violate the
        // format, which our fixed definitions cannot produce.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Records whether a component's connection is up; `/readyz` reads it.
    pub fn set_connected(&self, component: Component, up: bool) {
        self.connected
            .with_label_values(&[component.label()])
            .set(i64::from(up));
    }

    /// Records that the broker blocked the connection (with its reason) or
    /// lifted the block (`None`).
    pub fn set_broker_blocked(&self, reason: Option<&str>) {
        self.broker_blocked.set(i64::from(reason.is_some()));
        *self
            .broker_blocked_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reason.map(str::to_owned);
    }

    /// Why the broker blocks the connection, if it does.
    pub fn broker_blocked(&self) -> Option<String> {
        self.broker_blocked_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a component's connection is up.
    pub fn is_connected(&self, component: Component) -> bool {
        self.connected.with_label_values(&[component.label()]).get() == 1
    }
}

/// The label values one relay can produce, for [`Metrics::prepare`].
pub struct LabelSets<'a> {
    /// The configured sink's `sink` label.
    pub sink: &'a str,
    /// The configured source's `source` label.
    pub source: &'a str,
    /// Every `reason` of `publish_failures_total`.
    pub publish_failure_reasons: &'a [&'a str],
    /// Every `reason` of `dead_letters_total` this sink can record.
    pub dead_letter_reasons: &'a [&'a str],
    /// Every `reason` of `source_errors_total`.
    pub source_error_reasons: &'a [&'a str],
    /// The connections this relay keeps (`election` only with a leader lock).
    pub components: &'a [Component],
    /// Whether the source is a replication slot.
    pub replication: bool,
}

/// The connections the relay keeps, as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The source's session to Postgres.
    Postgres,
    /// The sink's connection to the broker.
    Broker,
    /// The session holding (or waiting for) the leader lock.
    Election,
}

impl Component {
    pub fn label(self) -> &'static str {
        match self {
            Component::Postgres => "postgres",
            Component::Broker => "broker",
            Component::Election => "election",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Component, LabelSets, Metrics};

    fn sets(replication: bool) -> LabelSets<'static> {
        LabelSets {
            sink: "rabbitmq",
            source: "polling",
            publish_failure_reasons: &["timeout"],
            dead_letter_reasons: &["oversized"],
            source_error_reasons: &["claim"],
            components: &[Component::Postgres, Component::Broker],
            replication,
        }
    }

    #[test]
    fn prepare_creates_every_series_at_zero() {
        let m = Metrics::new();
        m.prepare(&sets(false));
        let text = m.render();
        for sample in [
            "outbox_relay_events_published_total{sink=\"rabbitmq\"} 0",
            "outbox_relay_publish_duration_seconds_count{sink=\"rabbitmq\"} 0",
            "outbox_relay_publish_failures_total{reason=\"timeout\",sink=\"rabbitmq\"} 0",
            "outbox_relay_dead_letters_total{reason=\"oversized\",sink=\"rabbitmq\"} 0",
            "outbox_relay_source_errors_total{reason=\"claim\",source=\"polling\"} 0",
            "outbox_relay_reconnects_total{component=\"broker\"} 0",
            "outbox_relay_connected{component=\"postgres\"} 0",
        ] {
            assert!(text.contains(sample), "{sample} missing from:\n{text}");
        }
        assert!(!text.contains("election"), "no leader lock, no election");
        assert!(
            !text.contains("replication_slot"),
            "no slot in polling mode"
        );
    }

    #[test]
    fn replication_mode_exports_the_slot_gauges() {
        let m = Metrics::new();
        m.prepare(&sets(true));
        m.prepare(&sets(true));
        let text = m.render();
        assert!(text.contains("outbox_relay_replication_slot_lag_bytes 0"));
        assert!(text.contains("outbox_relay_replication_slot_healthy 0"));
    }
}
