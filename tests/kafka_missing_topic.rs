//! An event whose topic does not exist is dead-lettered after
//! `dead_letters.max_attempts` within a bounded time, and the events of its
//! aggregate behind it are delivered in order; a broker that is merely down
//! is retried for ever, and nothing is dead-lettered for it.
//!
//! librdkafka holds a message to a topic the brokers do not know until
//! `topic.metadata.propagation.max.ms` has passed since the topic was first
//! used, then fails it as unknown; a message timeout that comes first is a
//! path error. The relay keeps that window at a third of its message
//! timeout (at most 10 s), so each attempt fails as unknown in about
//! window + 1 s (librdkafka looks at its topics once a second).

mod support;

use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use support::db::TestDb;
use support::eventually;
use support::kafka::{KafkaSetup, Record, read_all};
use support::relay::{Relay, RelayConfig, toml_str};

/// One aggregate: events 1, 3 and 4 to `<prefix>.order`, which exists, and
/// event 2 to `<prefix>.nosuch`, which does not.
const ROWS: &str = "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
     SELECT CASE WHEN i = 2 THEN 'nosuch' ELSE 'order' END, 'a', 'created', \
            jsonb_build_object('i', i) \
     FROM generate_series(1, 4) i";

/// The ids in the order first seen, and how many records repeat one.
fn first_seen(records: &[Record]) -> (Vec<String>, usize) {
    let mut ids: Vec<String> = Vec::new();
    for id in records.iter().map(Record::event_id) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let duplicates = records.len() - ids.len();
    (ids, duplicates)
}

fn dead_letters(db: &TestDb) -> String {
    db.psql(
        "SELECT string_agg(event_id || ' ' || reason || ' ' || attempts, ',' ORDER BY event_id) \
         FROM outbox_dead_letters",
    )
    .trim()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_to_a_missing_topic_is_dead_lettered_within_the_bound() {
    // The defaults this is about: message_timeout 30 s, max_attempts 3.
    let setup = KafkaSetup::new(10).await;
    setup.db.psql(ROWS);
    let started = Instant::now();
    let _relay = setup.start_relay().await;
    // Worst case if each attempt took the whole message timeout; the
    // bound the relay keeps is 3 x (10 s + 1 s) plus backoff, about 35 s.
    eventually(Duration::from_secs(90), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let took = started.elapsed();
    println!("missing topic: dead-lettered and all rows marked in {took:?}");

    assert_eq!(dead_letters(&setup.db), "2 unknown_topic 3");
    let (topic, brokers) = (setup.topic.clone(), setup.brokers.clone());
    let records =
        tokio::task::spawn_blocking(move || read_all(&brokers, &topic, 3, Duration::from_secs(30)))
            .await
            .expect("reader");
    let (ids, duplicates) = first_seen(&records);
    println!(
        "missing topic: {} records, {duplicates} duplicates",
        records.len()
    );
    assert_eq!(ids, ["1", "3", "4"]);
    // Events 3 and 4 went out beside 2 in the first batch and again after
    // it was dead-lettered: at most once more each.
    assert!(duplicates <= 2, "{duplicates} duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_topic_is_dead_lettered_but_a_down_broker_is_retried() {
    let mock = MockCluster::new(1).expect("mock cluster");
    let prefix = support::unique("mock");
    let topic = format!("{prefix}.order");
    mock.create_topic(&topic, 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();

    let db = TestDb::new();
    let mut config = RelayConfig::new(&db, "unused");
    config
        .set("sink", "kind", "\"kafka\"")
        .set("sink.kafka", "brokers", &toml_str(&brokers))
        .set(
            "sink.kafka",
            "topic",
            &toml_str(&format!("{prefix}.{{aggregate_type}}")),
        )
        .set("sink.kafka", "message_timeout", "\"6s\"")
        // The mock cluster creates every topic asked for unless told not to.
        .set(
            "sink.kafka.librdkafka",
            "\"allow.auto.create.topics\"",
            "\"false\"",
        )
        .set(
            "sink.kafka.librdkafka",
            "\"reconnect.backoff.max.ms\"",
            "\"500\"",
        )
        .set("source.polling", "batch_size", "10");
    config.migrate();
    db.psql(ROWS);
    let started = Instant::now();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    // 3 attempts of a 2 s window (a third of 6 s) + 1 s, plus backoff.
    eventually(Duration::from_secs(30), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    println!(
        "mock, missing topic: dead-lettered in {:?}",
        started.elapsed()
    );
    assert_eq!(dead_letters(&db), "2 unknown_topic 3");

    // The broker goes away for more than three message timeouts: every
    // attempt fails, none of them is the events' fault.
    mock.broker_down(1).expect("broker down");
    db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'b', 'created', jsonb_build_object('i', i) \
         FROM generate_series(1, 5) i",
    );
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(
        db.unsent().await,
        5,
        "nothing is delivered while it is down"
    );
    assert_eq!(dead_letters(&db), "2 unknown_topic 3", "nor dead-lettered");
    let failures = relay
        .metric("outbox_relay_publish_failures_total{reason=\"connection\",sink=\"kafka\"}")
        .await
        .unwrap_or(0.0);
    assert!(failures >= 3.0, "{failures} failed attempts while down");

    mock.broker_up(1).expect("broker up");
    let back = Instant::now();
    eventually(Duration::from_secs(60), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    println!(
        "mock, broker down 25 s: {failures} failed attempts, delivered {:?} after it came back",
        back.elapsed()
    );
    let records =
        tokio::task::spawn_blocking(move || read_all(&brokers, &topic, 8, Duration::from_secs(30)))
            .await
            .expect("reader");
    let (ids, _) = first_seen(&records);
    assert_eq!(ids, ["1", "3", "4", "5", "6", "7", "8", "9"]);
    drop(mock);
}
