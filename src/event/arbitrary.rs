//! Arbitrary outbox events for property tests: any text in every text
//! column, any bytes in the payload, any JSON in the headers, any time
//! Postgres can store (and none), short and empty and longer than any
//! protocol limit.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::{OutboxEvent, PayloadKind};

/// Text of any characters (NUL, control, non-ASCII), from empty to past
/// every 255-byte limit.
pub fn text() -> impl Strategy<Value = String> {
    // Vectors of chars, not regexes: as arbitrary, and several times faster
    // to generate in a debug build.
    let chars = |range| prop::collection::vec(any::<char>(), range).prop_map(String::from_iter);
    prop_oneof![
        4 => chars(0..40),
        1 => Just(String::new()),
        1 => (200usize..700, any::<char>()).prop_map(|(n, c)| c.to_string().repeat(n)),
        1 => chars(240..270),
    ]
}

/// Any JSON value, nested a few levels, with numbers at and past the
/// limits of i64, u64 and f64.
pub fn json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Bytes of any value, mostly small, sometimes large.
pub fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..256),
        1 => Just(Vec::new()),
        1 => (0usize..300_000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

/// A payload as a column of `kind` holds it (JSON text, UTF-8 text), or
/// any bytes at all (a column that does not match its declared kind).
pub fn payload_of(kind: PayloadKind) -> impl Strategy<Value = Vec<u8>> {
    let typed = match kind {
        PayloadKind::Json => json().prop_map(|v| v.to_string().into_bytes()).boxed(),
        PayloadKind::Text => text().prop_map(String::into_bytes).boxed(),
        PayloadKind::Binary => payload().boxed(),
    };
    prop_oneof![3 => typed, 1 => payload()]
}

/// Any time from 4713 BC to 294276 AD (Postgres's range), or none.
pub fn created_at() -> impl Strategy<Value = Option<SystemTime>> {
    const MIN_MICROS: i64 = -210_866_803_200_000_000;
    const MAX_MICROS: i64 = 9_224_318_015_999_999;
    prop_oneof![
        1 => Just(None),
        4 => (MIN_MICROS..MAX_MICROS).prop_map(|micros| {
            let magnitude = Duration::from_micros(micros.unsigned_abs());
            if micros >= 0 {
                SystemTime::UNIX_EPOCH.checked_add(magnitude)
            } else {
                SystemTime::UNIX_EPOCH.checked_sub(magnitude)
            }
        }),
    ]
}

/// An outbox event with arbitrary values in every field.
pub fn event() -> impl Strategy<Value = OutboxEvent> {
    let kind = prop_oneof![
        Just(PayloadKind::Json),
        Just(PayloadKind::Text),
        Just(PayloadKind::Binary),
    ];
    (
        (text(), text(), text(), text()),
        kind.prop_flat_map(|kind| (payload_of(kind), Just(kind))),
        prop::collection::vec((text(), json()), 0..8),
        created_at(),
    )
        .prop_map(
            |(
                (id, aggregate_type, aggregate_id, event_type),
                (payload, payload_kind),
                headers,
                created_at,
            )| OutboxEvent {
                id,
                aggregate_type,
                aggregate_id,
                event_type,
                payload,
                payload_kind,
                headers,
                created_at,
            },
        )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn events_are_generated(event in super::event()) {
            prop_assert!(event.headers.len() < 8);
        }
    }
}
