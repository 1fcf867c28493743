//! PostgreSQL restarts under the relay while events are written: nothing is
//! lost, order holds, duplicates are bounded.

mod support;

use support::restart_postgres;
use support::scenarios::outage;
use support::setup::Setup;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_loses_nothing() {
    let setup = Setup::new(BATCH).await;
    let metrics = outage(&setup, "postgres restart", BATCH, restart_postgres).await;
    assert!(
        // The source reconnects, or (when the restart cost the leader its
        // lock session first) the election does and a fresh source starts.
        metrics.contains("outbox_relay_reconnects_total{component=\"postgres\"}")
            || metrics.contains("outbox_relay_reconnects_total{component=\"election\"}"),
        "the relay reconnected to postgres"
    );
    setup.queue.delete().await;
}
