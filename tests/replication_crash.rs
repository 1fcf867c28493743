//! Replication mode: the relay is SIGKILLed mid-stream twice and restarted;
//! the slot redelivers only the unconfirmed tail: nothing lost, order kept,
//! duplicates bounded.

mod support;

use support::scenarios::crash_and_restart;
use support::setup::Setup;

const BATCH: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_restart_loses_nothing() {
    let setup = Setup::replication(BATCH).await;
    crash_and_restart(&setup, "replication crash", 2, BATCH).await;
    setup.queue.delete().await;
}
