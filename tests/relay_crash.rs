//! The relay is killed with SIGKILL mid-stream, twice, and restarted:
//! nothing is lost, order holds, duplicates are counted and bounded.

mod support;

use support::scenarios::crash_and_restart;
use support::setup::Setup;

const BATCH: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_and_restart_loses_nothing() {
    let setup = Setup::new(BATCH).await;
    crash_and_restart(&setup, "relay crash", 2, BATCH).await;
    setup.queue.delete().await;
}
