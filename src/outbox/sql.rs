//! The statements the relay runs against the outbox, built once from the
//! configuration and the discovered schema, and the decoding of claimed rows.

use std::error::Error;
use std::time::{Duration, SystemTime};

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use super::claim::claim_sql;
use super::headers::parse_headers;
use super::{OutboxSchema, quote_ident};
use crate::config::{ColumnsConfig, MarkMode, OutboxConfig};
use crate::event::{OutboxEvent, PayloadKind};

/// SQL text for one configured outbox.
#[derive(Debug, Clone)]
pub struct OutboxSql {
    /// Locks the next unsent rows until the transaction ends and flags those
    /// held back behind a row another session holds; parameters and columns
    /// in [`super::claim`].
    pub claim: String,
    /// Like `claim`, limited to ids up to `$4` (text): the one-time pass over
    /// rows that predate a replication slot.
    pub claim_until: String,
    /// `$1` = ids as text[]. Marks or deletes those rows and returns their
    /// ids as text (with mark = none, does nothing).
    pub mark: String,
    /// Unsent rows and the age in seconds of the oldest (NULL without created_at).
    pub backlog: String,
    payload_kind: PayloadKind,
}

impl OutboxSql {
    pub fn new(config: &OutboxConfig, schema: &OutboxSchema) -> Self {
        let c = &config.columns;
        let table = schema.table.to_string();
        let id = quote_ident(&c.id);
        let created_epoch =
            ColumnsConfig::optional(&c.created_at).map(|col| created_epoch(&quote_ident(col)));
        let unsent = ColumnsConfig::optional(&c.sent_at)
            .map(|s| format!(" WHERE {} IS NULL", quote_ident(s)))
            .unwrap_or_default();
        let claim = claim_sql(config, schema, false);
        let claim_until = claim_sql(config, schema, true);
        let ids = format!("{id} = ANY($1::text[]::{}[])", schema.id_type);
        let mark = match config.mark {
            // statement_timestamp(), not now(): in polling mode the mark
            // runs in the claim's transaction, whose now() is the claim,
            // before the broker confirmed anything.
            MarkMode::Update => format!(
                "UPDATE {table} SET {} = statement_timestamp() WHERE {ids} RETURNING {id}::text",
                quote_ident(&c.sent_at)
            ),
            MarkMode::Delete => format!("DELETE FROM {table} WHERE {ids} RETURNING {id}::text"),
            // Nothing to mark; the statement still checks the ids parse.
            MarkMode::None => format!("SELECT count(*) FROM {table} WHERE false AND {ids}"),
        };
        let oldest = created_epoch
            .map(|epoch| format!("(extract(epoch FROM now()) - min({epoch}))::float8"))
            .unwrap_or_else(|| "NULL::float8".into());
        let backlog = format!("SELECT count(*), {oldest} FROM {table}{unsent}");
        OutboxSql {
            claim,
            claim_until,
            mark,
            backlog,
            payload_kind: schema.payload_kind,
        }
    }

    /// Turns one row of [`OutboxSql::claim`] into an event, and whether it
    /// is held back behind a row of its aggregate that another session holds.
    pub fn decode(&self, row: &Row) -> Result<(OutboxEvent, bool), tokio_postgres::Error> {
        let held_back: bool = row.try_get(7)?;
        Ok((self.decode_event(row)?, held_back))
    }

    fn decode_event(&self, row: &Row) -> Result<OutboxEvent, tokio_postgres::Error> {
        let headers: Option<&str> = row.try_get(5)?;
        let created_micros: Option<i64> = row.try_get(6)?;
        // NULLs in a hand-made table must not wedge the relay on one row:
        // they become empty values (a NULL payload is a tombstone).
        let text = |i| {
            row.try_get::<_, Option<String>>(i)
                .map(Option::unwrap_or_default)
        };
        Ok(OutboxEvent {
            id: text(0)?,
            aggregate_type: text(1)?,
            aggregate_id: text(2)?,
            event_type: text(3)?,
            payload: row
                .try_get::<_, Option<RawBytes>>(4)?
                .map(|raw| raw.0)
                .unwrap_or_default(),
            payload_kind: self.payload_kind,
            headers: headers.map(parse_headers).unwrap_or_default(),
            created_at: created_micros.map(from_unix_micros),
        })
    }
}

/// The first instant a created_at may name: 10000-01-01 00:00:00 UTC, in
/// seconds since the Unix epoch. Later times, like times before 1970,
/// `infinity` and `-infinity`, mean "no created_at" (docs/columns.md).
pub const CREATED_AT_END_EPOCH: i64 = 253_402_300_800;

/// SQL for a created_at column's seconds since the Unix epoch, NULL unless
/// the value is finite and in [1970-01-01, 10000-01-01) UTC. Total for every
/// value a `timestamptz`, `timestamp` (read as UTC) or `date` (midnight UTC)
/// can hold: `extract` gives ±Infinity for the infinities, never an error,
/// and the bound keeps the later conversion to microseconds within int8.
pub(super) fn created_epoch(column: &str) -> String {
    let epoch = format!("extract(epoch FROM {column})");
    format!("CASE WHEN {epoch} >= 0 AND {epoch} < {CREATED_AT_END_EPOCH} THEN {epoch} END")
}

/// Microseconds since the Unix epoch as a time.
pub fn from_unix_micros(micros: i64) -> SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// A text or bytea value as the bytes Postgres sent, without copying through
/// `String`: the payload is published byte-for-byte.
struct RawBytes(Vec<u8>);

impl<'a> FromSql<'a> for RawBytes {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(RawBytes(raw.to_vec()))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TEXT || *ty == Type::BYTEA
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::TableName;

    fn schema(kind: PayloadKind) -> OutboxSchema {
        OutboxSchema {
            table: TableName::parse("public.outbox").expect("valid"),
            id_type: "bigint".into(),
            payload_kind: kind,
            columns: Vec::new(),
        }
    }

    #[test]
    fn default_statements() {
        let sql = OutboxSql::new(&OutboxConfig::default(), &schema(PayloadKind::Json));
        assert!(
            sql.claim
                .starts_with("WITH candidates AS MATERIALIZED (SELECT o.\"id\" AS r_id, ")
        );
        assert!(sql.claim.contains(
            "FROM \"public\".\"outbox\" AS o WHERE o.\"sent_at\" IS NULL \
             AND coalesce(o.\"aggregate_id\"::text, '') <> ALL($2::text[]) \
             AND o.\"id\" <> ALL($3::text[]::bigint[]) \
             ORDER BY o.\"id\" LIMIT $1), claimed AS MATERIALIZED"
        ));
        assert!(
            sql.claim
                .contains("ORDER BY o.\"id\" FOR UPDATE SKIP LOCKED")
        );
        assert!(sql.claim.contains(
            "(CASE WHEN extract(epoch FROM c.r_created_at) >= 0 \
             AND extract(epoch FROM c.r_created_at) < 253402300800 \
             THEN extract(epoch FROM c.r_created_at) END * 1000000)::int8"
        ));
        assert!(sql.claim.ends_with("FROM claimed AS c ORDER BY c.r_id"));
        assert!(sql.claim_until.contains("o.\"id\" <= $4::text::bigint"));

        assert_eq!(
            sql.mark,
            "UPDATE \"public\".\"outbox\" SET \"sent_at\" = statement_timestamp() WHERE \"id\" = ANY($1::text[]::bigint[]) \
             RETURNING \"id\"::text"
        );
    }

    #[test]
    fn debezium_shaped_statements() {
        let mut config = OutboxConfig {
            table: "outbox_dbz".into(),
            mark: MarkMode::Delete,
            order_by: "timestamp".into(),
            ..OutboxConfig::default()
        };
        config.columns.headers = String::new();
        config.columns.created_at = "timestamp".into();
        config.columns.sent_at = String::new();
        let mut s = schema(PayloadKind::Binary);
        s.table = TableName::parse("outbox_dbz").expect("valid");
        s.id_type = "uuid".into();
        let sql = OutboxSql::new(&config, &s);
        assert!(sql.claim.contains("c.r_payload, NULL::text"));
        assert!(sql.claim.contains(
            "FROM \"outbox_dbz\" AS o WHERE coalesce(o.\"aggregate_id\"::text, '') <> ALL($2::text[]) \
             AND o.\"id\" <> ALL($3::text[]::uuid[]) \
             ORDER BY o.\"timestamp\", o.\"id\" LIMIT $1"
        ));
        assert!(
            sql.claim
                .contains("(held.k_order, held.r_id) < (c.k_order, c.r_id)")
        );
        assert!(sql.claim.ends_with("ORDER BY c.k_order, c.r_id"));
        assert_eq!(
            sql.mark,
            "DELETE FROM \"outbox_dbz\" WHERE \"id\" = ANY($1::text[]::uuid[]) \
             RETURNING \"id\"::text"
        );
    }
}
