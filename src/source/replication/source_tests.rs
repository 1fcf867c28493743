//! The replication source's stream handling without a server: messages fed
//! in as decoded (or undecodable) bytes.

use bytes::Bytes;

use super::*;
use crate::source::replication::pgoutput::{Column, Relation, Value};

fn source() -> ReplicationSource {
    ReplicationSource::new(&Config::default()).expect("source")
}

fn outbox() -> PgOutput {
    let column = |name: &str, type_oid| Column {
        key: name == "id",
        name: name.into(),
        type_oid,
        type_modifier: -1,
    };
    PgOutput::Relation(Relation {
        id: 7,
        namespace: "public".into(),
        name: "outbox".into(),
        replica_identity: b'd',
        columns: vec![
            column("id", 20),
            column("aggregate_type", 25),
            column("aggregate_id", 25),
            column("event_type", 25),
            column("payload", 3802),
            column("headers", 3802),
            column("created_at", 1184),
        ],
    })
}

fn insert(id: u32) -> PgOutput {
    let text = |s: &str| Value::Text(s.as_bytes().to_vec());
    PgOutput::Insert {
        relation: 7,
        new: vec![
            text(&id.to_string()),
            text("order"),
            text("o-1"),
            text("created"),
            text("{}"),
            Value::Null,
            Value::Null,
        ],
    }
}

/// One transaction of `rows` inserts with the given identity.
fn stream(source: &mut ReplicationSource, final_lsn: Lsn, xid: u32, rows: u32) {
    let begin = PgOutput::Begin {
        final_lsn,
        commit_time: 0,
        xid,
    };
    source.apply(begin).expect("begin");
    source.apply(outbox()).expect("relation");
    for id in 1..=rows {
        source.apply(insert(id)).expect("insert");
    }
    let commit = PgOutput::Commit {
        commit_lsn: final_lsn,
        end_lsn: Lsn(final_lsn.0 + 0x30),
        commit_time: 0,
    };
    source.apply(commit).expect("commit");
}

fn ready_ids(source: &ReplicationSource) -> Vec<String> {
    source.ready.iter().map(|p| p.event.id.clone()).collect()
}

#[test]
fn a_restreamed_transaction_skips_what_was_confirmed() {
    let mut source = source();
    source.resume = Some(Partial {
        final_lsn: Lsn(0x100),
        xid: 42,
        confirmed: 3,
    });
    stream(&mut source, Lsn(0x100), 42, 5);
    assert_eq!(ready_ids(&source), ["4", "5"]);
    let progress = source.txns.front().expect("in flight");
    assert_eq!((progress.confirmed, progress.unconfirmed), (3, 2));
    assert_eq!(progress.partial().map(|p| p.confirmed), Some(3));
}

#[test]
fn a_wholly_confirmed_transaction_moves_the_slot_past_it() {
    let mut source = source();
    source.resume = Some(Partial {
        final_lsn: Lsn(0x100),
        xid: 42,
        confirmed: 5,
    });
    stream(&mut source, Lsn(0x100), 42, 5);
    assert!(source.ready.is_empty());
    assert!(source.txns.is_empty());
    assert_eq!(source.confirmed, Lsn(0x130));
}

#[test]
fn another_transaction_is_not_skipped() {
    for (final_lsn, xid) in [(Lsn(0x100), 43), (Lsn(0x200), 42)] {
        let mut source = source();
        source.resume = Some(Partial {
            final_lsn: Lsn(0x100),
            xid: 42,
            confirmed: 3,
        });
        stream(&mut source, final_lsn, xid, 5);
        assert_eq!(ready_ids(&source).len(), 5);
    }
}

#[test]
fn an_undecodable_message_is_fatal_and_names_its_lsn() {
    let mut source = source();
    let message = StreamMessage::XLogData {
        start: Lsn(0x1_0000_1234),
        end: Lsn(0x1_0000_1234),
        data: Bytes::from_static(b"I\0\0"),
    };
    let error = source.handle(message).expect_err("undecodable");
    assert!(error.is_fatal(), "{error}");
    let text = error.to_string();
    assert!(text.contains("at LSN 1/1234"), "{text}");
    assert!(text.contains("kind 'I'"), "{text}");
}

#[tokio::test]
async fn a_fatal_error_found_while_waiting_is_returned_by_the_next_claim() {
    let mut source = source();
    source.fatal = Some(SourceError::Undecodable {
        lsn: "0/10".into(),
        kind: 'Z',
        len: 1,
        error: "unknown message type 'Z'".into(),
    });
    let error = source.claim(10).await.expect_err("fatal");
    assert!(
        error.is_fatal() && error.to_string().contains("0/10"),
        "{error}"
    );
}
