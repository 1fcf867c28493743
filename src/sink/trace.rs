//! The publish span of one event, and the W3C trace context its message
//! carries, so a consumer's span joins the same trace.
//!
//! A row whose headers hold a valid `traceparent` (and maybe `tracestate`)
//! is the continuation of its writer's trace: the publish span's parent is
//! that remote span, and the span links to the relay's batch span. Any other
//! row's publish span is a child of the batch span. Either way the message
//! gets the publish span's own context as `traceparent`/`tracestate`, in
//! place of the row's.
//!
//! With tracing off the span is disabled at its callsite and nothing else
//! happens: no parsing, no header, and the row's headers go out unchanged.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::event::OutboxEvent;
use crate::telemetry::SPAN_TARGET;

/// Where the message goes, for the span's name and messaging attributes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    RabbitMq {
        exchange: &'a str,
        routing_key: &'a str,
    },
    Kafka {
        topic: &'a str,
        key: &'a str,
    },
}

/// The open span of one event's publish, from sending until the broker's
/// confirmation; it ends when dropped.
pub struct PublishSpan {
    span: Span,
    headers: Vec<(String, String)>,
}

impl PublishSpan {
    /// Starts the publish span of `event`; `None` when tracing is off.
    /// Called inside the batch span.
    pub fn start(event: &OutboxEvent, destination: Destination<'_>) -> Option<Self> {
        let span = match destination {
            Destination::RabbitMq {
                exchange,
                routing_key,
            } => tracing::info_span!(
                target: SPAN_TARGET,
                "publish",
                otel.name = %format_args!("publish {exchange}"),
                otel.kind = "producer",
                messaging.system = "rabbitmq",
                "messaging.operation.type" = "send",
                messaging.operation.name = "publish",
                messaging.destination.name = exchange,
                messaging.rabbitmq.destination.routing_key = routing_key,
                messaging.message.id = %event.id,
            ),
            Destination::Kafka { topic, key } => tracing::info_span!(
                target: SPAN_TARGET,
                "publish",
                otel.name = %format_args!("send {topic}"),
                otel.kind = "producer",
                messaging.system = "kafka",
                "messaging.operation.type" = "send",
                messaging.operation.name = "send",
                messaging.destination.name = topic,
                messaging.kafka.message.key = key,
                messaging.message.id = %event.id,
            ),
        };
        if span.is_disabled() {
            return None;
        }
        let remote = remote_context(&event.headers);
        if remote.span().span_context().is_valid() {
            let batch = Span::current().context().span().span_context().clone();
            // Fails only without the OpenTelemetry layer; the span is then
            // a plain child of the batch span.
            let _ = span.set_parent(remote);
            if batch.is_valid() {
                span.add_link(batch);
            }
        }
        let mut headers = Vec::with_capacity(2);
        TraceContextPropagator::new()
            .inject_context(&span.context(), &mut HeaderList(&mut headers));
        Some(PublishSpan { span, headers })
    }

    /// `traceparent` and `tracestate` (when not empty) of the publish span,
    /// to put on the message instead of the row's.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// Marks the publish failed, with the reason.
    pub fn fail(&self, error: &impl std::fmt::Display) {
        self.span.set_status(Status::error(error.to_string()));
    }
}

/// Whether `key` is one of the W3C trace context headers, which the publish
/// span's own replace (header names are case-insensitive).
pub fn is_trace_header(key: &str) -> bool {
    key.eq_ignore_ascii_case("traceparent") || key.eq_ignore_ascii_case("tracestate")
}

/// The row's trace context: its `traceparent`/`tracestate` headers as the
/// W3C propagator reads them; an empty context when absent or malformed.
pub fn remote_context(headers: &[(String, serde_json::Value)]) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &RowHeaders(headers))
}

/// A row's headers object as the propagator's carrier; string values only.
struct RowHeaders<'a>(&'a [(String, serde_json::Value)]);

impl Extractor for RowHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The headers the propagator writes, in order; an empty `tracestate` is
/// left out, as W3C allows.
struct HeaderList<'a>(&'a mut Vec<(String, String)>);

impl Injector for HeaderList<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, serde_json::Value)]) -> Vec<(String, serde_json::Value)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_valid_traceparent_is_the_remote_parent() {
        let cx = remote_context(&headers(&[
            ("tenant", "acme".into()),
            (
                "Traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            ),
            ("tracestate", "vendor=x".into()),
        ]));
        let span = cx.span();
        let parent = span.span_context();
        assert!(parent.is_valid() && parent.is_remote() && parent.is_sampled());
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
        assert_eq!(parent.trace_state().header(), "vendor=x");
    }

    #[test]
    fn absent_malformed_or_non_string_traceparents_are_no_parent() {
        for row in [
            headers(&[]),
            headers(&[("traceparent", "not a traceparent".into())]),
            headers(&[(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
            )]),
            headers(&[("traceparent", 42.into())]),
        ] {
            assert!(!remote_context(&row).span().span_context().is_valid());
        }
    }

    #[test]
    fn trace_headers_are_recognised_in_any_case() {
        assert!(is_trace_header("traceparent"));
        assert!(is_trace_header("TraceState"));
        assert!(!is_trace_header("trace"));
        assert!(!is_trace_header("baggage"));
    }
}
