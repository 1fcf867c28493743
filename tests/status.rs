//! `outbox-relay status` against real servers: with one relay leading, a
//! second on standby, both stopped (Postgres still read, the relay said to
//! be unreachable), dead letters pending, a replication slot lagging while
//! its relay is stopped, and Postgres unreachable; in text and `--json`,
//! with the exit status a cron check relies on (0 ok, 1 attention, 2
//! Postgres unreadable).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::eventually;
use support::rabbit::QueueCleanup;
use support::relay::{Relay, RelayConfig};
use support::setup::Setup;
use support::writers;

/// `status --json` (plus `extra` arguments): exit code and parsed output.
fn status_json(config: &RelayConfig, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    let out = config.output(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("$ outbox-relay {}\n{stdout}", args.join(" "));
    (out.status.code().expect("exit code"), json)
}

/// `status` as text: exit code and output, each line's runs of spaces
/// squashed to one (the alignment is not what is tested).
fn status_text(config: &RelayConfig, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["status"];
    args.extend_from_slice(extra);
    let out = config.output(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("$ outbox-relay {}\n{text}", args.join(" "));
    let squashed: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (
        out.status.code().expect("exit code"),
        squashed.join("\n") + "\n",
    )
}

fn attention(json: &Value) -> Vec<String> {
    json["attention"]
        .as_array()
        .expect("attention list")
        .iter()
        .map(|v| v.as_str().expect("text").to_owned())
        .collect()
}

fn has(attention: &[String], part: &str) -> bool {
    attention.iter().any(|a| a.contains(part))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_standby_stopped_and_dead_letters() {
    let mut setup = Setup::new(50).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    setup.config.set("leader", "takeover_interval", "\"500ms\"");
    let mut a = setup.start_relay().await;
    eventually(Duration::from_secs(10), "relay A leads", || async {
        a.metric("outbox_relay_leader").await == Some(1.0)
    })
    .await;
    let written = writers::write(&setup.db.url, 2, 50, 5, Duration::ZERO).await;
    setup.settle("status: leader", &written).await;

    // One relay, leading, nothing pending: all well.
    let (code, json) = status_json(&setup.config, &[]);
    assert_eq!(code, 0, "nothing needs attention: {json}");
    assert_eq!(json["format"], 1);
    assert_eq!(json["ok"], true);
    assert_eq!(json["attention"].as_array().map(Vec::len), Some(0));
    assert_eq!(json["postgres"]["reachable"], true);
    assert_eq!(json["relay"]["reachable"], true);
    assert_eq!(json["relay"]["role"], "leader");
    assert_eq!(json["relay"]["version"], env!("CARGO_PKG_VERSION"));
    let holder = &json["leader"]["holder"];
    assert!(holder["pid"].as_i64().is_some_and(|p| p > 0), "{json}");
    assert_eq!(holder["application_name"], "outbox-relay leader");
    assert_eq!(holder["client_addr"], "127.0.0.1");
    assert_eq!(json["leader"]["standbys"], 0);
    assert_eq!(json["backlog"]["unsent"], 0);
    assert_eq!(json["backlog"]["oldest_unsent_age_seconds"], Value::Null);
    assert_eq!(json["throughput"]["source"], "sent_at");
    assert_eq!(
        json["throughput"]["events"], 100,
        "the 100 rows were marked sent within the minute"
    );
    assert!(
        json["lag"]["observations"].as_u64() == Some(100),
        "lag over the 100 events: {json}"
    );
    let p50 = json["lag"]["p50_seconds"].as_f64().expect("p50");
    let p99 = json["lag"]["p99_seconds"].as_f64().expect("p99");
    assert!(p50 > 0.0 && p50 <= p99, "p50 {p50} <= p99 {p99}");
    assert_eq!(json["slot"], Value::Null, "no slot in polling mode");
    assert_eq!(json["dead_letters"]["pending"], 0);
    assert_eq!(json["retention"]["state"], "not_configured");
    assert_eq!(json["sink"]["kind"], "rabbitmq");
    assert_eq!(json["sink"]["connected"], true);
    let target = json["sink"]["target"].as_str().expect("target");
    assert!(
        target.starts_with("amqp://guest:***@"),
        "the password is masked: {target}"
    );
    let (code, text) = status_text(&setup.config, &[]);
    assert_eq!(code, 0);
    assert!(text.contains(": OK ["), "{text}");
    let pid = holder["pid"].as_i64().expect("pid");
    assert!(
        text.contains(&format!("leader lock held by pid {pid} at 127.0.0.1:")),
        "{text}"
    );
    assert!(text.contains(": leader, version "), "{text}");
    assert!(text.contains("retention not configured"), "{text}");

    // A second relay stands by; read through its own listener.
    let a_port = setup.config.port;
    setup.config.new_port();
    let b = setup.start_relay().await;
    let (code, json) = status_json(&setup.config, &[]);
    assert_eq!(code, 0, "a standby is fine: {json}");
    assert_eq!(json["relay"]["role"], "standby");
    assert_eq!(json["leader"]["holder"]["pid"], pid, "A still leads");
    assert_eq!(json["leader"]["standbys"], 1, "B's election session waits");
    assert_eq!(
        json["sink"]["connected"],
        Value::Null,
        "a standby does not connect"
    );
    let (_, text) = status_text(&setup.config, &[]);
    assert!(text.contains(": standby, version "), "{text}");
    assert!(text.contains("not connected (standby)"), "{text}");
    // --relay reads another relay than metrics.listen.
    let (_, json) = status_json(&setup.config, &["--relay", &format!("127.0.0.1:{a_port}")]);
    assert_eq!(json["relay"]["role"], "leader");

    // Both stopped: Postgres is still read; the relay is unreachable, no
    // one leads, rows wait, and the exit status says so.
    a.sigterm(Duration::from_secs(10));
    drop(b);
    writers::write(&setup.db.url, 1, 7, 1, Duration::ZERO).await;
    let (code, json) = status_json(&setup.config, &["--max-unsent-age", "1h"]);
    assert_eq!(code, 1, "needs attention: {json}");
    assert_eq!(json["ok"], false);
    assert_eq!(json["relay"]["reachable"], false);
    assert!(json["relay"]["error"].as_str().is_some());
    assert_eq!(json["leader"]["holder"], Value::Null);
    assert_eq!(json["backlog"]["unsent"], 7);
    assert!(
        json["backlog"]["oldest_unsent_age_seconds"]
            .as_f64()
            .is_some()
    );
    assert_eq!(json["lag"], Value::Null);
    assert_eq!(json["sink"]["connected"], Value::Null);
    let problems = attention(&json);
    assert!(
        has(&problems, "relay unreachable at 127.0.0.1:"),
        "{problems:?}"
    );
    assert!(
        has(&problems, "no relay holds the leader lock"),
        "{problems:?}"
    );
    assert!(!has(&problems, "oldest unsent"), "under 1h: {problems:?}");
    // An unsent row older than the threshold.
    let (_, json) = status_json(&setup.config, &["--max-unsent-age", "1ms"]);
    assert!(has(&attention(&json), "the oldest unsent row is"), "{json}");
    let (code, text) = status_text(&setup.config, &[]);
    assert_eq!(code, 1);
    assert!(text.contains("NEEDS ATTENTION"), "{text}");
    assert!(text.contains("unreachable ("), "{text}");
    assert!(text.contains("leader lock nobody holds it"), "{text}");
    assert!(text.contains("unsent rows 7"), "{text}");

    // Dead letters pending, counted by reason (one reason with a newline:
    // the text stays one line per reason).
    setup.db.psql(
        "INSERT INTO outbox_dead_letters \
           (event_id, aggregate_type, aggregate_id, event_type, payload, reason, error, attempts, sink) \
         SELECT i::text, 'order', 'o-' || i, 'created', '\\x7b7d', \
                CASE WHEN i <= 2 THEN 'oversized' ELSE E'odd\\nreason' END, 'too big', 3, 'rabbitmq' \
         FROM generate_series(1, 3) i",
    );
    setup.db.psql(
        "INSERT INTO outbox_dead_letters \
           (event_id, aggregate_type, aggregate_id, event_type, payload, reason, error, attempts, sink, retried_at) \
         VALUES ('99', 'order', 'o-99', 'created', '\\x7b7d', 'unroutable', 'x', 1, 'rabbitmq', now())",
    );
    let (code, json) = status_json(&setup.config, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        json["dead_letters"]["pending"], 3,
        "the retried one is not pending"
    );
    assert_eq!(
        json["dead_letters"]["by_reason"],
        serde_json::json!([
            {"reason": "oversized", "count": 2},
            {"reason": "odd\nreason", "count": 1},
        ])
    );
    assert!(has(&attention(&json), "3 dead letter(s) pending"), "{json}");
    let (_, text) = status_text(&setup.config, &[]);
    assert!(text.contains("\noversized 2\n"), "{text}");
    assert!(text.contains("\nodd reason 1\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_slot_lagging_while_the_relay_is_stopped() {
    let setup = Setup::replication(50).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    let mut relay: Relay = setup.start_relay().await;
    let slot = setup.db.name.clone();
    eventually(Duration::from_secs(20), "the relay streams", || async {
        setup
            .db
            .count(&format!(
                "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
            ))
            .await
            == 1
    })
    .await;
    let (code, json) = status_json(&setup.config, &[]);
    assert_eq!(code, 0, "streaming: {json}");
    assert_eq!(json["source_mode"], "replication");
    assert_eq!(json["slot"]["name"], slot.as_str());
    assert_eq!(json["slot"]["exists"], true);
    assert_eq!(json["slot"]["active"], true);
    if setup.db.server_major() >= 17 {
        assert!(json["slot"]["failover"].is_boolean(), "{json}");
    } else {
        assert_eq!(
            json["slot"]["failover"],
            Value::Null,
            "no failover slots before 17"
        );
    }

    relay.sigterm(Duration::from_secs(10));
    writers::write(&setup.db.url, 1, 20, 2, Duration::ZERO).await;
    let (code, json) = status_json(&setup.config, &[]);
    assert_eq!(code, 1, "a stopped slot with a backlog: {json}");
    assert_eq!(json["slot"]["active"], false);
    assert_eq!(json["slot"]["wal_status"], "reserved");
    assert!(
        json["slot"]["lag_bytes"].as_i64().is_some_and(|b| b > 0),
        "the slot holds the new WAL: {json}"
    );
    assert_eq!(json["backlog"]["unsent"], 20);
    let problems = attention(&json);
    assert!(
        has(
            &problems,
            &format!("replication slot {slot} is inactive with 20 unsent row(s)")
        ),
        "{problems:?}"
    );
    let (_, text) = status_text(&setup.config, &[]);
    assert!(text.contains(&format!("slot {slot}: inactive")), "{text}");
    assert!(text.contains("wal status reserved"), "{text}");
    assert!(text.contains("Replication slot"), "{text}");
}

#[tokio::test]
async fn postgres_unreachable_exits_2() {
    let port = support::free_port();
    let config = RelayConfig::for_url(
        &format!("postgres://postgres@127.0.0.1:{port}/nowhere"),
        "unused",
    );
    let (code, json) = status_json(&config, &[]);
    assert_eq!(code, 2, "{json}");
    assert_eq!(json["postgres"]["reachable"], false);
    assert_eq!(json["backlog"], Value::Null);
    assert!(has(&attention(&json), "cannot read Postgres"), "{json}");
}
