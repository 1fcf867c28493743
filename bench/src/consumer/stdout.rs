//! Reads the stdout sink's lines from the relay's stdout pipe (instead of
//! /dev/null), so the stdout runs are checked like the broker runs. Only the
//! leading `event_id` and `aggregate_id` fields are picked out of each line:
//! parsing the whole JSON would make the harness, not the relay, the limit.

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;

use super::Consumer;
use crate::checker::Checker;

/// Reads `pipe` until it closes (the relay exited).
pub fn consume_stdout(pipe: ChildStdout) -> Consumer {
    Consumer::blocking(move |link| {
        let mut checker = Checker::new();
        let mut reader = BufReader::with_capacity(1 << 20, pipe);
        let mut line = Vec::with_capacity(1024);
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(checker);
            }
            match parse_line(&line) {
                Some((id, aggregate)) => link.record(&mut checker, id, aggregate),
                None => {
                    return Err(format!(
                        "unexpected stdout line: {}",
                        String::from_utf8_lossy(&line)
                    )
                    .into());
                }
            }
        }
    })
}

/// The event id and aggregate id of one stdout sink line.
pub fn parse_line(line: &[u8]) -> Option<(u64, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    let id = string_field(line, "event_id")?.parse().ok()?;
    Some((id, string_field(line, "aggregate_id")?))
}

/// The first `"key":"value"` string value in `line`, if it has no escapes
/// (the harness writes none in these fields).
fn string_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let start = line.find(&pattern)? + pattern.len();
    let rest = &line[start..];
    let end = rest.find('"')?;
    let value = &rest[..end];
    (!value.contains('\\')).then_some(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn picks_id_and_aggregate() {
        let line = br#"{"event_id":"17","aggregate_type":"order","aggregate_id":"agg-17","event_type":"created","payload":{"seq": 17},"headers":null,"created_at":null}
"#;
        assert_eq!(super::parse_line(line), Some((17, "agg-17")));
        assert_eq!(super::parse_line(b"{}"), None);
    }
}
