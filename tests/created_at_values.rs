//! Every value a created_at column can hold, in `timestamptz`, `timestamp`
//! and `date` columns, in both modes: each row is published, in order, and
//! the rows behind it too; the message carries the row's time when it is
//! finite and in [1970-01-01, 10000-01-01) UTC, and no timestamp otherwise
//! (`infinity` once blocked polling for good: SQLSTATE 0A000, retried).

mod support;

use std::time::Duration;

use support::setup::Setup;

/// One row to write: its created_at as SQL, and the AMQP timestamp (Unix
/// seconds) the message must carry, if any.
struct Case {
    value: &'static str,
    expected: Option<u64>,
}

const fn case(value: &'static str, expected: Option<u64>) -> Case {
    Case { value, expected }
}

fn cases(column_type: &str) -> Vec<Case> {
    match column_type {
        "timestamptz" => vec![
            case("'2026-11-23 05:17:15.5+00'", Some(1_795_411_035)),
            case("'infinity'", None),
            case("'-infinity'", None),
            case("'12026-01-01 00:00:00+00'", None),
            case("'294276-12-31 23:59:59.999999+00'", None),
            case("'0044-03-15 12:00:00+00 BC'", None),
            case("'4713-11-24 00:00:00+00 BC'", None),
            case("'1969-12-31 23:59:59.999999+00'", None),
            case("'1970-01-01 00:00:00+00'", Some(0)),
            case("'9999-12-31 23:59:59.999999+00'", Some(253_402_300_799)),
            case("'2026-11-23 10:17:15+05'", Some(1_795_411_035)),
            case("NULL", None),
        ],
        "timestamp" => vec![
            case("'2026-11-23 05:17:15.5'", Some(1_795_411_035)),
            case("'infinity'", None),
            case("'-infinity'", None),
            case("'12026-01-01 00:00:00'", None),
            case("'294276-12-31 23:59:59.999999'", None),
            case("'0044-03-15 12:00:00 BC'", None),
            case("'1969-12-31 23:59:59'", None),
            case("'9999-12-31 23:59:59'", Some(253_402_300_799)),
            case("NULL", None),
        ],
        "date" => vec![
            case("'2026-11-23'", Some(1_795_392_000)),
            case("'infinity'", None),
            case("'-infinity'", None),
            case("'12026-01-01'", None),
            case("'5874897-12-31'", None),
            case("'0044-03-15 BC'", None),
            case("'1969-12-31'", None),
            case("'1970-01-01'", Some(0)),
            case("NULL", None),
        ],
        other => panic!("no cases for {other}"),
    }
}

/// Makes created_at a nullable column of `column_type` and writes one row
/// per case, then three ordinary rows behind them, all one aggregate.
fn write_rows(setup: &Setup, column_type: &str) -> Vec<Case> {
    let cases = cases(column_type);
    let mut sql = String::new();
    for c in &cases {
        sql.push_str(&format!(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, created_at) \
             VALUES ('order', 'o-1', 'tested', '{{}}', {});",
            c.value
        ));
    }
    for _ in 0..3 {
        sql.push_str(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
             VALUES ('order', 'o-1', 'behind', '{}');",
        );
    }
    setup.db.psql(&sql);
    cases
}

fn prepare_table(setup: &Setup, column_type: &str) {
    setup.db.psql(&format!(
        "ALTER TABLE outbox ALTER COLUMN created_at DROP NOT NULL, \
         ALTER COLUMN created_at TYPE {column_type}"
    ));
}

/// Reads every message and checks order and timestamps.
async fn check(setup: &Setup, cases: &[Case], label: &str) {
    let total = cases.len() + 3;
    support::eventually(Duration::from_secs(60), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let received = setup.queue.drain(total, Duration::from_secs(30)).await;
    assert_eq!(received.len(), total, "{label}: every row published once");
    let ids: Vec<i64> = received
        .iter()
        .map(|m| m.message_id().parse().expect("numeric id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "{label}: the aggregate's rows in order");
    for (c, m) in cases.iter().zip(&received) {
        assert_eq!(
            *m.properties.timestamp(),
            c.expected,
            "{label}: created_at {}",
            c.value
        );
    }
    for m in &received[cases.len()..] {
        assert!(m.properties.timestamp().is_some(), "{label}: now() rows");
    }
    println!("{label}: {total} rows published in order with the expected timestamps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_publishes_every_created_at() {
    for column_type in ["timestamptz", "timestamp", "date"] {
        let setup = Setup::new(4).await;
        prepare_table(&setup, column_type);
        let cases = write_rows(&setup, column_type);
        let relay = setup.start_relay().await;
        check(&setup, &cases, &format!("polling, {column_type}")).await;
        let log = relay.log_text();
        assert!(!log.contains("claiming events failed"), "{log}");
        setup.queue.delete().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_publishes_every_created_at_as_polling_does() {
    for column_type in ["timestamptz", "timestamp", "date"] {
        let setup = Setup::replication(4).await;
        prepare_table(&setup, column_type);
        let _relay = setup.start_relay().await;
        let cases = write_rows(&setup, column_type);
        check(&setup, &cases, &format!("replication, {column_type}")).await;
        setup.queue.delete().await;
    }
}
