//! Decoding real pgoutput bytes, captured from PostgreSQL 15 with
//! `pg_logical_slot_peek_binary_changes(slot, NULL, NULL, 'proto_version',
//! '1', 'publication_names', 'cap', 'messages', 'true')` after an insert,
//! update, delete, logical message and truncate on the default outbox table.
//! Origin and Type never appear for this table, so they are built by hand
//! from the protocol documentation.

use super::*;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.as_bytes().to_vec())
}

const BEGIN: &str = "420000000070624d30000303e968b8b33b0002ae76";
const RELATION: &str = "52000047607075626c6963006f7574626f78006400080169640000000014ffffffff006167677265676174655f747970650000000019ffffffff006167677265676174655f69640000000019ffffffff006576656e745f747970650000000019ffffffff007061796c6f61640000000edaffffffff00686561646572730000000edaffffffff00637265617465645f617400000004a0ffffffff0073656e745f617400000004a0ffffffff";
const INSERT: &str = "49000047604e000874000000013174000000056f7264657274000000036f2d3174000000076372656174656474000000087b226e223a20317d6e7400000016323032362d31312d32332031303a30303a30302b30306e";
const COMMIT: &str = "43000000000070624d300000000070624d60000303e968b8b33b";
const UPDATE: &str = "55000047604e000874000000013174000000056f7264657274000000036f2d3174000000076372656174656474000000087b226e223a20317d6e7400000016323032362d31312d32332031303a30303a30302b30307400000016323032362d31312d32332031303a30303a30312b3030";
const DELETE: &str = "44000047604b00087400000001316e6e6e6e6e6e6e";
const MESSAGE: &str = "4d010000000070624ef06f7574626f78000000001a7b226167677265676174655f74797065223a226f72646572227d";
const TRUNCATE: &str = "54000000010000004760";

#[test]
fn begin_and_commit() {
    assert_eq!(
        decode(&hex(BEGIN)).expect("begin"),
        PgOutput::Begin {
            final_lsn: Lsn(0x7062_4d30),
            commit_time: 0x0003_03e9_68b8_b33b,
            xid: 175_734,
        }
    );
    assert_eq!(
        decode(&hex(COMMIT)).expect("commit"),
        PgOutput::Commit {
            commit_lsn: Lsn(0x7062_4d30),
            end_lsn: Lsn(0x7062_4d60),
            commit_time: 0x0003_03e9_68b8_b33b,
        }
    );
}

#[test]
fn relation_lists_columns_in_table_order() {
    let PgOutput::Relation(r) = decode(&hex(RELATION)).expect("relation") else {
        panic!("not a relation");
    };
    assert_eq!(
        (r.id, r.namespace.as_str(), r.name.as_str()),
        (0x4760, "public", "outbox")
    );
    assert_eq!(r.replica_identity, b'd');
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "aggregate_type",
            "aggregate_id",
            "event_type",
            "payload",
            "headers",
            "created_at",
            "sent_at"
        ]
    );
    assert!(r.columns[0].key && !r.columns[1].key);
    assert_eq!(r.columns[0].type_oid, 20, "bigint");
    assert_eq!(r.columns[4].type_oid, 3802, "jsonb");
    assert_eq!(r.column_index("payload"), Some(4));
}

#[test]
fn insert_carries_text_values_and_nulls() {
    let PgOutput::Insert { relation, new } = decode(&hex(INSERT)).expect("insert") else {
        panic!("not an insert");
    };
    assert_eq!(relation, 0x4760);
    assert_eq!(
        new,
        vec![
            text("1"),
            text("order"),
            text("o-1"),
            text("created"),
            text("{\"n\": 1}"),
            Value::Null,
            text("2026-11-23 10:00:00+00"),
            Value::Null,
        ]
    );
}

#[test]
fn update_delete_truncate() {
    let PgOutput::Update { old, new, .. } = decode(&hex(UPDATE)).expect("update") else {
        panic!("not an update");
    };
    assert_eq!(old, None, "default replica identity sends no old row here");
    assert_eq!(new[7], text("2026-11-23 10:00:01+00"));

    let PgOutput::Delete { old, .. } = decode(&hex(DELETE)).expect("delete") else {
        panic!("not a delete");
    };
    assert_eq!(old[0], text("1"));
    assert!(
        old[1..].iter().all(|v| *v == Value::Null),
        "key columns only"
    );

    assert_eq!(
        decode(&hex(TRUNCATE)).expect("truncate"),
        PgOutput::Truncate {
            relations: vec![0x4760],
            options: 0
        }
    );
}

#[test]
fn logical_message() {
    assert_eq!(
        decode(&hex(MESSAGE)).expect("message"),
        PgOutput::LogicalMessage {
            transactional: true,
            lsn: Lsn(0x7062_4ef0),
            prefix: "outbox".into(),
            content: br#"{"aggregate_type":"order"}"#.to_vec(),
        }
    );
}

#[test]
fn origin_and_type_built_from_the_spec() {
    let mut origin = vec![b'O'];
    origin.extend_from_slice(&0x10u64.to_be_bytes());
    origin.extend_from_slice(b"upstream\0");
    assert_eq!(
        decode(&origin).expect("origin"),
        PgOutput::Origin {
            commit_lsn: Lsn(0x10),
            name: "upstream".into()
        }
    );
    let mut ty = vec![b'Y'];
    ty.extend_from_slice(&16_385u32.to_be_bytes());
    ty.extend_from_slice(b"public\0mood\0");
    assert_eq!(
        decode(&ty).expect("type"),
        PgOutput::Type {
            id: 16_385,
            namespace: "public".into(),
            name: "mood".into()
        }
    );
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    let insert = hex(INSERT);
    for cut in 0..insert.len() {
        assert!(decode(&insert[..cut]).is_err(), "prefix of {cut} bytes");
    }
    assert_eq!(decode(b"Z"), Err(DecodeError::UnknownMessage('Z')));
    let mut bad = hex(INSERT);
    bad[5] = b'X';
    assert!(matches!(
        decode(&bad),
        Err(DecodeError::UnexpectedMarker { .. })
    ));
}

#[test]
fn lsn_text_round_trip() {
    let lsn: Lsn = "0/70624D30".parse().expect("lsn");
    assert_eq!(lsn, Lsn(0x7062_4d30));
    assert_eq!(lsn.to_string(), "0/70624D30");
    assert_eq!(
        "16/B374D848".parse::<Lsn>().expect("lsn").to_string(),
        "16/B374D848"
    );
    assert!("nonsense".parse::<Lsn>().is_err());
}
