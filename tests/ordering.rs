//! Per-aggregate order holds when events arrive faster than small batches
//! drain them, and ids compare as numbers (id 10 after id 9).

mod support;

use std::time::Duration;

use support::setup::Setup;
use support::writers;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_aggregate_order_holds() {
    let setup = Setup::new(7).await;
    let _relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 3, 400, 2, Duration::ZERO).await;
    let (report, _) = setup.settle("ordering", &written).await;
    assert_eq!(report.duplicates, 0, "no failures, so no duplicates");
    setup.queue.delete().await;
}
