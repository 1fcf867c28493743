//! The `--since` argument of `replay` and `dead-letters list`: a duration
//! (`2h`) meaning that long ago, or an ISO 8601 date or time (`2026-11-23`,
//! `2026-11-23 10:00`, `2026-11-23T10:00:00.5+02:00`). Checked here, before
//! the database is touched, so a typo is a usage error that says what is
//! accepted, not a failed query.

use std::time::SystemTime;

/// `text` as a timestamp Postgres casts with `::timestamptz`: a duration
/// becomes the RFC 3339 time that long before now; a date or time is passed
/// on as written (without an offset, Postgres reads it in the session's
/// time zone). Anything else is an error naming the accepted forms.
pub fn since_timestamp(text: &str) -> Result<String, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(match SystemTime::now().checked_sub(ago) {
            Some(then) => humantime::format_rfc3339_micros(then).to_string(),
            None => "-infinity".into(),
        });
    }
    if is_timestamp(text.trim()) {
        return Ok(text.trim().to_owned());
    }
    Err(format!(
        "--since `{text}` is neither a duration (`2h`, `3days`) nor an ISO 8601 date or time \
         (`2026-11-23`, `2026-11-23 10:00`, `2026-11-23T10:00:00Z`, `2026-11-23 10:00+02:00`)"
    ))
}

/// The forms Postgres reads and `--since` accepts: `YYYY-MM-DD`, then
/// optionally `[T ]HH:MM[:SS[.fraction]]` and an offset (`Z`, `+HH`,
/// `+HH:MM`, `-HHMM`).
const TIMESTAMP: &str = "[year]-[month]-[day]\
    [optional [[first [T][t][ ]][hour]:[minute][optional [:[second][optional [.[subsecond]]]]]\
    [optional [[first [Z][z][[offset_hour sign:mandatory][optional [[optional [:]][offset_minute]]]]]]]]]";

/// Whether all of `text` is one of [`TIMESTAMP`]'s forms with each field in
/// its range and a day its month has.
fn is_timestamp(text: &str) -> bool {
    let Ok(description) = time::format_description::parse_owned::<2>(TIMESTAMP) else {
        return false;
    };
    let mut parsed = time::parsing::Parsed::new();
    match parsed.parse_item(text.as_bytes(), &description) {
        // Postgres reads offsets up to 15 hours; time allows 25.
        Ok(rest) => {
            rest.is_empty()
                && time::Date::try_from(parsed).is_ok()
                && parsed.offset_hour().is_none_or(|hours| hours.abs() <= 15)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_description_is_valid() {
        time::format_description::parse_owned::<2>(TIMESTAMP).expect("valid");
    }

    #[test]
    fn a_duration_becomes_a_time_that_long_ago() {
        let text = since_timestamp("2h").expect("a duration");
        let then = humantime::parse_rfc3339(&text).expect("rfc3339");
        let ago = SystemTime::now().duration_since(then).expect("in the past");
        assert!(ago.as_secs() >= 7200 && ago.as_secs() < 7260, "{ago:?}");
    }

    #[test]
    fn a_timestamp_is_passed_on() {
        for text in [
            "2026-11-23",
            "2026-11-23 10:00",
            "2026-11-23T10:00:00Z",
            "2026-11-23 10:00:59.123456",
            "2026-11-23 10:00+02:00",
            "2026-11-23T10:00:00-0530",
            "2024-02-29 00:00:00+01",
        ] {
            assert_eq!(since_timestamp(text).as_deref(), Ok(text), "{text}");
        }
    }

    #[test]
    fn anything_else_is_a_usage_error() {
        for text in [
            "yesterday-ish",
            "garbage",
            "",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "2026-11-23 25:00",
            "2026-11-23 10:00:00.",
            "2026-11-23 10:00+2:00",
            "2026-11-23 10",
            "2026-11-23x",
            "26-11-23",
            "2026-11-23 10:00; DROP TABLE outbox",
            "2026-11-23 10:00+25",
        ] {
            let error = since_timestamp(text).expect_err(text);
            assert!(error.contains("neither a duration"), "{error}");
        }
    }
}
