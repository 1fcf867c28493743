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

/// Property tests: whatever bytes arrive, decoding (and turning what
/// decodes into events) returns a result and never panics.
mod properties {
    use std::time::SystemTime;

    use proptest::prelude::*;

    use super::super::*;
    use crate::config::OutboxConfig;
    use crate::source::replication::mapping::{RowMapping, from_pg_micros, message_event};

    fn put_cstring(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }

    fn put_tuple(out: &mut Vec<u8>, tuple: &Tuple) {
        out.extend_from_slice(&(tuple.len() as i16).to_be_bytes());
        for value in tuple {
            match value {
                Value::Null => out.push(b'n'),
                Value::Unchanged => out.push(b'u'),
                Value::Text(b) | Value::Binary(b) => {
                    out.push(if matches!(value, Value::Text(_)) {
                        b't'
                    } else {
                        b'b'
                    });
                    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    out.extend_from_slice(b);
                }
            }
        }
    }

    /// The protocol's encoding of `message`, as the server would send it.
    fn encode(message: &PgOutput) -> Vec<u8> {
        let mut out = Vec::new();
        match message {
            PgOutput::Begin {
                final_lsn,
                commit_time,
                xid,
            } => {
                out.push(b'B');
                out.extend_from_slice(&final_lsn.0.to_be_bytes());
                out.extend_from_slice(&commit_time.to_be_bytes());
                out.extend_from_slice(&xid.to_be_bytes());
            }
            PgOutput::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
            } => {
                out.extend_from_slice(b"C\0");
                out.extend_from_slice(&commit_lsn.0.to_be_bytes());
                out.extend_from_slice(&end_lsn.0.to_be_bytes());
                out.extend_from_slice(&commit_time.to_be_bytes());
            }
            PgOutput::Origin { commit_lsn, name } => {
                out.push(b'O');
                out.extend_from_slice(&commit_lsn.0.to_be_bytes());
                put_cstring(&mut out, name);
            }
            PgOutput::Relation(r) => {
                out.push(b'R');
                out.extend_from_slice(&r.id.to_be_bytes());
                put_cstring(&mut out, &r.namespace);
                put_cstring(&mut out, &r.name);
                out.push(r.replica_identity);
                out.extend_from_slice(&(r.columns.len() as i16).to_be_bytes());
                for c in &r.columns {
                    out.push(u8::from(c.key));
                    put_cstring(&mut out, &c.name);
                    out.extend_from_slice(&c.type_oid.to_be_bytes());
                    out.extend_from_slice(&c.type_modifier.to_be_bytes());
                }
            }
            PgOutput::Type {
                id,
                namespace,
                name,
            } => {
                out.push(b'Y');
                out.extend_from_slice(&id.to_be_bytes());
                put_cstring(&mut out, namespace);
                put_cstring(&mut out, name);
            }
            PgOutput::Insert { relation, new } => {
                out.push(b'I');
                out.extend_from_slice(&relation.to_be_bytes());
                out.push(b'N');
                put_tuple(&mut out, new);
            }
            PgOutput::Update { relation, old, new } => {
                out.push(b'U');
                out.extend_from_slice(&relation.to_be_bytes());
                if let Some(old) = old {
                    out.push(b'O');
                    put_tuple(&mut out, old);
                }
                out.push(b'N');
                put_tuple(&mut out, new);
            }
            PgOutput::Delete { relation, old } => {
                out.push(b'D');
                out.extend_from_slice(&relation.to_be_bytes());
                out.push(b'K');
                put_tuple(&mut out, old);
            }
            PgOutput::Truncate { relations, options } => {
                out.push(b'T');
                out.extend_from_slice(&(relations.len() as u32).to_be_bytes());
                out.push(*options);
                for r in relations {
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            PgOutput::LogicalMessage {
                transactional,
                lsn,
                prefix,
                content,
            } => {
                out.push(b'M');
                out.push(u8::from(*transactional));
                out.extend_from_slice(&lsn.0.to_be_bytes());
                put_cstring(&mut out, prefix);
                out.extend_from_slice(&(content.len() as i32).to_be_bytes());
                out.extend_from_slice(content);
            }
        }
        out
    }

    /// Names without NUL (the protocol's strings end at one).
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[^\\x00]{0,12}",
            1 => "[^\\x00]{200,300}",
            2 => prop::sample::select(vec![
                "id", "aggregate_type", "aggregate_id", "event_type", "payload",
                "headers", "created_at", "sent_at", "public", "outbox",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            6 => prop::collection::vec(any::<u8>(), 0..64),
            1 => prop::collection::vec(any::<u8>(), 256..2048),
            2 => crate::event::arbitrary::json().prop_map(|j| j.to_string().into_bytes()),
            2 => prop::sample::select(vec![
                "infinity", "-infinity", "2026-11-23 10:00:00+00", "294276-12-31 23:59:59.999999+00",
                "4713-01-01 00:00:00+00 BC", "10000-01-01 00:00:00+00", "2026-11-23 10:00:00",
                "\\x00ff", "\\xzz", "{\"a\": 1e400}", "[1,2]", "",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            1 => Just(Value::Null),
            1 => Just(Value::Unchanged),
            6 => bytes().prop_map(Value::Text),
            1 => bytes().prop_map(Value::Binary),
        ]
    }

    fn tuple() -> impl Strategy<Value = Tuple> {
        prop::collection::vec(value(), 0..12)
    }

    fn relation() -> impl Strategy<Value = Relation> {
        let oid = prop_oneof![
            prop::sample::select(vec![20u32, 23, 25, 17, 114, 3802, 1043, 1114, 1184, 2950]),
            any::<u32>(),
        ];
        let column = (any::<bool>(), name(), oid, any::<i32>()).prop_map(
            |(key, name, type_oid, type_modifier)| Column {
                key,
                name,
                type_oid,
                type_modifier,
            },
        );
        (
            any::<u32>(),
            name(),
            name(),
            any::<u8>(),
            prop::collection::vec(column, 0..12),
        )
            .prop_map(
                |(id, namespace, name, replica_identity, columns)| Relation {
                    id,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                },
            )
    }

    fn lsn() -> impl Strategy<Value = Lsn> {
        any::<u64>().prop_map(Lsn)
    }

    fn message() -> impl Strategy<Value = PgOutput> {
        prop_oneof![
            (lsn(), any::<i64>(), any::<u32>()).prop_map(|(final_lsn, commit_time, xid)| {
                PgOutput::Begin {
                    final_lsn,
                    commit_time,
                    xid,
                }
            }),
            (lsn(), lsn(), any::<i64>()).prop_map(|(commit_lsn, end_lsn, commit_time)| {
                PgOutput::Commit {
                    commit_lsn,
                    end_lsn,
                    commit_time,
                }
            }),
            (lsn(), name()).prop_map(|(commit_lsn, name)| PgOutput::Origin { commit_lsn, name }),
            relation().prop_map(PgOutput::Relation),
            (any::<u32>(), name(), name()).prop_map(|(id, namespace, name)| PgOutput::Type {
                id,
                namespace,
                name
            }),
            (any::<u32>(), tuple()).prop_map(|(relation, new)| PgOutput::Insert { relation, new }),
            (any::<u32>(), prop::option::of(tuple()), tuple())
                .prop_map(|(relation, old, new)| PgOutput::Update { relation, old, new }),
            (any::<u32>(), tuple()).prop_map(|(relation, old)| PgOutput::Delete { relation, old }),
            (prop::collection::vec(any::<u32>(), 0..8), any::<u8>())
                .prop_map(|(relations, options)| PgOutput::Truncate { relations, options }),
            (any::<bool>(), lsn(), name(), bytes()).prop_map(
                |(transactional, lsn, prefix, content)| PgOutput::LogicalMessage {
                    transactional,
                    lsn,
                    prefix,
                    content,
                }
            ),
        ]
    }

    /// Message type bytes the decoder knows, to get past the first check.
    const TAGS: &[u8] = b"BCORYIUDTM";

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn any_bytes_decode_to_a_result(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_bytes_after_a_known_tag_decode_to_a_result(
            tag in prop::sample::select(TAGS),
            rest in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut bytes = vec![tag];
            bytes.extend(rest);
            let _ = decode(&bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn well_formed_messages_decode_and_every_prefix_is_an_error(message in message()) {
            let bytes = encode(&message);
            prop_assert_eq!(decode(&bytes), Ok(message));
            // Every cut of small messages, a few hundred of large ones.
            let step = (bytes.len() / 256).max(1);
            for cut in (0..bytes.len()).step_by(step).chain([bytes.len() - 1]) {
                prop_assert!(decode(&bytes[..cut]).is_err(), "prefix of {} bytes", cut);
            }
        }

        #[test]
        fn well_formed_messages_with_one_byte_changed_decode_to_a_result(
            message in message(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = encode(&message);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            let _ = decode(&bytes);
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_relation_and_row_make_an_event_or_an_error(
            relation in relation(),
            row in tuple(),
            commit_time in any::<i64>(),
        ) {
            if let Ok(mapping) = RowMapping::new(&relation, &OutboxConfig::default()) {
                let _ = mapping.event(&row, from_pg_micros(commit_time));
            }
        }

        #[test]
        fn the_outbox_relation_maps_any_row(row in prop::collection::vec(value(), 0..12)) {
            let PgOutput::Relation(relation) = decode(&super::hex(super::RELATION)).expect("relation") else {
                panic!("not a relation");
            };
            let mapping = RowMapping::new(&relation, &OutboxConfig::default()).expect("mapping");
            let _ = mapping.event(&row, SystemTime::UNIX_EPOCH);
        }

        #[test]
        fn any_logical_message_makes_an_event(lsn in lsn(), content in bytes(), commit_time in any::<i64>()) {
            let event = message_event(lsn, &content, from_pg_micros(commit_time));
            prop_assert_eq!(event.id, lsn.to_string());
        }
    }
}
