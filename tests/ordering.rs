//! Per-aggregate order holds when events arrive faster than small batches
//! drain them, and ids compare as numbers (id 10 after id 9).

mod support;

use std::time::Duration;

use support::checker::verify;
use support::db::TestDb;
use support::rabbit::TestQueue;
use support::relay::{Relay, RelayConfig};
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_aggregate_order_holds() {
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config.set("source.polling", "batch_size", "7");
    config.migrate();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;

    let written = writers::write(&db.url, 3, 400, 2, Duration::ZERO).await;
    support::eventually(Duration::from_secs(60), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let received = queue.drain(written.len(), Duration::from_secs(60)).await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!("ordering: {report}");

    queue.delete().await;
}
