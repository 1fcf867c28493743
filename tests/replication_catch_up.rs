//! Replication mode on a table that already holds unsent rows: they are
//! published first by a one-time pass, then streaming continues with no gap
//! and no event twice.

mod support;

use std::time::Duration;

use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_before_the_slot_come_first_then_the_stream() {
    let setup = Setup::replication(100).await;
    let mut written = writers::write(&setup.db.url, 2, 300, 3, Duration::ZERO).await;

    let relay = setup.start_relay().await;
    written.extend(writers::write(&setup.db.url, 2, 300, 3, Duration::from_millis(1)).await);
    let (report, _) = setup.settle("replication catch-up", &written).await;
    assert_eq!(
        report.duplicates, 0,
        "the pass and the stream do not overlap"
    );
    assert!(
        relay
            .log_text()
            .contains("publishing rows written before the replication slot existed")
    );
    setup.queue.delete().await;
}
