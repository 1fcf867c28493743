//! Two relays against one outbox: only the elected leader publishes; the
//! leader is killed with SIGKILL mid-stream and the standby takes over, in
//! polling and in replication mode (the slot follows the leader), with
//! nothing lost and per-aggregate order intact across the failover.

mod support;

use std::time::{Duration, Instant};

use support::eventually;
use support::relay::{Relay, http_get};
use support::setup::Setup;
use support::writers;

const BATCH: usize = 100;
const PUBLISHED: &str = "outbox_relay_events_published_total{sink=\"rabbitmq\"}";

async fn is_leader(relay: &Relay) -> bool {
    relay.metric("outbox_relay_leader").await == Some(1.0)
}

async fn failover(mut setup: Setup, label: &str) {
    setup
        .config
        .set("leader", "takeover_interval", "\"500ms\"")
        .set("leader", "lease", "\"3s\"");
    let mut leader = setup.start_relay().await;
    eventually(Duration::from_secs(10), "the first relay leads", || {
        is_leader(&leader)
    })
    .await;
    setup.config.new_port();
    let standby = setup.start_relay().await;
    assert!(!is_leader(&standby).await, "only one leader");
    let (status, body) = http_get(setup.config.port, "/readyz")
        .await
        .expect("readyz");
    assert_eq!(status, 200, "a healthy standby is ready: {body}");
    assert!(body.contains("role: standby"), "{body}");

    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 1000, 10, Duration::from_millis(1)).await },
        );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        leader.metric(PUBLISHED).await.unwrap_or(0.0) > 0.0,
        "the leader publishes"
    );
    assert_eq!(
        standby.metric(PUBLISHED).await.unwrap_or(0.0),
        0.0,
        "the standby does not publish"
    );

    let killed = Instant::now();
    leader.sigkill();
    eventually(Duration::from_secs(15), "the standby takes over", || {
        is_leader(&standby)
    })
    .await;
    let takeover = killed.elapsed();

    let written = writing.await.expect("writers");
    let (report, _) = setup.settle(label, &written).await;
    println!("{label}: takeover after SIGKILL in {takeover:?}");
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
    assert!(standby.metric(PUBLISHED).await.unwrap_or(0.0) > 0.0);
    drop(standby);
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_standby_takes_over_after_sigkill() {
    failover(Setup::new(BATCH).await, "leader failover (polling)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_standby_takes_over_after_sigkill() {
    failover(
        Setup::replication(BATCH).await,
        "leader failover (replication)",
    )
    .await;
}
