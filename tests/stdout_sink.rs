//! The stdout sink writes one JSON object per event with every field.

mod support;

use std::time::Duration;

use support::db::TestDb;
use support::relay::{Relay, RelayConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_json_line_per_event() {
    let db = TestDb::new();
    let mut config = RelayConfig::new(&db, "unused");
    config.set("sink", "kind", "\"stdout\"");
    config.migrate();
    let (mut relay, stdout) = Relay::start_capturing_stdout(&config);
    relay.wait_ready().await;
    db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'o' || i, 'created', jsonb_build_object('n', i), \
                jsonb_build_object('trace', 't' || i) \
         FROM generate_series(1, 100) i",
    );
    support::eventually(Duration::from_secs(30), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let status = relay.sigterm(Duration::from_secs(10)).expect("exits");
    assert!(status.success());

    let text = std::fs::read_to_string(&stdout).expect("stdout");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 100);
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        assert_eq!(line["event_id"], n.to_string());
        assert_eq!(line["aggregate_type"], "order");
        assert_eq!(line["aggregate_id"], format!("o{n}"));
        assert_eq!(line["event_type"], "created");
        assert_eq!(line["payload"]["n"], n);
        assert_eq!(line["headers"]["trace"], format!("t{n}"));
        let at = line["created_at"].as_str().expect("created_at");
        assert!(at.ends_with('Z') && at.len() >= 20, "RFC 3339: {at}");
    }
}
