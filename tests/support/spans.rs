//! The relay's spans caught in process: the pipeline runs in the test
//! process with the relay's own span layer and tracer provider (as
//! `tracing.enabled` sets them up), exporting into memory instead of OTLP;
//! and the checks that the spans and the messages' trace headers agree.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use outbox_relay::config::{Config, SecretUrl, TracingConfig};
use outbox_relay::leader::Lease;
use outbox_relay::pipeline::Pipeline;
use outbox_relay::shutdown;
use outbox_relay::sink::Sink;
use outbox_relay::source::{PollingSource, Source};
use outbox_relay::telemetry;

use super::db::TestDb;

/// The writer's span that row 1 names in its `traceparent`.
pub const ROW_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const ROW_SPAN_ID: &str = "00f067aa0ba902b7";
pub const ROW_TRACESTATE: &str = "vendor=opaque";

/// The in-memory exporter behind the global subscriber.
pub struct Spans {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

impl Spans {
    /// Installs the global subscriber (once per test binary).
    pub fn install() -> &'static Spans {
        static SPANS: OnceLock<Spans> = OnceLock::new();
        SPANS.get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let config = TracingConfig {
                enabled: true,
                ..TracingConfig::default()
            };
            let provider = telemetry::tracer_provider(&config, exporter.clone());
            let subscriber = tracing_subscriber::registry().with(telemetry::span_layer(&provider));
            tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
            Spans { exporter, provider }
        })
    }

    /// Every span ended so far (the batch exporter is flushed first).
    pub fn finished(&self) -> Vec<SpanData> {
        self.provider.force_flush().expect("flush spans");
        self.exporter.get_finished_spans().expect("finished spans")
    }
}

/// A relay config for `db` and the run's RabbitMQ, with tracing on.
pub fn config(db: &TestDb) -> Config {
    let mut config = Config::default();
    config.postgres.url = SecretUrl::new(db.url.clone());
    config.sink.rabbitmq.url = SecretUrl::new(super::rabbit::url());
    config.tracing.enabled = true;
    config
}

/// Migrates, then writes three rows: 1 carries the writer's `traceparent`
/// and `tracestate` (besides an ordinary header), 2 has no headers, 3 a
/// malformed `traceparent`.
pub async fn insert_rows(config: &Config, db: &TestDb) {
    outbox_relay::migrate::run(config, None)
        .await
        .expect("migrate");
    db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) VALUES \
         ('order', '1', 'paid', '{{}}', '{{\"tenant\": \"acme\", \
           \"traceparent\": \"00-{ROW_TRACE_ID}-{ROW_SPAN_ID}-01\", \
           \"tracestate\": \"{ROW_TRACESTATE}\"}}'), \
         ('order', '2', 'paid', '{{}}', NULL), \
         ('order', '3', 'paid', '{{}}', '{{\"traceparent\": \"garbage\"}}')"
    ));
}

/// Relays every unsent row to `sink` in process, then returns.
pub async fn relay_all<K: Sink>(config: &Config, mut sink: K) {
    let mut source = PollingSource::new(config);
    source.connect().await.expect("source connects");
    sink.connect().await.expect("sink connects");
    let (_trigger, shutdown) = shutdown::channel();
    let lease = Lease::unconditional();
    let mut pipeline = Pipeline::new(source, sink, config, shutdown, lease.leadership());
    pipeline.drain_only = true;
    pipeline.run().await.expect("pipeline");
}

/// Checks the spans of one relayed batch of [`insert_rows`] against the
/// trace headers each message arrived with (`messages`: event id ->
/// headers), for the given `messaging.system`.
pub fn check(
    spans: &[SpanData],
    system: &str,
    messages: &HashMap<String, HashMap<String, String>>,
) {
    let publish: HashMap<String, &SpanData> = spans
        .iter()
        .filter(|s| attribute(s, "messaging.system").as_deref() == Some(system))
        .filter_map(|s| Some((attribute(s, "messaging.message.id")?, s)))
        .collect();
    assert_eq!(publish.len(), 3, "a publish span per event: {spans:#?}");
    let batch = spans
        .iter()
        .find(|s| s.name == "relay batch")
        .expect("a batch span");
    assert_eq!(
        attribute(batch, "messaging.batch.message_count").as_deref(),
        Some("3")
    );
    assert_eq!(attribute(batch, "outbox.outcome").as_deref(), Some("done"));

    for (id, span) in &publish {
        assert_eq!(span.span_kind, SpanKind::Producer, "event {id}");
        assert_eq!(
            attribute(span, "messaging.operation.type").as_deref(),
            Some("send")
        );
        assert!(attribute(span, "messaging.destination.name").is_some());
        let headers = &messages[id];
        let context = &span.span_context;
        assert_eq!(
            headers.get("traceparent"),
            Some(&format!(
                "00-{}-{}-01",
                context.trace_id(),
                context.span_id()
            )),
            "event {id}'s message carries its publish span's context"
        );
    }

    let continued = publish["1"];
    assert_eq!(
        continued.span_context.trace_id(),
        TraceId::from_hex(ROW_TRACE_ID).expect("trace id"),
        "the row's trace goes on"
    );
    assert_eq!(
        continued.parent_span_id,
        SpanId::from_hex(ROW_SPAN_ID).expect("span id"),
        "the writer's span is the parent"
    );
    assert!(continued.parent_span_is_remote);
    assert!(
        continued
            .links
            .iter()
            .any(|l| l.span_context == batch.span_context),
        "linked to its batch"
    );
    assert_eq!(
        messages["1"].get("tracestate").map(String::as_str),
        Some(ROW_TRACESTATE)
    );
    assert_eq!(
        messages["1"].get("tenant").map(String::as_str),
        Some("acme")
    );

    for id in ["2", "3"] {
        let span = publish[id];
        assert_eq!(
            span.parent_span_id,
            batch.span_context.span_id(),
            "event {id} without a usable traceparent is a child of its batch"
        );
        assert_eq!(span.span_context.trace_id(), batch.span_context.trace_id());
        assert!(!messages[id].contains_key("tracestate"));
    }
}

/// A span attribute as text.
pub fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}
