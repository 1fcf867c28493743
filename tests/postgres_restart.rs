//! PostgreSQL restarts under the relay while events are written: nothing is
//! lost, order holds, duplicates are bounded. The test restarts a cluster of
//! its own.

mod support;

use support::cluster::TempCluster;
use support::relay::sample_value;
use support::scenarios::outage;
use support::setup::Setup;

const BATCH: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_loses_nothing() {
    let cluster = TempCluster::logical();
    let setup = Setup::on(&cluster.url(), &support::rabbit::url(), BATCH).await;
    let metrics = outage(&setup, "postgres restart", BATCH, || cluster.restart()).await;
    // The source reconnects, or (when the restart cost the leader its lock
    // session first) the election does and a fresh source starts. Both
    // series exist from startup at 0.
    let reconnects = |component: &str| {
        let sample = format!("outbox_relay_reconnects_total{{component=\"{component}\"}}");
        sample_value(&metrics, &sample).unwrap_or(0.0)
    };
    assert!(
        reconnects("postgres") + reconnects("election") > 0.0,
        "the relay reconnected to postgres"
    );
    setup.queue.delete().await;
}
