//! Application writers for the steady-load runs: `writers` sessions insert
//! at a fixed total rate in small autocommit transactions, each owning its
//! own aggregates, so an aggregate's events commit in id order. The rows'
//! `created_at` is `clock_timestamp()` at the insert: the commit time the
//! latency figures start from (the commit follows within the statement).

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use crate::Result;
use crate::database::BenchDb;
use crate::workload::{
    AGGREGATE_TYPE, AGGREGATES, EVENT_TYPE, HEADERS_JSON, aggregate_sql, payload_sql,
};

/// What the writers achieved.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub events: u64,
    /// From the first insert to the last commit.
    pub elapsed: Duration,
    /// When the last commit returned.
    pub finished: Instant,
}

/// Inserts `rate` events/s for `duration`: transactions of `rate / 1000`
/// rows (at least 1), spread evenly over `writers` sessions. Open loop: a
/// writer that falls behind its schedule catches up as fast as it can, and
/// the achieved rate is reported.
pub async fn write_at_rate(
    db: &BenchDb,
    rate: u64,
    duration: Duration,
    writers: u64,
) -> Result<Written> {
    if writers == 0 || !AGGREGATES.is_multiple_of(writers) {
        return Err(format!("--writers must divide {AGGREGATES}").into());
    }
    let per_txn = (rate / 1000).max(1);
    // Each writer commits every `interval`.
    let interval = Duration::from_secs_f64((writers * per_txn) as f64 / rate.max(1) as f64);
    let ticks = (duration.as_secs_f64() / interval.as_secs_f64())
        .round()
        .max(1.0) as u64;
    let sql = format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers, created_at) \
         SELECT '{AGGREGATE_TYPE}', {aggregate}, '{EVENT_TYPE}', {payload}, '{HEADERS_JSON}', clock_timestamp() \
         FROM unnest($1::int8[]) AS s",
        aggregate = aggregate_sql("s"),
        payload = payload_sql("s"),
    );
    let mut sessions = Vec::new();
    for _ in 0..writers {
        let client = db.session().await?;
        let insert = client.prepare(&sql).await?;
        sessions.push((client, insert));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, (client, insert)) in sessions.into_iter().enumerate() {
        let w = w as u64;
        tasks.push(tokio::spawn(async move {
            let mut timer = tokio::time::interval(interval);
            timer.set_missed_tick_behavior(MissedTickBehavior::Burst);
            // Writer w's events are numbered w, w + writers, ...: their
            // aggregates (number % AGGREGATES) belong to it alone.
            let mut next = w;
            for _ in 0..ticks {
                timer.tick().await;
                let seqs: Vec<i64> = (0..per_txn).map(|i| (next + i * writers) as i64).collect();
                next += per_txn * writers;
                client.execute(&insert, &[&seqs]).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(Written {
        events: ticks * per_txn * writers,
        elapsed: started.elapsed(),
        finished: Instant::now(),
    })
}
