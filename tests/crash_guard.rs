//! A real process death caused by one event (the debug build aborts when it
//! publishes an event with a given header): restarted after each death, as
//! a supervisor would, the relay pins the death to that event by publishing
//! one event at a time, names it in the log before each death, and after
//! `dead_letters.max_crashes` deaths on it alone dead-letters it (`crashed`)
//! unpublished; the events around it are delivered once each, in order.

mod support;

use std::time::{Duration, Instant};

use support::relay::Relay;
use support::setup::Setup;

const EVENTS: i64 = 10;
const POISON: i64 = 5;
const MAX_CRASHES: usize = 3;
/// Fault injection of the debug build (see `crash_guard::ABORT_ON_HEADER`).
const ABORT_ON_HEADER: &str = "OUTBOX_TEST_ABORT_ON_HEADER";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_relay_dead_letters_the_event_it_keeps_dying_on() {
    let mut setup = Setup::new(EVENTS as usize).await;
    // Written before the first start: the first batch holds all ten.
    insert(&setup);
    let deaths = supervise(&mut setup).await;
    assert_eq!(
        deaths.len(),
        MAX_CRASHES + 1,
        "one death in the batch, then {MAX_CRASHES} on event {POISON} alone"
    );
    // The first death was in the batch of ten; the next start said so.
    assert!(
        deaths[1].contains("died while publishing from event 1"),
        "{}",
        deaths[1]
    );
    verify(&setup, &deaths).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_relay_dead_letters_the_event_it_keeps_dying_on() {
    let mut setup = Setup::replication(EVENTS as usize).await;
    // The slot exists before the rows, so they are streamed, not caught up.
    let mut first = setup.start_relay().await;
    first.sigterm(Duration::from_secs(10));
    insert(&setup);
    let deaths = supervise(&mut setup).await;
    // The stream may cut the rows into two batches, each costing a death
    // before the guard can pin it.
    assert!(
        (MAX_CRASHES + 1..=MAX_CRASHES + 2).contains(&deaths.len()),
        "{} deaths",
        deaths.len()
    );
    verify(&setup, &deaths).await;
}

fn insert(setup: &Setup) {
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'o-1', 'created', jsonb_build_object('i', i), \
                CASE WHEN i = {POISON} THEN '{{\"die\": true}}'::jsonb ELSE '{{}}'::jsonb END \
         FROM generate_series(1, {EVENTS}) i"
    ));
}

/// Starts the relay again each time it dies, until every row is marked;
/// returns the log of each start that died.
async fn supervise(setup: &mut Setup) -> Vec<String> {
    setup
        .config
        .set("dead_letters", "max_crashes", &MAX_CRASHES.to_string())
        .env(ABORT_ON_HEADER, "die");
    let mut deaths = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "not settled after 120 s");
        assert!(deaths.len() <= MAX_CRASHES + 3, "crash loop: {deaths:?}");
        let mut relay = Relay::start(&setup.config);
        let died = loop {
            if let Some(status) = relay.try_wait() {
                break Some(status);
            }
            if setup.db.unsent().await == 0 {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        match died {
            Some(status) => {
                println!("start {} died: {status}", deaths.len() + 1);
                assert!(!status.success(), "a death, not an exit: {status}");
                deaths.push(relay.log_text());
            }
            None => {
                let status = relay.sigterm(Duration::from_secs(10));
                assert!(status.is_some_and(|s| s.success()), "clean exit");
                let log = relay.log_text();
                assert!(
                    log.contains("event moved to the dead-letter table"),
                    "{log}"
                );
                return deaths;
            }
        }
    }
}

async fn verify(setup: &Setup, deaths: &[String]) {
    // Each of the last MAX_CRASHES starts named the event before it died.
    for (n, log) in deaths.iter().rev().take(MAX_CRASHES).enumerate() {
        assert!(
            log.contains(&format!("publishing event {POISON} alone")),
            "death {} of the last {MAX_CRASHES} did not name event {POISON}:\n{log}",
            n + 1
        );
    }
    let letters = setup.db.psql(
        "SELECT string_agg(event_id || ':' || reason || ':' || attempts, ' ') FROM outbox_dead_letters",
    );
    assert_eq!(letters.trim(), format!("{POISON}:crashed:{MAX_CRASHES}"));
    let received = setup.queue.drain(9, Duration::from_secs(30)).await;
    let ids: Vec<i64> = received
        .iter()
        .map(|m| m.message_id().parse().expect("numeric id"))
        .collect();
    // A re-streamed transaction repeats events (issue 13 item 6): keep the
    // first arrival of each.
    let distinct = support::checker::first_arrivals(&ids);
    let expected: Vec<i64> = (1..=EVENTS).filter(|i| *i != POISON).collect();
    assert_eq!(distinct, expected, "every other event, in order");
    println!(
        "{} deaths, {} messages for {} events ({} duplicates)",
        deaths.len(),
        ids.len(),
        expected.len(),
        ids.len() - distinct.len()
    );
    // The clean exit cleared the guard's record.
    let left = setup
        .db
        .psql("SELECT count(*) FROM outbox_relay_crash_guard");
    assert_eq!(left.trim(), "0");
}
