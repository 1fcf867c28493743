//! The relay is killed with SIGKILL mid-stream, twice, and restarted:
//! nothing is lost, order holds, duplicates are counted and bounded.

mod support;

use std::time::Duration;

use support::checker::verify;
use support::db::TestDb;
use support::rabbit::TestQueue;
use support::relay::{Relay, RelayConfig};
use support::writers;

const BATCH: usize = 200;
const KILLS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_restart_loses_nothing() {
    let db = TestDb::new();
    let queue = TestQueue::new().await;
    let mut config = RelayConfig::new(&db, &queue.exchange);
    config.set("source.polling", "batch_size", &BATCH.to_string());
    config.migrate();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;

    let url = db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 1250, 10, Duration::from_millis(1)).await },
        );
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        relay.sigkill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay = Relay::start(&config);
        relay.wait_ready().await;
    }
    let written = writing.await.expect("writers");

    support::eventually(Duration::from_secs(90), "all rows marked", || async {
        db.unsent().await == 0
    })
    .await;
    let received = queue.drain(written.len(), Duration::from_secs(60)).await;
    let ids: Vec<String> = received.iter().map(|m| m.message_id()).collect();
    let report = verify(&written, &ids);
    println!("relay crash x{KILLS}: {report}");
    // A kill can only repeat the one batch that was published but not yet
    // marked.
    assert!(
        report.duplicates <= KILLS * BATCH,
        "too many duplicates: {report}"
    );
    queue.delete().await;
}
