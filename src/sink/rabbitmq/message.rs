//! One event as one AMQP message, checked against AMQP 0-9-1 and RabbitMQ
//! in every place a value from the row goes, before lapin sees it: lapin
//! (amq-protocol) panics on a short string past 255 bytes, and RabbitMQ
//! closes the whole connection over a content header larger than a frame,
//! which a retry only repeats. Both builders here are total: a message, or
//! the [`EventError`] the pipeline dead-letters the event for.
//!
//! Where each value goes and its limit (see `docs/limits.md`):
//! exchange and routing key (rendered templates), `message_id` (event id),
//! `type` (event type), `content_type`, `app_id` and every header key are
//! short strings (at most 255 bytes); header values are long strings
//! (u32 length), long-long ints, doubles, booleans or void; the payload is
//! at most `sink.rabbitmq.max_message_bytes`; the properties with all
//! headers travel in one content-header frame, which cannot be split and
//! must fit in the negotiated `frame_max`.

use std::time::SystemTime;

use lapin::BasicProperties;
use lapin::protocol::basic::gen_properties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::event::OutboxEvent;
use crate::sink::EventError;
use crate::sink::template::Template;
use crate::sink::trace::is_trace_header;

/// AMQP 0-9-1 short strings hold at most 255 bytes.
pub const MAX_SHORT_STRING: usize = 255;

/// Bytes of every frame besides its payload: type (1), channel (2), size
/// (4) and the end octet (1). RabbitMQ refuses a frame whose payload is
/// larger than `frame_max` less these.
pub const FRAME_OVERHEAD: usize = 8;

/// Bytes of the content-header payload before the properties: class id
/// (2), weight (2) and body size (8).
const CONTENT_HEADER_FIXED: usize = 12;

/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// The `app_id` property of every message.
const APP_ID: &str = "outbox-relay";

/// Where a message goes, both names checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub exchange: ShortString,
    pub routing_key: ShortString,
}

impl Route {
    /// Renders both templates from `event`.
    pub fn render(
        event: &OutboxEvent,
        exchange: &Template,
        routing_key: &Template,
    ) -> Result<Route, EventError> {
        let render = |template: &Template, field: &str| {
            let name = template
                .render(event)
                .map_err(|e| EventError::template(field, e))?;
            short_string(field, name)
        };
        Ok(Route {
            exchange: render(exchange, "exchange")?,
            routing_key: render(routing_key, "routing key")?,
        })
    }
}

/// What one message may weigh: the configured payload maximum and the
/// connection's negotiated frame size.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `sink.rabbitmq.max_message_bytes`.
    pub max_message_bytes: usize,
    /// The `frame_max` negotiated with the broker (lapin's connection
    /// configuration); RabbitMQ's default is 131072.
    pub frame_max: u32,
}

/// A message ready for `basic_publish`; its body is the event's payload.
#[derive(Debug, Clone)]
pub struct AmqpMessage {
    pub route: Route,
    pub properties: BasicProperties,
}

/// Checks that `event`'s payload is within `limits` (before rendering
/// anything, so an oversized event says so first).
pub fn check_payload(event: &OutboxEvent, limits: &Limits) -> Result<(), EventError> {
    if event.payload.len() > limits.max_message_bytes {
        return Err(EventError::oversized(
            "payload",
            event.payload.len(),
            limits.max_message_bytes,
            "sink.rabbitmq.max_message_bytes",
        ));
    }
    Ok(())
}

/// The message for `event` on `route`. `trace` (the publish span's context)
/// replaces the row's `traceparent`/`tracestate` headers.
pub fn build(
    event: &OutboxEvent,
    route: Route,
    trace: Option<&[(String, String)]>,
    limits: &Limits,
) -> Result<AmqpMessage, EventError> {
    check_payload(event, limits)?;
    let properties = properties(event, trace, limits)?;
    Ok(AmqpMessage { route, properties })
}

/// Message properties: ids, type, time, content type, persistence, headers.
fn properties(
    event: &OutboxEvent,
    trace: Option<&[(String, String)]>,
    limits: &Limits,
) -> Result<BasicProperties, EventError> {
    let frame_payload = (limits.frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    let row_headers = event
        .headers
        .iter()
        .filter(|(key, _)| trace.is_none() || !is_trace_header(key));
    // A lower bound of the encoded headers: a value far past one frame is
    // refused before anything is copied or encoded.
    let least: usize = row_headers
        .clone()
        .map(|(key, value)| key.len() + least_encoded(value))
        .chain(event.standard_headers().map(|(_, value)| value.len()))
        .sum();
    if least > frame_payload {
        return Err(content_header_too_large(least, limits));
    }

    let mut headers = FieldTable::default();
    for (key, value) in row_headers {
        let field = || format!("header key `{}`", abbreviated(key));
        headers.insert(
            short_string(field(), key.as_str())?,
            amqp_value(key, value)?,
        );
    }
    for (key, value) in event.standard_headers() {
        headers.insert(ShortString::from(key), long_string(key, value.as_bytes())?);
    }
    for (key, value) in trace.unwrap_or_default() {
        let field = || format!("trace header key `{}`", abbreviated(key));
        headers.insert(
            short_string(field(), key.as_str())?,
            long_string(key, value.as_bytes())?,
        );
    }
    let mut props = BasicProperties::default()
        .with_message_id(short_string("property message_id (event id)", &*event.id)?)
        .with_type(short_string(
            "property type (event_type)",
            &*event.event_type,
        )?)
        .with_content_type(short_string(
            "property content_type",
            event.payload_kind.content_type(),
        )?)
        .with_delivery_mode(PERSISTENT)
        .with_app_id(short_string("property app_id", APP_ID)?)
        .with_headers(headers);
    // AMQP timestamps are unsigned seconds: a time before 1970 is left out.
    if let Some(secs) = event
        .created_at
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
    {
        props = props.with_timestamp(secs.as_secs());
    }
    let size = CONTENT_HEADER_FIXED + encoded_len(&props)?;
    if size > frame_payload {
        return Err(content_header_too_large(size, limits));
    }
    Ok(props)
}

/// The encoded size of `props`, measured with amq-protocol's own encoder
/// (the one lapin sends with).
fn encoded_len(props: &BasicProperties) -> Result<usize, EventError> {
    let encode = gen_properties::<Vec<u8>>(props);
    encode(Vec::new().into())
        .map(|written| written.write.len())
        .map_err(|e| EventError::invalid("properties", format!("cannot be encoded: {e}")))
}

fn content_header_too_large(size: usize, limits: &Limits) -> EventError {
    let frame_payload = (limits.frame_max as usize).saturating_sub(FRAME_OVERHEAD);
    EventError::oversized(
        "content header (properties and headers)",
        size,
        frame_payload,
        &format!(
            "one AMQP frame: the negotiated frame_max ({}) less {FRAME_OVERHEAD} bytes of frame overhead",
            limits.frame_max
        ),
    )
}

/// `text` as a short string, or why it cannot be one.
fn short_string(
    field: impl Into<String>,
    text: impl Into<String>,
) -> Result<ShortString, EventError> {
    let text = text.into();
    let len = text.len();
    ShortString::try_new(text)
        .map_err(|_| EventError::too_long(field, len, MAX_SHORT_STRING, "an AMQP short string"))
}

/// `bytes` as a long string (u32 length), or why it cannot be one.
fn long_string(key: &str, bytes: &[u8]) -> Result<AMQPValue, EventError> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(EventError::too_long(
            format!("header `{}` value", abbreviated(key)),
            bytes.len(),
            u32::MAX as usize,
            "an AMQP long string",
        ));
    }
    Ok(AMQPValue::LongString(LongString::from(bytes)))
}

/// A JSON header value as an AMQP field value (the rules of
/// `docs/limits.md`): null is void, booleans are booleans, integers in i64
/// are long-long ints, other integers travel as their exact digits (AMQP
/// has no unsigned 64-bit type RabbitMQ accepts), other numbers as
/// doubles, strings as long strings, arrays and objects as their JSON text.
/// Numbers that a double cannot hold never get here as numbers:
/// [`crate::outbox::parse_headers`] keeps them as their exact text.
fn amqp_value(key: &str, value: &serde_json::Value) -> Result<AMQPValue, EventError> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.is_f64(), n.as_f64()) {
            (Some(i), _, _) => AMQPValue::LongLongInt(i),
            (None, true, Some(f)) => AMQPValue::Double(f),
            _ => long_string(key, n.to_string().as_bytes())?,
        },
        Value::String(s) => long_string(key, s.as_bytes())?,
        Value::Array(_) | Value::Object(_) => long_string(key, value.to_string().as_bytes())?,
    })
}

/// At most the encoded size of `value` as a header value, cheaply: a
/// string's length; anything else counts as one byte.
fn least_encoded(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => s.len(),
        _ => 1,
    }
}

/// The first 32 characters of `text`, for naming a key too long to print.
fn abbreviated(text: &str) -> String {
    match text.char_indices().nth(32) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use lapin::protocol::basic::parse_properties;
    use proptest::prelude::*;

    use super::*;
    use crate::event::PayloadKind;

    fn event() -> OutboxEvent {
        OutboxEvent {
            id: "7".into(),
            aggregate_type: "order".into(),
            aggregate_id: "o-1".into(),
            event_type: "created".into(),
            payload: b"{}".to_vec(),
            payload_kind: PayloadKind::Json,
            headers: vec![("tenant".into(), "acme".into())],
            created_at: None,
        }
    }

    const LIMITS: Limits = Limits {
        max_message_bytes: 1 << 20,
        frame_max: 131_072,
    };

    fn route() -> Route {
        let t = |s| Template::parse(s).expect("valid");
        Route::render(&event(), &t("x"), &t("{aggregate_type}.{event_type}")).expect("route")
    }

    fn built(event: &OutboxEvent) -> Result<AmqpMessage, EventError> {
        build(event, route(), None, &LIMITS)
    }

    #[test]
    fn a_plain_event_builds() {
        let message = built(&event()).expect("message");
        assert_eq!(message.route.routing_key.as_str(), "order.created");
        let props = message.properties;
        assert_eq!(
            props.message_id().as_ref().map(ShortString::as_str),
            Some("7")
        );
        let headers = props.headers().as_ref().expect("headers");
        assert_eq!(
            headers.inner().get("tenant"),
            Some(&AMQPValue::LongString("acme".into()))
        );
    }

    #[test]
    fn short_strings_past_255_bytes_are_refused_with_field_and_limit() {
        let mut long_key = event();
        long_key.headers = vec![("k".repeat(300), "v".into())];
        let mut long_type = event();
        long_type.event_type = "t".repeat(300);
        let mut long_id = event();
        long_id.id = "i".repeat(256);
        for (event, field) in [
            (long_key, "header key `kkkk"),
            (long_type, "property type (event_type)"),
            (long_id, "property message_id (event id)"),
        ] {
            let error = built(&event).expect_err("too long");
            assert_eq!(error.reason, "too_long");
            assert!(error.field.starts_with(field), "{error}");
            assert!(error.problem.contains("255"), "{error}");
        }
        let mut exactly = event();
        exactly.event_type = "t".repeat(255);
        assert!(built(&exactly).is_ok());
    }

    #[test]
    fn a_rendered_name_past_255_bytes_is_refused() {
        let mut e = event();
        e.aggregate_type = "a".repeat(250);
        let t = |s| Template::parse(s).expect("valid");
        let error =
            Route::render(&e, &t("x"), &t("{aggregate_type}.{event_type}")).expect_err("too long");
        assert_eq!(
            (error.reason, error.field.as_str()),
            ("too_long", "routing key")
        );
        e.event_type.clear();
        let error = Route::render(&e, &t("x"), &t("{event_type}")).expect_err("empty");
        assert_eq!(error.reason, "template");
    }

    #[test]
    fn the_content_header_must_fit_one_frame() {
        let mut e = event();
        e.headers = vec![("big".into(), "v".repeat(200_000).into())];
        let error = built(&e).expect_err("too large");
        assert_eq!(error.reason, "oversized");
        assert!(error.problem.contains("frame_max (131072)"), "{error}");
        // Just under and just over the frame, measured exactly.
        let fixed = {
            let mut e = event();
            e.headers = vec![("big".into(), String::new().into())];
            CONTENT_HEADER_FIXED + encoded_len(&built(&e).expect("ok").properties).expect("len")
        };
        let room = 131_072 - FRAME_OVERHEAD - fixed;
        e.headers = vec![("big".into(), "v".repeat(room).into())];
        assert!(built(&e).is_ok());
        e.headers = vec![("big".into(), "v".repeat(room + 1).into())];
        assert_eq!(built(&e).expect_err("one byte over").reason, "oversized");
    }

    #[test]
    fn the_payload_is_checked_against_the_setting() {
        let mut e = event();
        e.payload = vec![b'x'; LIMITS.max_message_bytes + 1];
        let error = built(&e).expect_err("oversized");
        assert_eq!(
            (error.reason, error.field.as_str()),
            ("oversized", "payload")
        );
        assert!(error.problem.contains("sink.rabbitmq.max_message_bytes"));
    }

    #[test]
    fn header_values_map_to_field_types() {
        let value = |v: serde_json::Value| amqp_value("k", &v).expect("value");
        assert_eq!(value(serde_json::json!(null)), AMQPValue::Void);
        assert_eq!(value(serde_json::json!(-42)), AMQPValue::LongLongInt(-42));
        assert_eq!(
            value(serde_json::json!(12_345_678_901_234_567_890_u64)),
            AMQPValue::LongString("12345678901234567890".into())
        );
        assert_eq!(value(serde_json::json!(2.5)), AMQPValue::Double(2.5));
        assert_eq!(
            value(serde_json::json!({"a": [1]})),
            AMQPValue::LongString("{\"a\":[1]}".into())
        );
    }

    #[test]
    fn trace_headers_replace_the_rows() {
        let mut e = event();
        e.headers.push(("TraceParent".into(), "row".into()));
        let trace = vec![("traceparent".to_owned(), "span".to_owned())];
        let message = build(&e, route(), Some(&trace), &LIMITS).expect("message");
        let headers = message.properties.headers().clone().expect("headers");
        assert!(headers.inner().get("TraceParent").is_none());
        assert_eq!(
            headers.inner().get("traceparent"),
            Some(&AMQPValue::LongString("span".into()))
        );
    }

    fn limits() -> impl Strategy<Value = Limits> {
        let max = prop_oneof![Just(1), Just(1000), Just(1 << 20), Just(usize::MAX)];
        let frame = prop_oneof![Just(4096_u32), Just(131_072), Just(u32::MAX)];
        (max, frame).prop_map(|(max_message_bytes, frame_max)| Limits {
            max_message_bytes,
            frame_max,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Any event gives a message whose properties amq-protocol encodes
        /// and parses back unchanged, within one frame; or an event error.
        /// Never a panic.
        #[test]
        fn any_event_is_a_message_or_an_event_error(
            event in crate::event::arbitrary::event(),
            limits in limits(),
            templated in any::<bool>(),
            traceparent in prop::option::of(crate::event::arbitrary::text()),
        ) {
            let (exchange, routing_key) = if templated {
                ("{aggregate_type}", "{aggregate_type}.{event_type}")
            } else {
                ("x", "")
            };
            let t = |s| Template::parse(s).expect("valid");
            let trace = traceparent.map(|v| vec![("traceparent".to_owned(), v)]);
            let built = Route::render(&event, &t(exchange), &t(routing_key))
                .and_then(|route| build(&event, route, trace.as_deref(), &limits));
            match built {
                Err(error) => prop_assert!(EventError::REASONS.contains(&error.reason)),
                Ok(message) => {
                    prop_assert!(event.payload.len() <= limits.max_message_bytes);
                    let encode = gen_properties::<Vec<u8>>(&message.properties);
                    let bytes = encode(Vec::new().into()).expect("encodes").write;
                    prop_assert!(
                        CONTENT_HEADER_FIXED + bytes.len()
                            <= (limits.frame_max as usize).saturating_sub(FRAME_OVERHEAD)
                    );
                    let (rest, parsed) = parse_properties(&bytes[..]).expect("parses back");
                    prop_assert!(rest.is_empty());
                    prop_assert_eq!(&parsed, &message.properties);
                    let id = parsed.message_id().as_ref().map(|s| s.as_str().to_owned());
                    prop_assert_eq!(id, Some(event.id.clone()));
                }
            }
        }
    }
}
