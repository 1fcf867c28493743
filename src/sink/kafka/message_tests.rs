use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, Producer, PurgeConfig};

use super::*;
use crate::event::PayloadKind;

fn config(max_message_bytes: Option<usize>) -> KafkaConfig {
    let mut config = KafkaConfig {
        topic: "outbox.{aggregate_type}".into(),
        ..KafkaConfig::default()
    };
    if let Some(max) = max_message_bytes {
        config
            .librdkafka
            .insert(MAX_MESSAGE_BYTES_PROPERTY.into(), max.to_string());
    }
    config
}

fn builder(config: &KafkaConfig) -> MessageBuilder {
    let topic = Template::parse(&config.topic).expect("topic template");
    MessageBuilder::new(config, topic, "topic").expect("builder")
}

fn event(headers: &[(&str, serde_json::Value)]) -> OutboxEvent {
    OutboxEvent {
        id: "7".into(),
        aggregate_type: "order".into(),
        aggregate_id: "42".into(),
        event_type: "paid".into(),
        payload: b"{}".to_vec(),
        payload_kind: PayloadKind::Json,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        created_at: None,
    }
}

fn build(event: &OutboxEvent) -> Result<KafkaMessage<'_>, EventError> {
    builder(&config(None)).build(event)
}

fn pairs(message: &KafkaMessage<'_>) -> Vec<(String, String)> {
    message
        .headers()
        .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

const ROW_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SPAN_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-b7ad6b7169203331-01";

#[test]
fn the_publish_span_context_replaces_the_rows() {
    let row = event(&[
        ("tenant", "acme".into()),
        ("Traceparent", ROW_PARENT.into()),
        ("tracestate", "vendor=x".into()),
    ]);
    let trace = [
        ("traceparent".to_owned(), SPAN_PARENT.to_owned()),
        ("tracestate".to_owned(), "vendor=x".to_owned()),
    ];
    let got = pairs(
        &build(&row)
            .expect("built")
            .with_trace(&trace)
            .expect("traced"),
    );
    let trace_headers: Vec<_> = got
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("traceparent") || k == "tracestate")
        .collect();
    assert_eq!(
        trace_headers,
        [
            &("traceparent".to_owned(), SPAN_PARENT.to_owned()),
            &("tracestate".to_owned(), "vendor=x".to_owned())
        ]
    );
    assert!(got.contains(&("tenant".to_owned(), "acme".to_owned())));
    assert!(got.contains(&("event_id".to_owned(), "7".to_owned())));
}

#[test]
fn without_tracing_the_rows_headers_go_out_unchanged() {
    let row = event(&[
        ("traceparent", ROW_PARENT.into()),
        ("tracestate", "vendor=x".into()),
    ]);
    let got = pairs(&build(&row).expect("built"));
    assert!(got.contains(&("traceparent".to_owned(), ROW_PARENT.to_owned())));
    assert!(got.contains(&("tracestate".to_owned(), "vendor=x".to_owned())));
    assert_eq!(got.len(), 6);
}

#[test]
fn standard_headers_win_and_json_values_go_as_json_text() {
    let row = event(&[
        ("event_id", "forged".into()),
        ("n", serde_json::json!(12.5)),
        ("o", serde_json::json!({"a": [1, null]})),
        ("nul", "a\0b".into()),
    ]);
    let got = pairs(&build(&row).expect("built"));
    assert_eq!(
        got,
        [
            ("event_id", "7"),
            ("aggregate_type", "order"),
            ("aggregate_id", "42"),
            ("event_type", "paid"),
            ("n", "12.5"),
            ("o", r#"{"a":[1,null]}"#),
            ("nul", "a\0b"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn topic_names_follow_kafkas_rule() {
    let long = "a".repeat(MAX_TOPIC_LEN - "outbox.".len());
    let cases = [
        (long.clone(), None),
        (format!("{long}b"), Some(TOO_LONG_REASON)),
        ("or der".into(), Some(INVALID_REASON)),
        ("ord\0er".into(), Some(INVALID_REASON)),
        ("ordér".into(), Some(INVALID_REASON)),
        ("a/b".into(), Some(INVALID_REASON)),
        ("Order_v1-x.y".into(), None),
    ];
    for (aggregate_type, want) in cases {
        let mut row = event(&[]);
        row.aggregate_type = aggregate_type.clone();
        let got = build(&row).err();
        assert_eq!(got.as_ref().map(|e| e.reason), want, "{aggregate_type:?}");
        if let Some(e) = got {
            assert_eq!(e.field, "topic");
            assert!(e.to_string().len() < 300, "{e}");
        }
    }
    let exact = MessageBuilder::new(
        &config(None),
        Template::parse("{aggregate_type}").expect("template"),
        "topic",
    )
    .expect("builder");
    for name in [".", ".."] {
        let mut row = event(&[]);
        row.aggregate_type = name.into();
        let e = exact.build(&row).expect_err(name);
        assert_eq!(e.reason, INVALID_REASON);
    }
    let mut row = event(&[]);
    row.aggregate_type.clear();
    assert_eq!(build(&row).expect_err("empty").reason, "template");
}

const TOO_LONG_REASON: &str = crate::sink::event_error::TOO_LONG;
const INVALID_REASON: &str = crate::sink::event_error::INVALID;

#[test]
fn a_nul_byte_in_a_header_key_is_refused() {
    let e = build(&event(&[("ten\0ant", "acme".into())])).expect_err("nul");
    assert_eq!(e.reason, INVALID_REASON);
    assert!(e.field.starts_with("header key"), "{e}");
    assert!(e.to_string().contains("NUL"), "{e}");
}

#[test]
fn timestamps_before_1970_are_left_out_and_far_ones_kept() {
    let at = |t| {
        let mut row = event(&[]);
        row.created_at = t;
        row
    };
    let before = at(SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(1)));
    assert_eq!(build(&before).expect("before 1970").timestamp, None);
    // 9999-12-31T23:59:59Z, and Postgres's last day (294276 AD).
    for secs in [253_402_300_799_u64, 9_224_318_015_999] {
        let row = at(SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)));
        let message = build(&row).expect("far future");
        assert_eq!(message.timestamp, Some(secs as i64 * 1000));
    }
    assert_eq!(build(&at(None)).expect("none").timestamp, None);
}

#[test]
fn the_record_limit_is_the_passthrough_property_or_librdkafkas_default() {
    assert_eq!(
        max_message_bytes(&config(None)),
        Ok(DEFAULT_MAX_MESSAGE_BYTES)
    );
    assert_eq!(max_message_bytes(&config(Some(5000))), Ok(5000));
    for bad in ["999", "abc", "1000000001", "-1"] {
        let mut c = config(None);
        c.librdkafka
            .insert(MAX_MESSAGE_BYTES_PROPERTY.into(), bad.into());
        assert!(max_message_bytes(&c).is_err(), "{bad}");
    }
}

#[test]
fn an_oversized_record_names_its_parts_and_the_limit() {
    let mut row = event(&[]);
    row.payload = vec![b'x'; 6000];
    let e = builder(&config(Some(5000)))
        .build(&row)
        .expect_err("oversized");
    assert_eq!(e.reason, crate::sink::event_error::OVERSIZED);
    assert!(e.field.contains("payload 6000 bytes"), "{e}");
    assert!(e.problem.contains("message.max.bytes (5000)"), "{e}");
}

/// Producers with no broker: librdkafka builds and queues records (and
/// checks their size) without one. One per record limit the tests use.
fn local_producer(max_message_bytes: usize) -> &'static FutureProducer {
    static PRODUCERS: OnceLock<Vec<(usize, FutureProducer)>> = OnceLock::new();
    let producers = PRODUCERS.get_or_init(|| {
        LIMITS
            .iter()
            .map(|&max| {
                let producer = ClientConfig::new()
                    .set(MAX_MESSAGE_BYTES_PROPERTY, max.to_string())
                    .set("message.timeout.ms", "600000")
                    .set("log_level", "0")
                    .create()
                    .expect("local producer");
                (max, producer)
            })
            .collect()
    });
    producers
        .iter()
        .find(|(max, _)| *max == max_message_bytes)
        .map(|(_, p)| p)
        .expect("a producer for this limit")
}

const LIMITS: [usize; 3] = [1000, 5000, DEFAULT_MAX_MESSAGE_BYTES];

/// Sends `message` to a local producer: whether librdkafka took it.
fn librdkafka_takes(message: &KafkaMessage<'_>, max: usize) -> Result<(), KafkaError> {
    let producer = local_producer(max);
    let sent = producer.send_result(message.record()).map(drop);
    producer.purge(PurgeConfig::default().queue().inflight());
    sent.map_err(|(e, _)| e)
}

#[test]
fn the_counted_size_is_librdkafkas() {
    for max in [1000, 5000] {
        for extra in [0, 1] {
            let mut row = event(&[("tenant", "acme".into())]);
            let base = build(&row).expect("small").size();
            row.payload = vec![b'x'; row.payload.len() + max - base + extra];
            let built = builder(&config(Some(max))).build(&row);
            match extra {
                0 => {
                    let message = built.expect("at the limit");
                    assert_eq!(message.size(), max);
                    librdkafka_takes(&message, max).expect("librdkafka takes it");
                }
                _ => {
                    built.expect_err("one byte over");
                    // librdkafka agrees: the same record, unchecked, is refused.
                    let unchecked = builder(&config(None)).build(&row).expect("default limit");
                    assert_eq!(
                        librdkafka_takes(&unchecked, max)
                            .expect_err("too large")
                            .rdkafka_error_code(),
                        Some(RDKafkaErrorCode::MessageSizeTooLarge)
                    );
                }
            }
        }
    }
}

/// Trace headers as the publish span writes them, or arbitrary ones.
fn trace() -> impl Strategy<Value = Option<Vec<(String, String)>>> {
    prop_oneof![
        Just(None),
        Just(Some(vec![(
            "traceparent".to_owned(),
            SPAN_PARENT.to_owned()
        )])),
        prop::collection::vec(
            (
                crate::event::arbitrary::text(),
                crate::event::arbitrary::text()
            ),
            0..3
        )
        .prop_map(Some),
    ]
}

proptest! {
    // 512 cases, about 8 s in a debug build; about a quarter become records
    // (librdkafka takes every one), the rest each kind of EventError.
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_row_is_a_record_librdkafka_takes_or_an_event_error(
        event in crate::event::arbitrary::event(),
        trace in trace(),
        limit in prop::sample::select(LIMITS.to_vec()),
        dead_letter in any::<bool>(),
        // Arbitrary text is rarely a legal topic name: a fixed topic lets
        // most rows reach the other checks.
        topic in prop_oneof![3 => Just("outbox.events"), 1 => Just("outbox.{aggregate_type}")],
        // Most of Postgres's time range is before 1970 and arbitrary keys
        // often hold a NUL: half the rows have neither, to reach the rest.
        tame in any::<bool>(),
    ) {
        let mut config = config(Some(limit));
        config.topic = topic.into();
        let mut event = event;
        if tame {
            event.created_at = event.created_at.filter(|t| *t >= SystemTime::UNIX_EPOCH);
            for (key, _) in &mut event.headers {
                key.retain(|c| c != '\0');
            }
        }
        let mut builder = builder(&config);
        if dead_letter {
            builder = builder.lenient_key();
        }
        let event = if dead_letter {
            crate::sink::dead_letter_copy(&event, "oversized", "record: too large")
        } else {
            event
        };
        let built = builder.build(&event).and_then(|m| match &trace {
            Some(trace) => m.with_trace(trace),
            None => Ok(m),
        });
        match built {
            Ok(message) => {
                prop_assert!(message.size() <= limit);
                prop_assert_eq!(message.owned_headers().count(), message.headers().count());
                if let Err(e) = librdkafka_takes(&message, limit) {
                    return Err(TestCaseError::fail(format!("librdkafka refused a built record: {e}")));
                }
            }
            Err(e) => {
                prop_assert!(EventError::REASONS.contains(&e.reason), "{}", e);
                prop_assert!(!e.field.is_empty());
            }
        }
    }
}
