//! Logs and traces. Logs are human-readable lines on a terminal, JSON when
//! configured; both on stderr so stdout stays free for the stdout sink.
//!
//! Traces (`tracing.enabled`) are the relay's own spans, of target
//! [`SPAN_TARGET`]: tracing-opentelemetry turns them into OpenTelemetry spans,
//! and a batch exporter sends them over OTLP/HTTP from a thread of its own.
//! The log layer never sees those spans, so the logs read the same either
//! way; with tracing off nothing sees them and they cost one cached check.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter};
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat, TracingConfig};

/// The target of every span meant for OpenTelemetry (the batch and publish
/// spans); only the trace layer takes it.
pub const SPAN_TARGET: &str = "outbox_relay::span";

/// How long exiting waits for the last spans to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What [`init`] set up and must be shut down on exit: the tracer provider,
/// whose batch exporter still holds spans not yet sent.
#[must_use = "dropping it loses the spans not yet exported; call shutdown()"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued and stops the exporter (bounded by a
    /// few seconds, so an unreachable collector cannot hold up the exit).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
        {
            tracing::warn!(error = %e, "flushing traces failed; the last spans may be lost");
        }
    }
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The endpoint (from `tracing.endpoint` or the `OTEL_EXPORTER_OTLP_*`
    /// variables) or another exporter setting is unusable.
    #[error("tracing: building the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Installs the global subscriber: logs, plus traces when `tracing.enabled`.
/// `RUST_LOG`, when set, overrides the log level (not which spans are
/// traced).
pub fn init(log: &LogConfig, tracing: &TracingConfig) -> Result<Telemetry, TelemetryError> {
    let provider = if tracing.enabled {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
        if let Some(endpoint) = tracing.traces_endpoint() {
            exporter = exporter.with_endpoint(endpoint);
        }
        Some(tracer_provider(tracing, exporter.build()?))
    } else {
        None
    };
    let logs = tracing_subscriber::registry().with(log_layer(log));
    // Not an `Option` layer: a `None` layer enables every callsite, and the
    // spans and debug events the log filter rejects would still be built.
    let result = match &provider {
        Some(provider) => logs.with(span_layer(provider)).try_init(),
        None => logs.try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
    if tracing.enabled {
        tracing::info!(
            endpoint = tracing
                .traces_endpoint()
                .as_deref()
                .unwrap_or("from OTEL_EXPORTER_OTLP_*"),
            sample_ratio = tracing.sample_ratio,
            "exporting traces over otlp/http"
        );
    }
    Ok(Telemetry { provider })
}

/// The tracer provider of `config` around `exporter`: batched export, the
/// service name, and parent-based sampling (a row's `traceparent` decides
/// for its trace; `sample_ratio` for new traces).
pub fn tracer_provider(
    config: &TracingConfig,
    exporter: impl SpanExporter + 'static,
) -> SdkTracerProvider {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let sampler = if config.sample_ratio >= 1.0 {
        Sampler::AlwaysOn
    } else {
        Sampler::TraceIdRatioBased(config.sample_ratio)
    };
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(sampler)))
        .with_resource(resource)
        .build()
}

/// The layer that turns the relay's spans into OpenTelemetry spans of
/// `provider`. It takes spans of [`SPAN_TARGET`] only, plus the relay's
/// warnings and errors as events of the span they happen in.
pub fn span_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("outbox-relay"))
        // Attributes the relay's spans have no use for, each a cost per span.
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(traced).with_max_level_hint(LevelFilter::INFO))
}

fn traced(meta: &Metadata<'_>) -> bool {
    if meta.is_span() {
        meta.target() == SPAN_TARGET
    } else {
        meta.target().starts_with("outbox_relay") && *meta.level() <= Level::WARN
    }
}

/// Log lines for the configured format and level, leaving out the spans
/// meant for OpenTelemetry.
fn log_layer(config: &LogConfig) -> impl Layer<Registry> + Send + Sync + 'static {
    // lapin logs every returned (unroutable) message at warn, payload
    // included; the relay reports those itself, once per batch.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},lapin=error", config.level)))
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=error"));
    // The hint keeps the level filter's: callsites above it stay off at the
    // first, static check.
    let not_traced =
        filter_fn(|meta| meta.target() != SPAN_TARGET).with_max_level_hint(LevelFilter::TRACE);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match config.format {
        LogFormat::Json => layer.json().with_current_span(false).boxed(),
        LogFormat::Text => layer
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
    };
    layer.with_filter(filter.and(not_traced))
}
