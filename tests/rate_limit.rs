//! The controlled rate (`sink.max_events_per_second`, `sink.burst`): a
//! backlog reaches the broker at the configured rate, not as fast as the
//! broker takes it, in polling and replication mode (its catch-up pass
//! included); nothing is lost, per-aggregate order holds, and the wait is
//! counted. A bad value is refused naming the key.
//!
//! The rate is measured from the arrival times at a consumer. A limiter
//! promises at most `burst + rate * t` events in any stretch `t`, so the
//! figure checked is `(events - burst) / (last arrival - first arrival)`:
//! at most 10% above the limit, and, since a loaded 2-core machine may
//! fall behind, only required to be above half of it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use tokio::task::JoinHandle;

use support::checker::verify;
use support::rabbit::TestQueue;
use support::relay::{BIN, Relay, check_line, sample_value};
use support::setup::Setup;
use support::writers::{self, Written};

/// Events per second in both delivery tests.
const LIMIT: u32 = 200;
/// 30 s of events at the limit.
const EVENTS: usize = 6_000;

/// Starts consuming `queue` now, before the relay publishes; resolves to
/// each delivery's message id and arrival time once `expected` arrived and
/// one more quiet second passed.
fn consume_timed(queue: &TestQueue, expected: usize) -> JoinHandle<Vec<(Instant, String)>> {
    let url = queue.url.clone();
    let name = queue.queue.clone();
    tokio::spawn(async move {
        let conn = support::rabbit::connect_to(&url).await;
        let channel = conn.create_channel().await.expect("channel");
        let mut consumer = channel
            .basic_consume(
                name.as_str().into(),
                "rate".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut arrivals = Vec::with_capacity(expected);
        loop {
            let wait = if arrivals.len() >= expected {
                Duration::from_secs(1)
            } else {
                deadline.saturating_duration_since(Instant::now())
            };
            match tokio::time::timeout(wait, consumer.next()).await {
                Ok(Some(Ok(delivery))) => {
                    let id = delivery
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    arrivals.push((Instant::now(), id));
                }
                Ok(Some(Err(e))) => panic!("consuming: {e}"),
                Ok(None) => panic!("consumer ended"),
                Err(_) if arrivals.len() >= expected => break,
                Err(_) => panic!(
                    "only {} of {expected} messages arrived within 180 s",
                    arrivals.len()
                ),
            }
        }
        let _ = conn.close(0, "done".into()).await;
        arrivals
    })
}

/// Checks the arrivals against `written` (nothing lost, order kept) and the
/// rate against the limit; prints the figures and returns the measured rate.
fn check_rate(label: &str, written: &[Written], arrivals: &[(Instant, String)], burst: u32) -> f64 {
    let ids: Vec<String> = arrivals.iter().map(|(_, id)| id.clone()).collect();
    let report = verify(written, &ids);
    let (first, last) = (arrivals[0].0, arrivals[arrivals.len() - 1].0);
    let span = (last - first).as_secs_f64();
    let distinct = report.written as f64;
    let rate = (distinct - f64::from(burst)) / span;
    let windows: Vec<String> = (0..)
        .map(|n| first + Duration::from_secs(5 * n))
        .take_while(|start| *start < last)
        .map(|start| {
            let end = start + Duration::from_secs(5);
            let n = arrivals
                .iter()
                .filter(|(t, _)| *t >= start && *t < end)
                .count();
            format!("{:.0}", n as f64 / 5.0)
        })
        .collect();
    println!(
        "{label}: {report}; {} events in {span:.1} s: {rate:.1} events/s after the burst of {burst} \
         (limit {LIMIT}, {:.1}%); per 5 s window: {}",
        report.written,
        rate / f64::from(LIMIT) * 100.0,
        windows.join(" ")
    );
    let limit = f64::from(LIMIT);
    assert!(
        rate <= limit * 1.1,
        "{label}: {rate:.1} events/s exceeds the limit of {LIMIT} by more than 10%"
    );
    assert!(
        rate >= limit * 0.5,
        "{label}: {rate:.1} events/s is below half the limit of {LIMIT}"
    );
    rate
}

/// The wait counter grew while the limit held, the gauge shows the limit,
/// and no batch was larger than the burst (`le` a histogram bucket at or
/// above it): claims asked for what could go at once, not `batch_size`.
async fn check_metrics(label: &str, relay: &Relay, le: &str) {
    let wait = relay
        .metric("outbox_relay_rate_limit_wait_seconds_total")
        .await
        .expect("wait counter exported");
    let gauge = relay
        .metric("outbox_relay_rate_limit_events_per_second")
        .await
        .expect("limit gauge exported");
    println!("{label}: waited {wait:.1} s for the limit");
    assert!(
        wait > 5.0,
        "{label}: a 30 s backlog at the limit waits for most of it, counted {wait} s"
    );
    assert_eq!(gauge, f64::from(LIMIT), "{label}: the limit gauge");
    let text = relay.metrics().await;
    let batches = sample_value(&text, "outbox_relay_batch_size_events_count").expect("batches");
    let small = sample_value(
        &text,
        &format!("outbox_relay_batch_size_events_bucket{{le=\"{le}\"}}"),
    )
    .expect("batch bucket");
    println!("{label}: {batches} batches, {small} of at most {le} events");
    assert_eq!(small, batches, "{label}: a batch was larger than the burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_polling_backlog_goes_at_the_limit() {
    let started = Instant::now();
    let mut setup = Setup::new(500).await;
    setup
        .config
        .set("sink", "max_events_per_second", &LIMIT.to_string());
    let (_, check) = setup.config.check();
    let line = check_line(&check, "rate limit");
    assert!(
        line.contains("at most 200 events per second, bursts of up to 200 events"),
        "{line}"
    );
    let written = writers::one_transaction(&setup.db.url, EVENTS, 20).await;

    let arrivals = consume_timed(&setup.queue, EVENTS);
    let relay = setup.start_relay().await;
    let arrivals = arrivals.await.expect("consumer");
    support::eventually(Duration::from_secs(30), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    check_rate("polling", &written, &arrivals, LIMIT);
    check_metrics("polling", &relay, "250").await;
    println!("polling: {:.1} s in all", started.elapsed().as_secs_f64());
    setup.queue.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replication_backlog_goes_at_the_limit_through_the_catch_up_pass_and_the_stream() {
    const BURST: u32 = 50;
    let started = Instant::now();
    let mut setup = Setup::replication(500).await;
    setup
        .config
        .set("sink", "max_events_per_second", &LIMIT.to_string())
        .set("sink", "burst", &BURST.to_string());
    // Half before the slot exists (the catch-up pass), half streamed.
    let mut written = writers::one_transaction(&setup.db.url, EVENTS / 2, 10).await;

    let arrivals = consume_timed(&setup.queue, EVENTS);
    let relay = setup.start_relay().await;
    written.extend(writers::write(&setup.db.url, 2, EVENTS / 4, 3, Duration::ZERO).await);
    let arrivals = arrivals.await.expect("consumer");
    support::eventually(Duration::from_secs(30), "all rows marked", || async {
        setup.db.unsent().await == 0
    })
    .await;
    assert!(
        relay
            .log_text()
            .contains("publishing rows written before the replication slot existed"),
        "the first half went through the catch-up pass"
    );
    check_rate("replication", &written, &arrivals, BURST);
    check_metrics("replication", &relay, "50").await;
    println!(
        "replication: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    setup.queue.delete().await;
}

/// `check` with `toml` as the config: exit code 2 and the key named.
fn refused_naming(toml: &str, key: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, toml).expect("write config");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .arg("check")
        .output()
        .expect("running outbox-relay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{toml}: exit code; {stderr}");
    assert!(
        stderr.contains(&format!("`{key}`")),
        "{toml}: the error should name `{key}`: {stderr}"
    );
}

#[test]
fn a_bad_limit_is_refused_naming_the_key() {
    refused_naming(
        "[sink]\nmax_events_per_second = -5\n",
        "sink.max_events_per_second",
    );
    refused_naming(
        "[sink]\nmax_events_per_second = \"fast\"\n",
        "sink.max_events_per_second",
    );
    refused_naming(
        "[sink]\nmax_events_per_second = 2.5\n",
        "sink.max_events_per_second",
    );
    refused_naming(
        "[sink]\nmax_events_per_second = 100\nburst = -1\n",
        "sink.burst",
    );
    refused_naming("[sink]\nburst = 10\n", "sink.burst");
}
