//! Poison events among good ones (oversized, sent to an exchange that does
//! not exist, a routing key that cannot render from the row) go to the
//! dead-letter table with their reasons while the rest flow in order;
//! `dead-letters retry` republishes them once fixed, and `replay`
//! republishes a range of sent events.

mod support;

use std::time::Duration;

use support::eventually;
use support::rabbit::TestQueue;
use support::relay::{Relay, toml_str};
use support::setup::Setup;

const GOOD_AND_BAD: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_events_are_dead_lettered_retried_and_replayed() {
    let mut setup = Setup::new(20).await;
    // Events name their exchange by aggregate type; the second exchange is
    // deleted now and created again later, to fix the poison event.
    let other = TestQueue::new().await;
    other.delete_exchange().await;
    // Copies of dead letters are published here too.
    let copies = TestQueue::new().await;
    setup
        .config
        .set("sink.rabbitmq", "exchange", "\"{aggregate_type}\"")
        .set("sink.rabbitmq", "declare_exchange", "false")
        .set("sink.rabbitmq", "max_message_bytes", "5000")
        .set(
            "sink.rabbitmq",
            "dead_letter_exchange",
            &toml_str(&copies.exchange),
        )
        .set("dead_letters", "max_attempts", "2")
        .set("retry", "initial_backoff", "\"50ms\"");
    let good = &setup.queue.exchange;
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT CASE WHEN i = 20 THEN '{missing}' ELSE '{good}' END, \
                'agg-' || (i % 3), \
                CASE WHEN i = 30 THEN '' ELSE 'created' END, \
                jsonb_build_object('i', i, 'pad', CASE WHEN i = 10 THEN repeat('x', 10000) ELSE '' END) \
         FROM generate_series(1, {GOOD_AND_BAD}) i",
        missing = other.exchange,
    ));

    let relay = setup.start_relay().await;
    eventually(Duration::from_secs(60), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let received = setup
        .queue
        .drain(GOOD_AND_BAD - 3, Duration::from_secs(30))
        .await;
    let mut ids: Vec<i64> = Vec::new();
    for message in &received {
        let id = message.message_id().parse().expect("numeric id");
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let duplicates = received.len() - ids.len();
    println!("poison among {GOOD_AND_BAD}: {duplicates} duplicate(s)");
    assert!(
        duplicates <= 20,
        "at most one batch repeated per poison event"
    );
    let expected: Vec<i64> = (1..=GOOD_AND_BAD as i64)
        .filter(|i| ![10, 20, 30].contains(i))
        .collect();
    assert_eq!(ids, expected, "the good events, in order, none lost");

    let letters = setup.db.psql(
        "SELECT string_agg(event_id || ':' || reason || ':' || attempts, ' ' ORDER BY event_id::int) \
         FROM outbox_dead_letters",
    );
    assert_eq!(
        letters.trim(),
        "10:oversized:2 20:exchange_not_found:2 30:template:2"
    );
    for reason in ["oversized", "exchange_not_found", "template"] {
        let sample =
            format!("outbox_relay_dead_letters_total{{reason=\"{reason}\",sink=\"rabbitmq\"}}");
        assert_eq!(relay.metric(&sample).await, Some(1.0), "{sample}");
    }
    let listed = setup.config.run_ok(&["dead-letters", "list"]);
    assert!(listed.contains("3 dead letter(s)"), "{listed}");
    let mut copied: Vec<String> = copies
        .drain(3, Duration::from_secs(30))
        .await
        .iter()
        .map(|m| {
            let reason = m.header("x-dead-letter-reason").unwrap_or_default();
            format!("{}:{reason}", m.message_id())
        })
        .collect();
    copied.sort();
    copied.dedup();
    assert_eq!(
        copied,
        ["10:oversized", "20:exchange_not_found", "30:template"]
    );
    let filtered = setup
        .config
        .run_ok(&["dead-letters", "list", "--reason", "template"]);
    assert!(
        filtered.contains("1 dead letter(s)") && filtered.contains("placeholder"),
        "{filtered}"
    );

    // Fix the missing exchange and retry that one letter while the relay runs.
    other.declare().await;
    let id_of = |event: &str| {
        setup
            .db
            .psql(&format!(
                "SELECT id FROM outbox_dead_letters WHERE event_id = '{event}'"
            ))
            .trim()
            .to_owned()
    };
    let retried = setup
        .config
        .run_ok(&["dead-letters", "retry", &id_of("20")]);
    assert!(
        retried.contains("event 20") && retried.contains("back in"),
        "{retried}"
    );
    let again = other.drain(1, Duration::from_secs(30)).await;
    assert_eq!(again[0].message_id(), "20");
    assert_eq!(again[0].json()["i"], 20);
    let twice = setup
        .config
        .run_ok(&["dead-letters", "retry", &id_of("20")]);
    assert!(twice.contains("already retried"), "{twice}");

    // Replay a range of sent events: they are published again, in order.
    let replayed = setup
        .config
        .run_ok(&["replay", "--from-id", "4", "--to-id", "9"]);
    assert!(replayed.contains("replayed 6 event(s)"), "{replayed}");
    let replay: Vec<String> = setup
        .queue
        .drain(6, Duration::from_secs(30))
        .await
        .iter()
        .map(|m| m.message_id())
        .collect();
    assert_eq!(replay, ["4", "5", "6", "7", "8", "9"]);

    // --since takes a timestamp, or a duration meaning that long ago.
    let none = setup
        .config
        .run_ok(&["replay", "--to-id", "3", "--since", "2999-01-01 00:00+00"]);
    assert!(none.contains("replayed 0 events"), "{none}");
    let recent = setup
        .config
        .run_ok(&["replay", "--to-id", "3", "--since", "1h"]);
    assert!(recent.contains("replayed 3 event(s)"), "{recent}");
    let replay: Vec<String> = setup
        .queue
        .drain(3, Duration::from_secs(30))
        .await
        .iter()
        .map(|m| m.message_id())
        .collect();
    assert_eq!(replay, ["1", "2", "3"]);
    let recent = setup
        .config
        .run_ok(&["dead-letters", "list", "--since", "1h"]);
    assert!(recent.contains("2 dead letter(s)"), "{recent}");

    // Raise the size limit, restart, retry the rest: the oversized event
    // now goes through; the unrenderable one is dead-lettered again.
    drop(relay);
    setup
        .config
        .set("sink.rabbitmq", "max_message_bytes", "100000");
    let relay = Relay::start(&setup.config);
    let mut relay = relay;
    relay.wait_ready().await;
    let all = setup.config.run_ok(&["dead-letters", "retry", "--all"]);
    assert!(
        all.contains("event 10") && all.contains("event 30"),
        "{all}"
    );
    let big = setup.queue.drain(1, Duration::from_secs(30)).await;
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].message_id(), "10");
    assert!(big[0].body.len() > 10000);
    eventually(
        Duration::from_secs(30),
        "event 30 dead-lettered again",
        || async {
            setup
                .db
                .count("SELECT count(*) FROM outbox_dead_letters WHERE retried_at IS NULL")
                .await
                == 1
        },
    )
    .await;
    let pending = setup.config.run_ok(&["dead-letters", "list"]);
    assert!(
        pending.contains("1 dead letter(s)") && pending.contains("template"),
        "{pending}"
    );
    let history = setup
        .config
        .run_ok(&["dead-letters", "list", "--include-retried"]);
    assert!(history.contains("4 dead letter(s)"), "{history}");
    drop(relay);
    setup.queue.delete().await;
    other.delete().await;
    copies.delete().await;
}
