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

/// `YYYY-MM-DD`, then optionally `[T ]HH:MM[:SS[.fraction]]` and an offset
/// (`Z`, `+HH`, `+HH:MM`, `-HHMM`), each field in its range.
fn is_timestamp(text: &str) -> bool {
    let Some((date, rest)) = split_at_checked(text, 10) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let Some(time) = rest.strip_prefix(['T', 't', ' ']) else {
        return rest.is_empty();
    };
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => (time, ""),
    };
    is_clock(clock) && is_offset(offset)
}

fn is_date(date: &str) -> bool {
    let parts: Vec<&str> = date.split('-').collect();
    let [year, month, day] = parts.as_slice() else {
        return false;
    };
    let (Some(year), Some(month), Some(day)) = (number(year, 4), number(month, 2), number(day, 2))
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

fn is_clock(clock: &str) -> bool {
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let parts: Vec<&str> = clock.split(':').collect();
    match parts.as_slice() {
        [h, m] => in_range(h, 23) && in_range(m, 59) && fraction == "0",
        [h, m, s] => in_range(h, 23) && in_range(m, 59) && in_range(s, 60),
        _ => false,
    }
}

fn is_offset(offset: &str) -> bool {
    if offset.is_empty() || offset.eq_ignore_ascii_case("z") {
        return true;
    }
    let Some(hours) = offset.strip_prefix(['+', '-']) else {
        return false;
    };
    let (hours, minutes) = match hours.split_once(':') {
        Some((h, m)) => (h, m),
        None if hours.len() == 4 => hours.split_at(2),
        None => (hours, "00"),
    };
    in_range(hours, 15) && in_range(minutes, 59)
}

fn in_range(text: &str, max: u32) -> bool {
    number(text, 2).is_some_and(|n| n <= max)
}

/// `text` as a number of exactly `digits` ASCII digits.
fn number(text: &str, digits: usize) -> Option<u32> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn split_at_checked(text: &str, at: usize) -> Option<(&str, &str)> {
    text.is_char_boundary(at)
        .then(|| text.split_at(at))
        .filter(|_| text.len() >= at)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let error = since_timestamp(text).expect_err(text);
            assert!(error.contains("neither a duration"), "{error}");
        }
    }
}
