//! Header numbers arrive intact: one outside f64's range does not drop the
//! row's other headers, an integer past i64 and a decimal f64 cannot hold
//! arrive as their exact text, i64 integers as long-long ints and ordinary
//! decimals as doubles; a headers value that is not an object arrives as the
//! one header `headers`.

mod support;

use std::time::Duration;

use lapin::types::{AMQPValue, LongString};
use support::rabbit::Received;
use support::setup::Setup;

fn header(message: &Received, name: &str) -> Option<AMQPValue> {
    message
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get(name)
        .cloned()
}

fn text(value: &str) -> Option<AMQPValue> {
    Some(AMQPValue::LongString(LongString::from(value)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn header_numbers_are_published_exactly() {
    let setup = Setup::new(10).await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) VALUES \
         ('order', 'o-1', 'created', '{}', '{\"huge\": 1e400, \"tenant\": \"acme\"}'), \
         ('order', 'o-1', 'created', '{}', \
          '{\"big\": 12345678901234567890, \"small\": -42, \"pi\": 1234.5678, \
            \"long\": 0.1000000000000000000001, \"list\": [1, 1e400]}'), \
         ('order', 'o-1', 'created', '{}', '[\"a\", 2]')",
    );
    // jsonb keeps numerics exactly and prints 1e400 in full.
    let huge = setup
        .db
        .psql("SELECT headers->>'huge' FROM outbox WHERE id = 1");
    let huge = huge.trim();
    assert_eq!(huge.len(), 401, "{huge}");

    let _relay = setup.start_relay().await;
    let received = setup.queue.drain(3, Duration::from_secs(30)).await;
    let [first, second, third] = &received[..3] else {
        unreachable!()
    };
    assert_eq!(header(first, "tenant"), text("acme"));
    assert_eq!(header(first, "huge"), text(huge));
    assert_eq!(header(second, "big"), text("12345678901234567890"));
    assert_eq!(header(second, "small"), Some(AMQPValue::LongLongInt(-42)));
    assert_eq!(header(second, "pi"), Some(AMQPValue::Double(1234.5678)));
    assert_eq!(header(second, "long"), text("0.1000000000000000000001"));
    let list = setup
        .db
        .psql("SELECT headers->'list' FROM outbox WHERE id = 2");
    assert_eq!(header(second, "list"), text(list.trim()));
    assert_eq!(header(third, "headers"), text("[\"a\",2]"));
    assert_eq!(header(third, "event_id"), text("3"));
}
