//! The leader's lock session is ended by the server under it (as after a
//! network cut, or an administrator's pg_terminate_backend): the leader stops
//! publishing and goes back to standby without exiting, a leader is elected
//! again, and every event is delivered in order.

mod support;

use std::time::Duration;

use support::eventually;
use support::relay::Relay;
use support::setup::Setup;
use support::writers;

const BATCH: usize = 100;

async fn is_leader(relay: &Relay) -> bool {
    relay.metric("outbox_relay_leader").await == Some(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_that_loses_its_session_steps_down() {
    let mut setup = Setup::new(BATCH).await;
    setup
        .config
        .set("leader", "takeover_interval", "\"500ms\"")
        .set("leader", "lease", "\"3s\"");
    let mut first = setup.start_relay().await;
    eventually(Duration::from_secs(10), "the first relay leads", || {
        is_leader(&first)
    })
    .await;
    setup.config.new_port();
    let second = setup.start_relay().await;

    let url = setup.db.url.clone();
    let writing =
        tokio::spawn(
            async move { writers::write(&url, 4, 750, 10, Duration::from_millis(1)).await },
        );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let ended = setup.db.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted \
           AND database = (SELECT oid FROM pg_database WHERE datname = '{}')",
        setup.db.name
    ));
    assert_eq!(ended.trim(), "1", "one session holds the lock");
    // It may win the next election itself, so look at what it said.
    eventually(
        Duration::from_secs(10),
        "the old leader steps down",
        || async { first.log_text().contains("back to standby") },
    )
    .await;
    assert!(first.try_wait().is_none(), "it stays up, on standby");
    eventually(Duration::from_secs(15), "a leader again", || async {
        is_leader(&first).await || is_leader(&second).await
    })
    .await;
    let leaders = usize::from(is_leader(&first).await) + usize::from(is_leader(&second).await);
    assert_eq!(leaders, 1, "exactly one leader");

    let written = writing.await.expect("writers");
    let (report, _) = setup.settle("leader session lost", &written).await;
    assert!(
        report.duplicates <= 2 * BATCH,
        "too many duplicates: {report}"
    );
    drop(second);
    setup.queue.delete().await;
}
