//! The polling claim: one statement that locks the next unsent rows and
//! says which of them must wait for a row another session holds.
//!
//! `FOR UPDATE SKIP LOCKED` passes over a row locked by someone else (an
//! operator fixing it after a dead letter, an application transaction), so
//! on its own it would let that aggregate's later rows overtake it. In one
//! statement (one snapshot) the claim therefore reads the window of the
//! first `$1` unsent rows in order without locking, then locks those it can
//! with `SKIP LOCKED`; every row of the window it could not lock is *held*: each claimed row of the same aggregate ordered after a
//! held row comes back flagged `held_back`. The caller publishes only the
//! rows not held back; the held-back ones stay locked by its transaction
//! until it ends and are claimed again next time. Other aggregates go on.
//!
//! Result columns, in order: id, aggregate_type, aggregate_id, event_type
//! (all text), payload (text or bytea), headers (text), created_at
//! (microseconds since the Unix epoch, int8), held_back (bool).
//!
//! Parameters: `$1` the limit (int8); `$2` aggregate ids (text[]) and `$3`
//! row ids (text[]) to leave out, both empty on a first round (see
//! [`crate::source::PollingSource`]); `$4` (text) the highest id, for the
//! catch-up pass only.

use super::{OutboxSchema, quote_ident};
use crate::config::{ColumnsConfig, OutboxConfig};
use crate::event::PayloadKind;

/// The claim statement; `until` adds the `$4` bound of the catch-up pass.
pub fn claim_sql(config: &OutboxConfig, schema: &OutboxSchema, until: bool) -> String {
    let c = &config.columns;
    let table = schema.table.to_string();
    let id = quote_ident(&c.id);
    let aggregate_id = quote_ident(&c.aggregate_id);
    let order_column = (config.order_column() != c.id).then(|| quote_ident(config.order_column()));

    // The rows a round may take, for the table alias `a`.
    let filter = |a: &str| {
        let mut parts: Vec<String> = Vec::new();
        if let Some(sent_at) = ColumnsConfig::optional(&c.sent_at) {
            parts.push(format!("{a}.{} IS NULL", quote_ident(sent_at)));
        }
        if until {
            parts.push(format!("{a}.{id} <= $4::text::{}", schema.id_type));
        }
        parts.push(format!(
            "coalesce({a}.{aggregate_id}::text, '') <> ALL($2::text[])"
        ));
        parts.push(format!("{a}.{id} <> ALL($3::text[]::{}[])", schema.id_type));
        parts.join(" AND ")
    };
    // The order, as the table's own columns (so the index serves it) or as
    // the claimed CTE's copies of them.
    let (order, claimed_order) = match &order_column {
        None => (format!("o.{id}"), "c.r_id"),
        Some(col) => (format!("o.{col}, o.{id}"), "c.k_order, c.r_id"),
    };
    let optional = |name: &str, alias: &str| {
        ColumnsConfig::optional(name)
            .map(|col| format!(", o.{} AS {alias}", quote_ident(col)))
            .unwrap_or_default()
    };
    let order_copy = order_column
        .as_ref()
        .map(|col| format!(", o.{col} AS k_order"))
        .unwrap_or_default();
    // The window: the first `$1` unsent rows in order, read without locks
    // by the same index scan as any claim (which skips dead index entries).
    let candidates = format!(
        "SELECT o.{id} AS r_id, coalesce(o.{aggregate_id}::text, '') AS k_aggregate{order_copy} \
         FROM {table} AS o WHERE {} ORDER BY {order} LIMIT $1",
        filter("o"),
    );
    // Raw columns, not text casts: the CTE is materialized, and a TOASTed
    // payload stays a pointer in it until the final select reads it.
    let claimed = format!(
        "SELECT o.{id} AS r_id, o.{} AS r_aggregate_type, o.{aggregate_id} AS r_aggregate_id, \
         o.{} AS r_event_type, o.{} AS r_payload{}{}, \
         coalesce(o.{aggregate_id}::text, '') AS k_aggregate{order_copy} \
         FROM {table} AS o WHERE o.{id} IN (SELECT r_id FROM candidates) AND {} \
         ORDER BY {order} FOR UPDATE SKIP LOCKED",
        quote_ident(&c.aggregate_type),
        quote_ident(&c.event_type),
        quote_ident(&c.payload),
        optional(&c.headers, "r_headers"),
        optional(&c.created_at, "r_created_at"),
        filter("o"),
    );
    // Rows of the window this statement could not lock: someone else holds them.
    let held = "SELECT k.* FROM candidates AS k \
                WHERE NOT EXISTS (SELECT 1 FROM claimed AS c WHERE c.r_id = k.r_id)";
    let before = match &order_column {
        None => "held.r_id < c.r_id",
        Some(_) => "(held.k_order, held.r_id) < (c.k_order, c.r_id)",
    };
    let payload = match schema.payload_kind {
        PayloadKind::Binary => "c.r_payload".to_owned(),
        PayloadKind::Json | PayloadKind::Text => "c.r_payload::text".to_owned(),
    };
    let headers = if ColumnsConfig::optional(&c.headers).is_some() {
        "c.r_headers::text"
    } else {
        "NULL::text"
    };
    let created_micros = if ColumnsConfig::optional(&c.created_at).is_some() {
        format!(
            "({} * 1000000)::int8",
            super::sql::created_epoch("c.r_created_at")
        )
    } else {
        "NULL::int8".to_owned()
    };
    format!(
        "WITH candidates AS MATERIALIZED ({candidates}), claimed AS MATERIALIZED ({claimed}), \
         held AS MATERIALIZED ({held}) \
         SELECT c.r_id::text, c.r_aggregate_type::text, c.r_aggregate_id::text, \
         c.r_event_type::text, {payload}, {headers}, {created_micros}, \
         EXISTS (SELECT 1 FROM held WHERE held.k_aggregate = c.k_aggregate AND {before}) \
         FROM claimed AS c ORDER BY {claimed_order}"
    )
}
