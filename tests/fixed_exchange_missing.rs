//! The configured exchange (no placeholders) missing is the setup's fault:
//! the events wait, none is dead-lettered, and they flow in order once the
//! exchange exists (before, every event went to the dead-letter table).

mod support;

use std::time::Duration;

use support::eventually;
use support::setup::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_fixed_exchange_is_waited_for_not_dead_lettered() {
    let mut setup = Setup::new(10).await;
    setup.queue.delete_exchange().await;
    setup
        .config
        .set("sink.rabbitmq", "declare_exchange", "false")
        .set("dead_letters", "max_attempts", "2");
    // Ready before the rows arrive: while the exchange is missing the
    // broker counts as down (`/readyz` 503).
    let mut relay = setup.start_relay().await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'o-' || (i % 2), 'created', jsonb_build_object('i', i) \
         FROM generate_series(1, 20) i",
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let letters = setup
        .db
        .count("SELECT count(*) FROM outbox_dead_letters")
        .await;
    assert_eq!(
        letters, 0,
        "nothing dead-lettered for a missing fixed exchange"
    );
    assert_eq!(setup.db.unsent().await, 20, "the events wait");

    setup.queue.declare().await;
    eventually(Duration::from_secs(60), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let received = setup.queue.drain(20, Duration::from_secs(30)).await;
    let mut ids: Vec<i64> = received
        .iter()
        .map(|m| m.message_id().parse().expect("id"))
        .collect();
    ids.dedup();
    assert_eq!(ids, (1..=20).collect::<Vec<i64>>());
    assert!(relay.try_wait().is_none(), "the relay is still running");
}
