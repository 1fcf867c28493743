//! Two relays against one outbox: only the elected leader publishes; the
//! leader is killed with SIGKILL mid-stream and the standby takes over, in
//! polling and in replication mode (the slot follows the leader), with
//! nothing lost and per-aggregate order intact across the failover.

mod support;

use std::time::{Duration, Instant};

use support::eventually;
use support::rabbit::QueueCleanup;
use support::relay::{Relay, http_get};
use support::setup::Setup;
use support::writers;

const BATCH: usize = 100;
const LEADER: &str = "outbox_relay_leader";
const PUBLISHED: &str = "outbox_relay_events_published_total{sink=\"rabbitmq\"}";

async fn is_leader(relay: &Relay) -> bool {
    relay.metric(LEADER).await == Some(1.0)
}

/// Events this relay has published (the counter appears with the first).
async fn published(relay: &Relay) -> f64 {
    relay.metric(PUBLISHED).await.unwrap_or(0.0)
}

/// `/readyz` of a relay: status and body.
async fn readyz(relay: &Relay) -> (u16, String) {
    http_get(relay.port, "/readyz").await.expect("readyz")
}

/// The backend holding the replication slot (0 when none does).
async fn slot_pid(setup: &Setup) -> i64 {
    setup
        .db
        .count(&format!(
            "SELECT coalesce(max(active_pid), 0)::int8 FROM pg_replication_slots \
             WHERE slot_name = '{}'",
            setup.db.name
        ))
        .await
}

async fn failover(mut setup: Setup, label: &str, replication: bool) {
    let _cleanup = QueueCleanup::of(&setup.queue);
    setup
        .config
        .set("leader", "takeover_interval", "\"500ms\"")
        .set("leader", "lease", "\"3s\"");
    let mut a = setup.start_relay().await;
    eventually(Duration::from_secs(10), "relay A leads", || is_leader(&a)).await;
    setup.config.new_port();
    let b = setup.start_relay().await;
    assert_ne!(a.port, b.port, "each relay has its own metrics port");
    assert_eq!(a.metric(LEADER).await, Some(1.0), "A leads");
    assert_eq!(b.metric(LEADER).await, Some(0.0), "B stands by");
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 200, "a healthy standby is ready: {body}");
    assert!(body.contains("role: standby"), "B's /readyz: {body}");
    // A may still be making its slot (a loaded machine): ready soon.
    eventually(Duration::from_secs(30), "the leader is ready", || async {
        readyz(&a).await.0 == 200
    })
    .await;
    let (_, body) = readyz(&a).await;
    assert!(body.contains("role: leader"), "A's /readyz: {body}");
    let slot_before = if replication {
        eventually(
            Duration::from_secs(10),
            "A streams from the slot",
            || async { slot_pid(&setup).await > 0 },
        )
        .await;
        slot_pid(&setup).await
    } else {
        0
    };

    let url = setup.db.url.clone();
    let started = Instant::now();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 1000, 10, Duration::from_millis(1)).await },
        );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a_published = published(&a).await;
    let b_before = published(&b).await;
    assert!(a_published > 0.0, "the leader publishes");
    assert_eq!(
        b_before, 0.0,
        "the standby publishes nothing before the kill"
    );
    assert_eq!(b.metric(LEADER).await, Some(0.0), "B still stands by");
    let unsent_at_kill = setup.db.unsent().await;
    assert!(
        !writing.is_finished(),
        "the writers are still writing when A is killed"
    );

    let killed = Instant::now();
    a.sigkill();
    eventually(Duration::from_secs(10), "B takes over", || is_leader(&b)).await;
    let takeover = killed.elapsed();
    eventually(Duration::from_secs(10), "B publishes", || async {
        published(&b).await > b_before
    })
    .await;
    let first_publish = killed.elapsed();
    let (status, body) = readyz(&b).await;
    assert_eq!(status, 200, "the new leader is ready: {body}");
    assert!(body.contains("role: leader"), "B's /readyz: {body}");
    if replication {
        eventually(Duration::from_secs(10), "the slot follows B", || async {
            let pid = slot_pid(&setup).await;
            pid > 0 && pid != slot_before
        })
        .await;
    }

    let written = writing.await.expect("writers");
    let writing_took = started.elapsed();
    let (report, _) = setup.settle(label, &written).await;
    println!(
        "{label}: A published {a_published} before the kill; at the kill {unsent_at_kill} rows \
         unsent; the writers took {writing_took:?}"
    );
    println!(
        "{label}: takeover after SIGKILL in {takeover:?}; B's first publish after {first_publish:?}; \
         B published {} in all; duplicates {}",
        published(&b).await,
        report.duplicates
    );
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_standby_takes_over_after_sigkill() {
    failover(Setup::new(BATCH).await, "leader failover (polling)", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_standby_takes_over_after_sigkill() {
    failover(
        Setup::replication(BATCH).await,
        "leader failover (replication)",
        true,
    )
    .await;
}
