//! `/readyz` tells the truth about whether this relay can publish: a relay
//! that cannot even try for the lease (no outbox table, so nobody can lead)
//! is not ready and says why; a leader whose broker blocked its connection
//! (a RabbitMQ memory alarm) reports "blocked" with 503 and the
//! `outbox_relay_broker_blocked` gauge (on a RabbitMQ node of the test's
//! own).

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::db::TestDb;
use support::eventually;
use support::rabbit::TestQueue;
use support::rabbit_node::RabbitNode;
use support::relay::{Relay, RelayConfig, http_get};
use support::setup::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_cannot_lead_is_not_ready() {
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    // No migrate: the outbox table does not exist.
    let config = RelayConfig::new(&db, &queue.exchange);
    let relay = Relay::start(&config);
    let seen = Mutex::new(String::new());
    eventually(Duration::from_secs(30), "/readyz says why", || async {
        let Some((status, body)) = http_get(relay.port, "/readyz").await else {
            return false;
        };
        *seen.lock().expect("lock") = format!("{status} {body}");
        status == 503 && body.contains("cannot lead") && body.contains("does not exist")
    })
    .await;
    let last = seen.lock().expect("lock").clone();
    println!("before migrate: {last}");
    assert!(last.contains("role: standby"), "{last}");

    config.migrate();
    eventually(Duration::from_secs(30), "ready once the table exists", || async {
        matches!(http_get(relay.port, "/readyz").await, Some((200, body)) if body.contains("role: leader"))
    })
    .await;
    queue.delete().await;
}

/// Puts a node's memory alarm on, and restores the watermark it found
/// when dropped (also when the test fails).
struct MemoryAlarm<'a> {
    node: &'a RabbitNode,
    watermark: String,
}

impl<'a> MemoryAlarm<'a> {
    fn raise(node: &'a RabbitNode) -> Self {
        let watermark = node
            .ctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."])
            .trim()
            .to_owned();
        assert!(watermark.parse::<f64>().is_ok(), "watermark: {watermark}");
        let alarm = MemoryAlarm { node, watermark };
        node.ctl(&["set_vm_memory_high_watermark", "0.0000001"]);
        alarm
    }
}

impl Drop for MemoryAlarm<'_> {
    fn drop(&mut self) {
        let watermark = self.watermark.clone();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.node.ctl(&["set_vm_memory_high_watermark", &watermark]);
        }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_connection_is_not_ready() {
    let node = RabbitNode::start();
    let setup = Setup::on(&support::db::server(), &node.url, 10).await;
    let relay = setup.start_relay().await;
    let gauge = "outbox_relay_broker_blocked";
    assert_eq!(relay.metric(gauge).await, Some(0.0));

    let seen = Mutex::new(String::new());
    {
        let _alarm = MemoryAlarm::raise(&node);
        // A publishing connection is what RabbitMQ blocks.
        setup.db.psql(
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
             VALUES ('order', 'o-1', 'created', '{}')",
        );
        eventually(Duration::from_secs(8), "/readyz says blocked", || async {
            let Some((status, body)) = http_get(relay.port, "/readyz").await else {
                return false;
            };
            *seen.lock().expect("lock") = format!("{status} {body}");
            status == 503 && body.contains("broker: blocked")
        })
        .await;
        assert_eq!(relay.metric(gauge).await, Some(1.0));
    }
    println!("during the alarm: {}", seen.lock().expect("lock"));
    eventually(Duration::from_secs(30), "ready after the alarm", || async {
        matches!(http_get(relay.port, "/readyz").await, Some((200, _)))
    })
    .await;
    assert_eq!(relay.metric(gauge).await, Some(0.0));
    eventually(
        Duration::from_secs(30),
        "the event is published",
        || async { setup.db.unsent().await == 0 },
    )
    .await;
    setup.queue.delete().await;
}
