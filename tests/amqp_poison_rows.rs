//! Rows that AMQP cannot carry where their values would go (a header key
//! past 255 bytes, an event type past 255 bytes that only reaches the `type`
//! property, a header value too large for the one content-header frame, a
//! text id past 255 bytes) are dead-lettered with a reason that names the
//! field and the limit; the rows behind them are delivered in order, and the
//! relay never exits.

mod support;

use std::time::Duration;

use support::db::TestDb;
use support::eventually;
use support::rabbit::TestQueue;
use support::relay::{Relay, RelayConfig};
use support::setup::Setup;

const ROWS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_amqp_cannot_carry_are_dead_lettered_and_the_rest_flow_in_order() {
    let mut setup = Setup::new(10).await;
    setup
        .config
        // The event type reaches only the `type` property.
        .set("sink.rabbitmq", "routing_key", "\"{aggregate_type}\"")
        .set("dead_letters", "max_attempts", "2");
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'agg-' || (i % 3), \
                CASE WHEN i = 10 THEN repeat('t', 300) ELSE 'created' END, \
                jsonb_build_object('i', i), \
                CASE WHEN i = 5 THEN jsonb_build_object(repeat('k', 300), 'v') \
                     WHEN i = 15 THEN jsonb_build_object('big', repeat('v', 200000)) \
                     ELSE jsonb_build_object('tenant', 'acme') END \
         FROM generate_series(1, {ROWS}) i"
    ));

    let mut relay = setup.start_relay().await;
    eventually(Duration::from_secs(90), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let received = setup.queue.drain(ROWS - 3, Duration::from_secs(30)).await;
    let mut ids: Vec<i64> = Vec::new();
    for message in &received {
        let id = message.message_id().parse().expect("numeric id");
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    println!(
        "3 poison rows among {ROWS}: {} duplicate(s)",
        received.len() - ids.len()
    );
    let expected: Vec<i64> = (1..=ROWS as i64)
        .filter(|i| ![5, 10, 15].contains(i))
        .collect();
    assert_eq!(ids, expected, "the good events, in order, none lost");
    assert_eq!(received[0].header("tenant").as_deref(), Some("acme"));

    let letters = setup.db.psql(
        "SELECT string_agg(event_id || ':' || reason || ':' || attempts || ':' || error, E'\\n' \
                ORDER BY event_id::int) FROM outbox_dead_letters",
    );
    let letters: Vec<&str> = letters.lines().collect();
    assert_eq!(letters.len(), 3, "{letters:#?}");
    let expect = |line: &str, prefix: &str, words: &[&str]| {
        assert!(line.starts_with(prefix), "{line}");
        for word in words {
            assert!(line.contains(word), "`{word}` in {line}");
        }
    };
    expect(
        letters[0],
        "5:too_long:2:",
        &["header key", "300 bytes", "short string", "255"],
    );
    expect(
        letters[1],
        "10:too_long:2:",
        &["type (event_type)", "300 bytes", "short string", "255"],
    );
    expect(
        letters[2],
        "15:oversized:2:",
        &["content header", "frame_max", "131072"],
    );
    assert!(relay.try_wait().is_none(), "the relay is still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_text_id_past_255_bytes_is_dead_lettered() {
    let db = TestDb::new();
    db.psql(
        "CREATE TABLE public.outbox_text (\
            id text PRIMARY KEY, seq bigserial NOT NULL, \
            aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
            event_type text NOT NULL, payload jsonb NOT NULL, headers jsonb, \
            created_at timestamptz NOT NULL DEFAULT now(), sent_at timestamptz)",
    );
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config
        .set("outbox", "table", "\"public.outbox_text\"")
        .set("outbox", "order_by", "\"seq\"")
        .set("dead_letters", "max_attempts", "2");
    config.migrate();
    db.psql(
        "INSERT INTO outbox_text (id, aggregate_type, aggregate_id, event_type, payload) \
         SELECT CASE WHEN i = 3 THEN repeat('i', 300) ELSE 'e' || i END, \
                'order', 'agg-1', 'created', jsonb_build_object('i', i) \
         FROM generate_series(1, 6) i ORDER BY i",
    );
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    eventually(Duration::from_secs(60), "all rows marked", || async {
        db.count("SELECT count(*) FROM outbox_text WHERE sent_at IS NULL")
            .await
            == 0
    })
    .await;
    let received = queue.drain(5, Duration::from_secs(30)).await;
    let mut ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    ids.dedup();
    assert_eq!(ids, ["e1", "e2", "e4", "e5", "e6"]);
    let letter = db.psql(
        "SELECT length(event_id) || ':' || reason || ':' || error FROM outbox_text_dead_letters",
    );
    assert!(
        letter.starts_with("300:too_long:")
            && letter.contains("message_id (event id)")
            && letter.contains("255"),
        "{letter}"
    );
    assert!(relay.try_wait().is_none(), "the relay is still running");
}
