//! The events every run writes: ~300-byte JSON payloads over 1000
//! aggregates, the same in the SQL that fills the outbox and in the messages
//! the broker baselines publish, so relay and baselines move the same bytes.

/// Aggregates the events are spread over.
pub const AGGREGATES: u64 = 1000;

/// The aggregate type; with the relay's default routing key template, the
/// RabbitMQ routing key is `order.created`.
pub const AGGREGATE_TYPE: &str = "order";

/// The event type.
pub const EVENT_TYPE: &str = "created";

/// The `headers` column of every row.
pub const HEADERS_JSON: &str = r#"{"tenant": "bench"}"#;

/// SQL for the payload of event number `{seq}` (a SQL expression), as the
/// preload and the writers insert it.
pub fn payload_sql(seq: &str) -> String {
    format!(
        "jsonb_build_object('seq', {seq}, 'customer', 'c-' || ({seq} % 977), 'note', repeat('x', 220))"
    )
}

/// The aggregate of event number `seq`, in SQL.
pub fn aggregate_sql(seq: &str) -> String {
    format!("'agg-' || ({seq} % {AGGREGATES})")
}

/// The payload of event number `seq` as Postgres renders the jsonb of
/// [`payload_sql`] (keys sorted by length, then bytes): the broker baselines
/// publish exactly these bytes.
pub fn payload(seq: u64) -> Vec<u8> {
    format!(
        r#"{{"seq": {seq}, "note": "{}", "customer": "c-{}"}}"#,
        "x".repeat(220),
        seq % 977
    )
    .into_bytes()
}

/// The aggregate id of event number `seq`.
pub fn aggregate(seq: u64) -> String {
    format!("agg-{}", seq % AGGREGATES)
}

#[cfg(test)]
mod tests {
    #[test]
    fn payload_is_about_300_bytes() {
        let len = super::payload(123_456).len();
        assert!((250..=320).contains(&len), "{len}");
    }
}
