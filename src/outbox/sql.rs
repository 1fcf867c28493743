//! The statements the relay runs against the outbox, built once from the
//! configuration and the discovered schema, and the decoding of claimed rows.

use std::error::Error;
use std::time::{Duration, SystemTime};

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use super::headers::parse_headers;
use super::{OutboxSchema, quote_ident};
use crate::config::{ColumnsConfig, MarkMode, OutboxConfig};
use crate::event::{OutboxEvent, PayloadKind};

/// SQL text for one configured outbox.
#[derive(Debug, Clone)]
pub struct OutboxSql {
    /// `$1` = limit (int8). Locks the rows it returns until the transaction ends.
    pub claim: String,
    /// Like `claim`, limited to ids up to `$2` (text): the one-time pass over
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
        let payload = match schema.payload_kind {
            PayloadKind::Binary => quote_ident(&c.payload),
            PayloadKind::Json | PayloadKind::Text => format!("{}::text", quote_ident(&c.payload)),
        };
        let headers = ColumnsConfig::optional(&c.headers)
            .map(|h| format!("{}::text", quote_ident(h)))
            .unwrap_or_else(|| "NULL::text".into());
        let created_at = ColumnsConfig::optional(&c.created_at).map(quote_ident);
        let created_micros = created_at
            .as_ref()
            .map(|col| format!("(extract(epoch FROM {col}) * 1000000)::int8"))
            .unwrap_or_else(|| "NULL::int8".into());
        let unsent = ColumnsConfig::optional(&c.sent_at)
            .map(|s| format!(" WHERE {} IS NULL", quote_ident(s)))
            .unwrap_or_default();
        // Qualified, so ORDER BY names the table's columns and not the
        // text-cast output columns of the same name (which would sort "10"
        // before "9" and defeat the index).
        let order = if config.order_column() == c.id {
            format!("o.{id}")
        } else {
            format!("o.{}, o.{id}", quote_ident(config.order_column()))
        };

        let select = format!(
            "SELECT {id}::text, {}::text, {}::text, {}::text, {payload}, {headers}, {created_micros} \
             FROM {table} AS o",
            quote_ident(&c.aggregate_type),
            quote_ident(&c.aggregate_id),
            quote_ident(&c.event_type),
        );
        let claim = format!("{select}{unsent} ORDER BY {order} LIMIT $1 FOR UPDATE SKIP LOCKED");
        let bound = format!("o.{id} <= $2::text::{}", schema.id_type);
        let claim_until = if unsent.is_empty() {
            format!("{select} WHERE {bound} ORDER BY {order} LIMIT $1 FOR UPDATE SKIP LOCKED")
        } else {
            format!("{select}{unsent} AND {bound} ORDER BY {order} LIMIT $1 FOR UPDATE SKIP LOCKED")
        };
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
        let oldest = created_at
            .map(|col| format!("extract(epoch FROM now() - min({col}))::float8"))
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

    /// Turns one row of [`OutboxSql::claim`] into an event.
    pub fn decode(&self, row: &Row) -> Result<OutboxEvent, tokio_postgres::Error> {
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
        assert_eq!(
            sql.claim,
            "SELECT \"id\"::text, \"aggregate_type\"::text, \"aggregate_id\"::text, \
             \"event_type\"::text, \"payload\"::text, \"headers\"::text, \
             (extract(epoch FROM \"created_at\") * 1000000)::int8 FROM \"public\".\"outbox\" AS o \
             WHERE \"sent_at\" IS NULL ORDER BY o.\"id\" LIMIT $1 FOR UPDATE SKIP LOCKED"
        );
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
        assert!(sql.claim.contains("\"payload\", NULL::text"));
        assert!(
            sql.claim
                .contains("FROM \"outbox_dbz\" AS o ORDER BY o.\"timestamp\", o.\"id\"")
        );
        assert_eq!(
            sql.mark,
            "DELETE FROM \"outbox_dbz\" WHERE \"id\" = ANY($1::text[]::uuid[]) \
             RETURNING \"id\"::text"
        );
    }
}
