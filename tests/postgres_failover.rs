//! A primary fails over to its standby under load, and nothing is lost.
//!
//! Two private clusters, a primary and a synchronous streaming standby (on
//! 17 with failover slots: `sync_replication_slots` on the standby,
//! `synchronized_standby_slots` on the primary; on 15 without them).
//! Writers and the relay use one multi-host URL with
//! `target_session_attrs=read-write`. Mid-load the primary is killed with
//! SIGKILL (or shut down cleanly, a switchover) and the standby promoted;
//! writers and relay find the new primary by themselves. Every write a
//! writer saw committed is delivered, first arrivals keep per-aggregate
//! order, and duplicates are counted. In replication mode on 15 the slot
//! is missing after the promotion and `on_lost_slot = "recover"` creates
//! it again with a pass over unsent rows; on 17 the synchronised copy is
//! used. Events whose transaction the promotion lost (committed on the old
//! primary only) may have been published: they are not in the new
//! primary's table, nothing is owed for them, and they are counted apart.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use support::checker::{Report, verify};
use support::db::TestDb;
use support::eventually;
use support::rabbit::{QueueCleanup, Received, TestQueue};
use support::relay::{Relay, RelayConfig};
use support::standby::Pair;
use support::writers::{self, Written};

const PUBLISHED: &str = "outbox_relay_events_published_total{sink=\"rabbitmq\"}";
const RECOVERIES: &str = "outbox_relay_replication_slot_recoveries_total{reason=\"missing\"}";
const WRITERS: usize = 4;
const PER_WRITER: usize = 1_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Polling,
    Replication,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loss {
    /// SIGKILL to the primary, then promotion.
    Crash,
    /// A clean shutdown of the primary, then promotion.
    Switchover,
}

async fn published(relay: &Relay) -> f64 {
    relay.metric(PUBLISHED).await.unwrap_or(0.0)
}

/// The ids and payload keys of the new primary's outbox.
async fn table_rows(url: &str) -> HashMap<String, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the new primary");
    tokio::spawn(connection);
    client
        .query("SELECT id::text, payload->>'key' FROM outbox", &[])
        .await
        .expect("read the outbox")
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<String>>(1).unwrap_or_default()))
        .collect()
}

async fn unsent(url: &str) -> i64 {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return -1;
    };
    tokio::spawn(connection);
    match client
        .query_one("SELECT count(*) FROM outbox WHERE sent_at IS NULL", &[])
        .await
    {
        Ok(row) => row.get(0),
        Err(_) => -1,
    }
}

/// Checks what arrived against the new primary's table (`rows`: id to
/// payload key) and the writes owed. An event is its id and key: an id the
/// old primary handed out to a transaction the promotion lost can be handed
/// out again. Returns the checker's report, the arrivals that are rows of
/// the table (as `id/key`), and the keys of events for rows it does not
/// hold (published from lost transactions).
fn check_arrivals(
    owed: &[Written],
    rows: &HashMap<String, String>,
    received: &[Received],
) -> (Report, Vec<String>, Vec<String>) {
    let identity = |id: &str, key: &str| format!("{id}/{key}");
    let mut arrived = Vec::new();
    let mut ghosts = Vec::new();
    for message in received {
        let id = message.message_id();
        let key = message.json()["key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if rows.get(&id) == Some(&key) {
            arrived.push(identity(&id, &key));
        } else {
            ghosts.push(key);
        }
    }
    let keyed: Vec<Written> = owed
        .iter()
        .map(|w| Written {
            id: identity(&w.id, &rows[&w.id]),
            aggregate_id: w.aggregate_id.clone(),
        })
        .collect();
    (verify(&keyed, &arrived), arrived, ghosts)
}

async fn failover(major: u32, mode: Mode, loss: Loss) {
    let label = format!("PostgreSQL {major}, {mode:?}, {loss:?}");
    let pair = Pair::start(major);
    let db = TestDb::on(&pair.primary.url());
    let url = pair.url(&db.name);
    let queue = TestQueue::new().await;
    let _cleanup = QueueCleanup::of(&queue);
    let mut config = RelayConfig::for_url(&url, &queue.exchange);
    config.set("source.polling", "batch_size", "100");
    if mode == Mode::Replication {
        config
            .replication(&db.name, 100)
            .set("source.replication", "on_lost_slot", "\"recover\"");
    }
    config.migrate();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    let check = config.check().1;
    println!("{label}: check before the failover:\n{check}");
    if mode == Mode::Replication && major >= 17 {
        eventually(
            Duration::from_secs(30),
            "the relay made its slot",
            || async {
                pair.primary
                .psql(&format!(
                    "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{}' AND failover",
                    db.name
                ))
                .trim()
                == "1"
            },
        )
        .await;
        pair.wait_slot_synced(&db.name, Duration::from_secs(90));
        let check = config.check().1;
        assert!(
            check.contains("has the slot synchronised"),
            "check sees the standby's copy:\n{check}"
        );
    }

    let write_url = url.clone();
    let load = tokio::spawn(async move {
        writers::write(
            &write_url,
            WRITERS,
            PER_WRITER,
            25,
            Duration::from_millis(3),
        )
        .await
    });
    eventually(Duration::from_secs(30), "events flow", || async {
        published(&relay).await >= 500.0
    })
    .await;
    let lost_at = Instant::now();
    match loss {
        Loss::Crash => pair.kill_primary(),
        Loss::Switchover => pair.stop_primary(),
    }
    // What a failover manager takes to decide.
    tokio::time::sleep(Duration::from_secs(1)).await;
    pair.promote();
    let promoted = Instant::now();
    let at_promotion = published(&relay).await;
    eventually(
        Duration::from_secs(120),
        "the relay publishes again",
        || async { published(&relay).await > at_promotion },
    )
    .await;
    let resumed = promoted.elapsed();
    let written: Vec<Written> = load.await.expect("writers");
    let new_primary = pair.url(&db.name);
    eventually(
        Duration::from_secs(180),
        "every row marked sent",
        || async { unsent(&new_primary).await == 0 },
    )
    .await;

    let rows = table_rows(&new_primary).await;
    for w in &written {
        assert!(
            rows.contains_key(&w.id),
            "{label}: acknowledged write {} is missing from the new primary",
            w.id
        );
    }
    let received = queue.drain(written.len(), Duration::from_secs(120)).await;
    let (report, arrived, ghosts) = check_arrivals(&written, &rows, &received);
    let ghosts = ghosts.len();
    let distinct: HashSet<&String> = arrived.iter().collect();
    let recoveries = relay.metric(RECOVERIES).await.unwrap_or(0.0);
    println!(
        "{label}: {report}; {} distinct; {ghosts} published from transactions the promotion lost; \
         lost primary -> promoted {:.1}s, promoted -> publishing again {:.1}s; slot recoveries {recoveries}",
        distinct.len(),
        (promoted - lost_at).as_secs_f64(),
        resumed.as_secs_f64(),
    );
    if mode == Mode::Replication {
        let expected = if major >= 17 { 0.0 } else { 1.0 };
        assert_eq!(
            recoveries, expected,
            "{label}: slot recoveries (17 keeps the synchronised slot, 15 creates it again)"
        );
    }
    let log = relay.log_text();
    if mode == Mode::Replication && major < 17 {
        assert!(
            log.contains("creating it again and publishing every row not marked sent"),
            "{label}: the recovery is logged"
        );
    }
    assert!(
        relay.try_wait().is_none(),
        "{label}: the relay kept running through the failover"
    );
    relay.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_crash_on_17_keeps_the_failover_slot() {
    failover(17, Mode::Replication, Loss::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_crash_on_15_recreates_the_slot() {
    failover(15, Mode::Replication, Loss::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_crash_on_17() {
    failover(17, Mode::Polling, Loss::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_crash_on_15() {
    failover(15, Mode::Polling, Loss::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_switchover_on_17() {
    failover(17, Mode::Replication, Loss::Switchover).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_switchover_on_15() {
    failover(15, Mode::Replication, Loss::Switchover).await;
}

/// The two races of a failover, made to happen on 15 (no failover slots,
/// no `synchronized_standby_slots`): the standby stops receiving WAL while
/// the relay goes on publishing from the primary, then the primary dies
/// and the standby is promoted. Rows the standby has but whose marks it
/// missed are unsent there and published again (counted duplicates); rows
/// it never got are gone from its table, so the events published for them
/// are owed to nobody (counted apart); rows written after the promotion
/// arrive as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_15_lost_marks_are_published_again_and_lost_rows_are_not_owed() {
    let pair = Pair::start(15);
    let db = TestDb::on(&pair.primary.url());
    let url = pair.url(&db.name);
    let primary_only = format!("{}/{}", pair.primary.url(), db.name);
    let queue = TestQueue::new().await;
    let _cleanup = QueueCleanup::of(&queue);
    let mut config = RelayConfig::for_url(&url, &queue.exchange);
    config
        .replication(&db.name, 500)
        .set("source.replication", "on_lost_slot", "\"recover\"");
    config.migrate();

    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    let mut owed = writers::write(&url, 2, 100, 4, Duration::ZERO).await;
    eventually(Duration::from_secs(60), "the first rows marked", || async {
        unsent(&url).await == 0
    })
    .await;
    relay.sigterm(Duration::from_secs(10)).expect("stops");
    // On both servers, unsent.
    let marks_lost = writers::write(&url, 2, 50, 4, Duration::ZERO).await;
    pair.make_async();
    pair.stop_standby();
    let mut relay = Relay::start(&config);
    relay.wait_ready().await;
    // On the primary only.
    let rows_lost = writers::write(&primary_only, 2, 25, 4, Duration::ZERO).await;
    eventually(
        Duration::from_secs(60),
        "published from the primary alone",
        || async { unsent(&primary_only).await == 0 },
    )
    .await;

    pair.kill_primary();
    pair.start_standby();
    pair.promote();
    eventually(Duration::from_secs(60), "the slot recovered", || async {
        relay.metric(RECOVERIES).await == Some(1.0)
    })
    .await;
    let after = writers::write(&url, 2, 25, 4, Duration::ZERO).await;
    eventually(Duration::from_secs(60), "every row marked", || async {
        unsent(&url).await == 0
    })
    .await;

    let rows = table_rows(&url).await;
    let keys: HashSet<&String> = rows.values().collect();
    owed.extend(marks_lost.iter().cloned());
    owed.extend(after.iter().cloned());
    let expected = owed.len() + rows_lost.len() + marks_lost.len();
    let received = queue.drain(expected, Duration::from_secs(60)).await;
    let (report, _, ghost_keys) = check_arrivals(&owed, &rows, &received);
    for key in &ghost_keys {
        assert!(
            !keys.contains(key),
            "{key} is in the table under another id"
        );
    }
    let ghosts = ghost_keys.len();
    println!(
        "unreplicated tail: {report}; {ghosts} published for rows the promotion lost \
         ({} written on the old primary alone); {} rows whose mark was lost",
        rows_lost.len(),
        marks_lost.len()
    );
    assert_eq!(
        ghosts,
        rows_lost.len(),
        "each lost row was published once, before"
    );
    assert!(
        report.duplicates >= marks_lost.len(),
        "every row whose mark was lost is published again ({report})"
    );
    relay.sigkill();
}
