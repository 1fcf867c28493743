//! The leader's lock session is ended by the server under it (as after a
//! network cut, or an administrator's pg_terminate_backend): the leader stops
//! publishing and goes back to standby without exiting, a leader is elected
//! again, and every event is delivered in order.
//!
//! Twice, with writers running: first the session is simply ended and the
//! relays elect a leader again by themselves; then the test queues for the
//! lock itself before ending the session, so that nobody can win it at once
//! and the step-down can be watched: the old leader's gauge drops to 0, it
//! publishes nothing while the test holds the lock, and it stays up as a
//! ready standby.

mod support;

use std::time::{Duration, Instant};

use support::eventually;
use support::rabbit::QueueCleanup;
use support::relay::{Relay, http_get};
use support::setup::Setup;
use support::writers;
use tokio_postgres::Client;

const BATCH: usize = 100;
const LEADER: &str = "outbox_relay_leader";
const PUBLISHED: &str = "outbox_relay_events_published_total{sink=\"rabbitmq\"}";
const STEPPED_DOWN: &str = "back to standby";

async fn is_leader(relay: &Relay) -> bool {
    relay.metric(LEADER).await == Some(1.0)
}

async fn published(relay: &Relay) -> f64 {
    relay.metric(PUBLISHED).await.unwrap_or(0.0)
}

/// How many times the relay has stepped down so far.
fn step_downs(relay: &Relay) -> usize {
    relay.log_text().matches(STEPPED_DOWN).count()
}

/// How many of the relays report themselves leader.
async fn leaders(relays: &[&Relay]) -> usize {
    let mut n = 0;
    for relay in relays {
        n += usize::from(is_leader(relay).await);
    }
    n
}

/// The relay session holding an advisory lock in the test database, and
/// the lock's key: `(pid, key)`.
async fn lock_holder(client: &Client) -> Option<(i32, i64)> {
    let rows = client
        .query(
            "SELECT l.pid, (l.classid::int8 << 32) | l.objid::int8 \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND a.datname = current_database() \
               AND a.application_name = 'outbox-relay leader'",
            &[],
        )
        .await
        .expect("reading pg_locks");
    assert!(
        rows.len() <= 1,
        "{} sessions hold a leader lock",
        rows.len()
    );
    rows.first().map(|r| (r.get(0), r.get(1)))
}

/// Ends a backend and waits until it is gone.
async fn terminate(client: &Client, pid: i32) {
    let row = client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("pg_terminate_backend");
    assert!(row.get::<_, bool>(0), "session {pid} was not there to end");
    eventually(Duration::from_secs(10), "the session to end", || async {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .expect("pg_stat_activity");
        row.get::<_, i64>(0) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_loses_its_session_steps_down() {
    let mut setup = Setup::new(BATCH).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    setup
        .config
        .set("leader", "takeover_interval", "\"500ms\"")
        .set("leader", "lease", "\"3s\"");
    let mut a = setup.start_relay().await;
    eventually(Duration::from_secs(10), "relay A leads", || is_leader(&a)).await;
    setup.config.new_port();
    let mut b = setup.start_relay().await;
    assert_eq!(b.metric(LEADER).await, Some(0.0), "B stands by");
    let admin = setup.db.client().await;

    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 1500, 10, Duration::from_millis(1)).await },
        );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(published(&a).await > 0.0, "A publishes");

    // 1. The server ends A's lock session; the relays sort it out.
    let (pid, _) = lock_holder(&admin).await.expect("A holds the lock");
    let a_down = step_downs(&a);
    let ended = Instant::now();
    terminate(&admin, pid).await;
    eventually(Duration::from_secs(10), "A steps down", || async {
        step_downs(&a) > a_down
    })
    .await;
    let stepped_down = ended.elapsed();
    eventually(Duration::from_secs(10), "a leader again", || async {
        leaders(&[&a, &b]).await == 1 && lock_holder(&admin).await.is_some_and(|(p, _)| p != pid)
    })
    .await;
    let reelected = ended.elapsed();
    assert!(a.try_wait().is_none(), "A stays up:\n{}", a.log_text());
    assert!(b.try_wait().is_none(), "B stays up:\n{}", b.log_text());
    println!(
        "round 1: A stepped down {stepped_down:?} after its session was ended; \
         {} leads {reelected:?} after",
        if is_leader(&a).await { "A" } else { "B" }
    );

    // 2. The test queues for the lock, then ends the leader's session: the
    // lock passes to the test, and the old leader must stand by.
    let (pid, key) = lock_holder(&admin).await.expect("someone holds the lock");
    let a_led = is_leader(&a).await;
    let (old, other) = if a_led { (&a, &b) } else { (&b, &a) };
    assert!(
        is_leader(old).await,
        "the lock holder reports itself leader"
    );
    let old_down = step_downs(old);
    let holder = setup.db.client().await;
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("backend pid")
        .get(0);
    let queued = tokio::spawn(async move {
        holder
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .expect("pg_advisory_lock");
        holder
    });
    eventually(
        Duration::from_secs(10),
        "the test to queue for the lock",
        || {
            let admin = &admin;
            async move {
                admin
                    .query_one(
                        "SELECT count(*) FROM pg_locks \
                     WHERE pid = $1 AND locktype = 'advisory' AND NOT granted",
                        &[&holder_pid],
                    )
                    .await
                    .expect("pg_locks")
                    .get::<_, i64>(0)
                    == 1
            }
        },
    )
    .await;
    assert!(!writing.is_finished(), "the writers are still writing");
    let ended = Instant::now();
    terminate(&admin, pid).await;
    let holder = tokio::time::timeout(Duration::from_secs(10), queued)
        .await
        .expect("the test gets the lock")
        .expect("lock task");
    eventually(
        Duration::from_secs(10),
        "the old leader's gauge drops",
        || async { old.metric(LEADER).await == Some(0.0) },
    )
    .await;
    let gauge_dropped = ended.elapsed();
    assert!(step_downs(old) > old_down, "it logged the step-down");
    // Nobody leads while the test holds the lock: nothing is published.
    let frozen = (published(old).await, published(other).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        leaders(&[old, other]).await,
        0,
        "no leader while the test holds the lock"
    );
    assert_eq!(
        (published(old).await, published(other).await),
        frozen,
        "nothing is published without the lock"
    );
    let (status, body) = http_get(old.port, "/readyz").await.expect("readyz");
    assert_eq!(status, 200, "the old leader is a ready standby: {body}");
    assert!(body.contains("role: standby"), "{body}");
    let unlocked: bool = holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .expect("pg_advisory_unlock")
        .get(0);
    assert!(unlocked, "the test held the lock");
    let released = Instant::now();
    eventually(
        Duration::from_secs(10),
        "a leader after the release",
        || async { leaders(&[old, other]).await == 1 },
    )
    .await;
    let reelected = released.elapsed();
    assert!(a.try_wait().is_none(), "A stays up:\n{}", a.log_text());
    assert!(b.try_wait().is_none(), "B stays up:\n{}", b.log_text());
    println!(
        "round 2: {} stepped down; its gauge was 0 {gauge_dropped:?} after its session was ended; \
         a leader {reelected:?} after the test released the lock",
        if a_led { "A" } else { "B" }
    );

    let written = writing.await.expect("writers");
    let (report, _) = setup.settle("leader session lost", &written).await;
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates (two step-downs): {report}"
    );
    assert!(
        a.try_wait().is_none() && b.try_wait().is_none(),
        "both relays still run"
    );
    drop(holder);
}
