//! The row's headers column as header pairs, each value kept exactly.
//!
//! serde_json (without its global `arbitrary_precision`, which would change
//! it for every crate in the tree) turns numbers into i64, u64 or f64: one
//! number outside f64's range fails the whole document, and a long decimal
//! is rounded. So each value is read from its own exact text (serde_json's
//! `RawValue`) and numbers are decided one by one:
//! - an integer in i64 or u64 stays that number;
//! - any other number stays a number if the f64 nearest to it is the same
//!   decimal (what a consumer printing the double reads back);
//! - otherwise (an integer past u64, `1e400`, more digits than a double
//!   holds) it becomes its exact JSON text as a string;
//! - an array or object holding such a number becomes its exact JSON text.
//!
//! The whole column: an object gives one header per key, in the order
//! Postgres rendered them (duplicate keys of a `json` column included);
//! null gives none; any other JSON value (array, string, number, boolean)
//! is kept whole as the one header `headers`; text that is not JSON at all
//! (a text column) is kept as a string under `headers`.

use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The header that holds a headers column that is not an object.
pub const WHOLE: &str = "headers";

/// The row's headers, as the module documents.
pub fn parse_headers(text: &str) -> Vec<(String, Value)> {
    let whole = |value| vec![(WHOLE.to_owned(), value)];
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        return whole(Value::String(text.to_owned()));
    };
    match raw.get().as_bytes().first() {
        Some(b'{') => match serde_json::from_str::<Pairs<'_>>(raw.get()) {
            Ok(Pairs(pairs)) => pairs
                .into_iter()
                .map(|(key, value)| (key, exact_or_text(value)))
                .collect(),
            Err(_) => whole(Value::String(raw.get().to_owned())),
        },
        Some(b'n') => Vec::new(),
        _ => whole(exact_or_text(raw)),
    }
}

/// `raw` as a value, or its exact text where a value would lose digits.
fn exact_or_text(raw: &RawValue) -> Value {
    exact(raw).unwrap_or_else(|| Value::String(raw.get().to_owned()))
}

/// `raw` as a value, if every number in it is held exactly.
fn exact(raw: &RawValue) -> Option<Value> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'{' => {
            let Pairs(pairs) = serde_json::from_str(text).ok()?;
            let mut map = serde_json::Map::new();
            for (key, value) in pairs {
                map.insert(key, exact(value)?);
            }
            Some(Value::Object(map))
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            items
                .into_iter()
                .map(exact)
                .collect::<Option<_>>()
                .map(Value::Array)
        }
        b'-' | b'0'..=b'9' => number(text),
        _ => serde_json::from_str(text).ok(),
    }
}

/// A JSON number token as a number, if i64, u64 or f64 holds it exactly.
fn number(text: &str) -> Option<Value> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Some(Value::from(u));
    }
    let integer = !text.contains(['.', 'e', 'E']);
    let f = text.parse::<f64>().ok()?;
    let same = decimal(text).is_some() && decimal(text) == decimal(&format!("{f:e}"));
    (!integer && f.is_finite() && same).then(|| Value::from(f))
}

/// A decimal number's value as (negative, significant digits, exponent of
/// the last digit), so `0.50`, `5e-1` and `5.0e-1` compare equal. Zero is
/// `(false, "", 0)` whatever its sign.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    let frac_len = i64::try_from(frac.len()).ok()?;
    let zeros = i64::try_from(significant.len() - trimmed.len()).ok()?;
    let exponent = exponent.checked_sub(frac_len)?.checked_add(zeros)?;
    Some((negative, trimmed.to_owned(), exponent))
}

/// An object's members in document order, each value's text untouched.
struct Pairs<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> Visitor<'de> for PairsVisitor<'a> {
            type Value = Pairs<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, &'de RawValue>()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn header<'a>(pairs: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
        pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    #[test]
    fn a_number_past_f64_keeps_the_other_headers() {
        let huge = format!("1{}", "0".repeat(400));
        let pairs = parse_headers(&format!("{{\"huge\": {huge}, \"tenant\": \"acme\"}}"));
        assert_eq!(header(&pairs, "tenant"), Some(&json!("acme")));
        assert_eq!(header(&pairs, "huge"), Some(&Value::String(huge)));
        let pairs = parse_headers("{\"e\": 1e400}");
        assert_eq!(header(&pairs, "e"), Some(&json!("1e400")));
    }

    #[test]
    fn numbers_keep_every_digit() {
        let pairs = parse_headers(
            "{\"i\": -42, \"u\": 12345678901234567890, \"past_u64\": 123456789012345678901, \
              \"pi\": 1234.5678, \"tenth\": 0.1, \"long\": 0.1000000000000000000001, \
              \"exp\": 1.5e3, \"two64\": 18446744073709551616, \"zero\": -0.0}",
        );
        assert_eq!(header(&pairs, "i"), Some(&json!(-42)));
        assert_eq!(
            header(&pairs, "u"),
            Some(&json!(12_345_678_901_234_567_890_u64))
        );
        assert_eq!(
            header(&pairs, "past_u64"),
            Some(&json!("123456789012345678901"))
        );
        assert_eq!(header(&pairs, "pi"), Some(&json!(1234.5678)));
        assert_eq!(header(&pairs, "tenth"), Some(&json!(0.1)));
        assert_eq!(
            header(&pairs, "long"),
            Some(&json!("0.1000000000000000000001"))
        );
        assert_eq!(header(&pairs, "exp"), Some(&json!(1500.0)));
        assert_eq!(
            header(&pairs, "two64"),
            Some(&json!("18446744073709551616"))
        );
        assert_eq!(header(&pairs, "zero"), Some(&json!(-0.0)));
    }

    #[test]
    fn containers_with_an_inexact_number_are_their_text() {
        let pairs = parse_headers("{\"ok\": [1, {\"a\": 2.5}], \"list\": [1, 1e400]}");
        assert_eq!(header(&pairs, "ok"), Some(&json!([1, {"a": 2.5}])));
        assert_eq!(header(&pairs, "list"), Some(&json!("[1, 1e400]")));
    }

    #[test]
    fn the_column_as_a_whole() {
        assert_eq!(parse_headers("null"), Vec::new());
        assert_eq!(parse_headers("{}"), Vec::new());
        assert_eq!(parse_headers("[1]"), vec![(WHOLE.to_owned(), json!([1]))]);
        assert_eq!(parse_headers("\"x\""), vec![(WHOLE.to_owned(), json!("x"))]);
        assert_eq!(
            parse_headers("1e400"),
            vec![(WHOLE.to_owned(), json!("1e400"))]
        );
        assert_eq!(
            parse_headers("not json"),
            vec![(WHOLE.to_owned(), json!("not json"))]
        );
        let keys: Vec<String> = parse_headers(" {\"b\": 1, \"a\": 2, \"b\": 3} ")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["b", "a", "b"], "document order, duplicates kept");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any JSON (and any text) gives headers, never a panic; a JSON
        /// object gives one header per member, and numbers never change.
        #[test]
        fn any_headers_parse(value in crate::event::arbitrary::json(), noise in ".{0,40}") {
            let text = value.to_string();
            let pairs = parse_headers(&text);
            match &value {
                Value::Object(map) => prop_assert_eq!(pairs.len(), map.len()),
                Value::Null => prop_assert!(pairs.is_empty()),
                _ => prop_assert_eq!(pairs.len(), 1),
            }
            for (key, parsed) in &pairs {
                let original = match &value {
                    Value::Object(map) => &map[key],
                    other => other,
                };
                if let (Value::Number(a), Value::Number(b)) = (original, parsed) {
                    prop_assert_eq!(a, b);
                }
            }
            let _ = parse_headers(&noise);
        }
    }
}
