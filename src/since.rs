//! The `--since` argument of `replay` and `dead-letters list`: a timestamp
//! Postgres reads (`2026-11-23 10:00`), or a duration (`2h`) meaning that
//! long ago.

use std::time::SystemTime;

/// `text` as a timestamp Postgres casts with `::timestamptz`: a duration
/// becomes the RFC 3339 time that long before now; anything else is passed
/// on for Postgres to parse (and reject with its own message).
pub fn since_timestamp(text: &str) -> String {
    match humantime::parse_duration(text) {
        Ok(ago) => match SystemTime::now().checked_sub(ago) {
            Some(then) => humantime::format_rfc3339_micros(then).to_string(),
            None => "-infinity".into(),
        },
        Err(_) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_becomes_a_time_that_long_ago() {
        let text = since_timestamp("2h");
        let then = humantime::parse_rfc3339(&text).expect("rfc3339");
        let ago = SystemTime::now().duration_since(then).expect("in the past");
        assert!(ago.as_secs() >= 7200 && ago.as_secs() < 7260, "{ago:?}");
    }

    #[test]
    fn a_timestamp_is_passed_on() {
        assert_eq!(since_timestamp("2026-11-23 10:00"), "2026-11-23 10:00");
    }
}
