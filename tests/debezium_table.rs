//! An existing outbox table shaped for Debezium's EventRouter (uuid ids,
//! `aggregatetype`/`aggregateid`/`type`, no headers or sent_at) works through
//! column mapping; so do quoted mixed-case names and text/bytea payloads.

mod support;

use std::time::Duration;

use support::db::TestDb;
use support::rabbit::TestQueue;
use support::relay::{Relay, RelayConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debezium_shaped_table_is_relayed_and_emptied() {
    let db = TestDb::new();
    db.psql(
        "CREATE TABLE public.outbox_dbz (\
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(), \
            aggregatetype varchar(255) NOT NULL, aggregateid varchar(255) NOT NULL, \
            type varchar(255) NOT NULL, payload jsonb, \
            timestamp timestamptz NOT NULL DEFAULT now())",
    );
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config
        .set("outbox", "table", "\"public.outbox_dbz\"")
        .set("outbox", "mark", "\"delete\"")
        .set("outbox", "order_by", "\"timestamp\"")
        .set("outbox.columns", "aggregate_type", "\"aggregatetype\"")
        .set("outbox.columns", "aggregate_id", "\"aggregateid\"")
        .set("outbox.columns", "event_type", "\"type\"")
        .set("outbox.columns", "headers", "\"\"")
        .set("outbox.columns", "created_at", "\"timestamp\"")
        .set("outbox.columns", "sent_at", "\"\"")
        .set("source.polling", "notify_channel", "\"\"");
    // Leaves the existing table alone and adds the dead-letter table.
    config.migrate();
    let check = config.command("check");
    assert!(
        check.status.success(),
        "check: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;

    let ids = db.psql(
        "INSERT INTO outbox_dbz (aggregatetype, aggregateid, type, payload, timestamp) \
         SELECT 'customer', 'c' || (i % 3), 'updated', jsonb_build_object('i', i), \
                now() + i * interval '1 ms' \
         FROM generate_series(1, 50) i RETURNING id",
    );
    let ids: Vec<String> = ids.lines().map(str::to_owned).collect();
    assert_eq!(ids.len(), 50);
    let received = queue.drain(50, Duration::from_secs(30)).await;
    let got: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    assert_eq!(got, ids, "uuid ids in timestamp order");
    assert_eq!(received[0].routing_key, "customer.updated");
    assert_eq!(received[0].header("aggregate_id").as_deref(), Some("c1"));
    support::eventually(Duration::from_secs(10), "rows deleted", || async {
        db.count("SELECT count(*) FROM outbox_dbz").await == 0
    })
    .await;
    queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quoted_names_and_raw_payloads_are_byte_exact() {
    let db = TestDb::new();
    db.psql(
        "CREATE SCHEMA \"Sales\"; \
         CREATE TABLE \"Sales\".\"Outbox\" (\
            \"Id\" bigserial PRIMARY KEY, \"Kind\" text NOT NULL, \"Key\" text NOT NULL, \
            \"Type\" text NOT NULL, \"Body\" text NOT NULL, \"Raw\" bytea, \"SentAt\" timestamptz)",
    );
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config
        .set("outbox", "table", "'\"Sales\".\"Outbox\"'")
        .set("outbox.columns", "id", "\"Id\"")
        .set("outbox.columns", "aggregate_type", "\"Kind\"")
        .set("outbox.columns", "aggregate_id", "\"Key\"")
        .set("outbox.columns", "event_type", "\"Type\"")
        .set("outbox.columns", "payload", "\"Body\"")
        .set("outbox.columns", "headers", "\"\"")
        .set("outbox.columns", "created_at", "\"\"")
        .set("outbox.columns", "sent_at", "\"SentAt\"")
        .set("source.polling", "notify_channel", "\"\"");
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    let text = "plain text, not JSON: ünïcödé {\"x\"";
    db.psql(&format!(
        "INSERT INTO \"Sales\".\"Outbox\" (\"Kind\", \"Key\", \"Type\", \"Body\") \
         VALUES ('note', 'n1', 'written', '{}')",
        text.replace('\'', "''")
    ));
    let received = queue.drain(1, Duration::from_secs(30)).await;
    assert_eq!(received[0].body, text.as_bytes());
    assert_eq!(
        received[0]
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str()),
        Some("text/plain; charset=utf-8")
    );
    drop(relay);

    // The same table with the bytea column as payload.
    config.set("outbox.columns", "payload", "\"Raw\"");
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    db.psql(
        "INSERT INTO \"Sales\".\"Outbox\" (\"Kind\", \"Key\", \"Type\", \"Body\", \"Raw\") \
         VALUES ('blob', 'b1', 'stored', '', '\\x00ff10'::bytea)",
    );
    let received = queue.drain(1, Duration::from_secs(30)).await;
    assert_eq!(received[0].body, vec![0x00, 0xff, 0x10]);
    assert_eq!(
        received[0]
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str()),
        Some("application/octet-stream")
    );
    queue.delete().await;
}
