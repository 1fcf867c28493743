//! The stdout sink writes a line for rows of any time Postgres stores (before
//! 1970, BC, past 9999: humantime panicked on them, exit 101 on every
//! start) and any number in the headers and payload, in order. Times outside
//! [1970, 10000) are no time (README, Timestamps): `created_at` is null.

mod support;

use std::time::Duration;

use support::db::TestDb;
use support::relay::{Relay, RelayConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_any_time_and_number_are_lines_in_order() {
    let db = TestDb::new();
    let mut config = RelayConfig::new(&db, "unused");
    config
        .set("sink", "kind", "\"stdout\"")
        .set("dead_letters", "max_attempts", "2");
    config.migrate();
    db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers, created_at) VALUES \
         ('order', 'o', 'created', '{\"n\": 1}', NULL, '1960-01-01 00:00:00+00'), \
         ('order', 'o', 'created', '{\"n\": 2}', NULL, '0044-03-15 12:00:00+00 BC'), \
         ('order', 'o', 'created', '{\"n\": 3}', NULL, '12000-01-01 00:00:00+00'), \
         ('order', 'o', 'created', '[1e400]', '{\"huge\": 1e400, \"tenant\": \"acme\"}', now())",
    );
    let (mut relay, stdout) = Relay::start_capturing_stdout(&config);
    relay.wait_ready().await;
    support::eventually(Duration::from_secs(30), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    assert!(relay.try_wait().is_none(), "the relay is still running");
    let status = relay.sigterm(Duration::from_secs(10)).expect("exits");
    assert!(status.success());

    let text = std::fs::read_to_string(&stdout).expect("stdout");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    // Each line is JSON; fields are read from their own text, as a number
    // past f64 (valid JSON) fails serde_json's Value.
    let raw = |line: &str, name: &str| -> String {
        let fields: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_str(line).expect("each line is JSON");
        fields[name].get().to_owned()
    };
    let field = |line: &str, name: &str| -> serde_json::Value {
        serde_json::from_str(&raw(line, name)).expect("field")
    };
    for (line, stored) in lines[..3].iter().zip(["1960", "44 BC", "12000"]) {
        let payload = field(line, "payload");
        assert_eq!(
            field(line, "created_at"),
            serde_json::Value::Null,
            "{stored}: {line}"
        );
        assert!(payload["n"].is_number(), "{line}");
    }
    let order: Vec<i64> = lines[..3]
        .iter()
        .filter_map(|line| field(line, "payload")["n"].as_i64())
        .collect();
    assert_eq!(order, [1, 2, 3]);
    assert!(
        field(lines[3], "created_at").is_string(),
        "a time in range is kept: {}",
        lines[3]
    );
    // A number no double holds is valid JSON: inlined as stored (jsonb
    // prints 1e400 in full), and kept exactly (as text) in the headers.
    let payload = raw(lines[3], "payload");
    assert!(
        payload.starts_with("[1000") && payload.len() == 403,
        "{payload}"
    );
    let headers = field(lines[3], "headers");
    assert_eq!(headers["tenant"], "acme");
    assert_eq!(
        headers["huge"].as_str().map(str::len),
        Some(401),
        "{headers}"
    );
}
