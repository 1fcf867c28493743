//! The replication connection against the real server: authenticate in
//! replication mode, create a pgoutput slot, stream an insert and a logical
//! message (PostgreSQL 14 and later: 13's pgoutput sends none), decode
//! them, and confirm the position so the slot advances.

mod support;

use std::str::FromStr;
use std::time::Duration;

use outbox_relay::config::{PostgresConfig, SecretUrl};
use outbox_relay::source::replication::connection::{ReplicationConnection, StreamMessage};
use outbox_relay::source::replication::pgoutput::{Lsn, PgOutput, Value, decode};
use support::db::TestDb;
use support::relay::RelayConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_decodes_and_confirms() {
    let db = TestDb::new();
    let mut config = RelayConfig::new(&db, "unused");
    config.set("sink", "kind", "\"stdout\"");
    config.migrate();
    let slot = support::unique("outbox_test_slot");
    db.psql("CREATE PUBLICATION outbox_test_pub FOR TABLE outbox WITH (publish = 'insert')");

    let pg = PostgresConfig {
        url: SecretUrl::new(db.url.clone()),
        connect_timeout: Duration::from_secs(10),
        ..PostgresConfig::default()
    };
    let mut conn = ReplicationConnection::connect(&pg).await.expect("connect");
    let system = conn
        .simple_query("IDENTIFY_SYSTEM")
        .await
        .expect("identify");
    assert_eq!(
        system.len(),
        1,
        "one row: systemid, timeline, xlogpos, dbname"
    );
    assert_eq!(system[0][3].as_deref(), Some(db.name.as_str()));
    let missing = conn
        .simple_query("START_REPLICATION SLOT no_such_slot LOGICAL 0/0")
        .await;
    assert_eq!(
        missing.expect_err("no such slot").sqlstate(),
        Some("42704"),
        "server errors carry their SQLSTATE"
    );

    // Temporary: dropped with the session, and on any error in it.
    conn.simple_query(&format!(
        "CREATE_REPLICATION_SLOT {slot} TEMPORARY LOGICAL pgoutput"
    ))
    .await
    .expect("slot");

    db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         VALUES ('order', 'o-1', 'created', '{\"n\": 1}'); \
         SELECT pg_logical_emit_message(true, 'outbox', 'hello')",
    );
    conn.start_replication(&slot, Lsn(0), "outbox_test_pub")
        .await
        .expect("start");

    let mut relation = None;
    let mut inserted = None;
    let mut message = None;
    let mut commits = Vec::new();
    // psql -c runs both statements in one transaction: one commit.
    while commits.is_empty() {
        let next = tokio::time::timeout(Duration::from_secs(10), conn.next_message())
            .await
            .expect("stream message within 10s")
            .expect("stream");
        let StreamMessage::XLogData { data, .. } = next else {
            continue;
        };
        match decode(&data).expect("pgoutput") {
            PgOutput::Relation(r) => relation = Some(r),
            PgOutput::Insert { new, .. } => inserted = Some(new),
            PgOutput::LogicalMessage {
                prefix, content, ..
            } => message = Some((prefix, content)),
            PgOutput::Commit { end_lsn, .. } => commits.push(end_lsn),
            _ => {}
        }
    }
    let relation = relation.expect("relation before the insert");
    let row = inserted.expect("insert");
    let col = |name: &str| &row[relation.column_index(name).expect("column")];
    assert_eq!(col("aggregate_id"), &Value::Text(b"o-1".to_vec()));
    assert_eq!(col("payload"), &Value::Text(b"{\"n\": 1}".to_vec()));
    if conn.streams_messages() {
        assert_eq!(message, Some(("outbox".to_owned(), b"hello".to_vec())));
    } else {
        // pgoutput sends logical messages since PostgreSQL 14.
        assert_eq!(db.server_major(), 13);
        assert_eq!(message, None);
    }

    let confirmed = commits[0];
    conn.send_status(confirmed, confirmed, false)
        .await
        .expect("status");
    support::eventually(
        Duration::from_secs(10),
        "slot confirmed_flush_lsn advanced",
        || {
            let db = &db;
            let slot = slot.clone();
            async move {
                let out = db.psql(&format!(
                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ));
                Lsn::from_str(out.trim()).is_ok_and(|lsn| lsn >= confirmed)
            }
        },
    )
    .await;
}
