//! Steady load: with the relay running and idle, writers insert at a fixed
//! rate for a while; latency runs from each row's commit (`created_at`) to
//! the broker's confirmation (`sent_at`, set by the relay's mark right
//! after it) and to the harness's consumer receiving it. The relay keeps
//! up if it has marked everything within a second of the last commit.

use std::time::Duration;

use serde::Serialize;

use super::drain::{STALL, prepared_db, run_dir};
use super::{Context, Destination};
use crate::Result;
use crate::checker::{CheckReport, Checker};
use crate::database::BenchDb;
use crate::latency::Percentiles;
use crate::relay::{Mode, RelayProcess, SinkKind};
use crate::writer::write_at_rate;

/// How far behind the last commit the last mark may be for "keeps up".
const KEEP_UP_TAIL: Duration = Duration::from_secs(1);

/// One steady run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyResult {
    pub target_rate: u64,
    pub seconds: f64,
    pub events: u64,
    /// What the writers achieved (below target when Postgres or the
    /// machine could not take the writes).
    pub written_per_s: f64,
    /// From the last commit until every event was marked.
    pub tail_ms: f64,
    pub keeps_up: bool,
    pub commit_to_ack: Option<Percentiles>,
    pub commit_to_consumer: Option<Percentiles>,
    pub peak_rss_mb: f64,
    pub cpu_s_per_1k: f64,
    pub check: CheckReport,
}

/// The knobs of one steady run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate: u64,
    pub duration: Duration,
    pub writers: u64,
}

/// Runs one steady-load measurement.
pub async fn steady(ctx: &Context, mode: Mode, sink: SinkKind, load: Load) -> Result<SteadyResult> {
    let db = prepared_db(ctx, mode, 0, 1).await?;
    let name = ctx.unique_name("steady");
    let destination = Destination::create(ctx, sink, &name).await?;
    let result = steady_into(ctx, &db, &destination, mode, sink, &name, load).await;
    destination.delete().await;
    result
}

async fn steady_into(
    ctx: &Context,
    db: &BenchDb,
    destination: &Destination,
    mode: Mode,
    sink: SinkKind,
    name: &str,
    load: Load,
) -> Result<SteadyResult> {
    let settings = ctx.relay_settings(db, mode, sink, destination, name);
    let dir = run_dir(&ctx.work_dir, name)?;
    let mut relay = RelayProcess::start(&ctx.relay_bin, &settings, &dir)?;
    let consumer = destination.consume(ctx, Some(&mut relay)).await?;
    relay.wait_ready(Duration::from_secs(30)).await?;
    let written = write_at_rate(db, load.rate, load.duration, load.writers).await?;
    let marked = relay.wait_acknowledged(written.events, STALL).await?;
    let tail = marked.saturating_duration_since(written.finished);
    let usage = relay.usage()?;
    let checker = match consumer {
        Some(consumer) => {
            consumer
                .wait_for(written.events, Duration::from_secs(15))
                .await;
            relay.stop()?;
            Some(consumer.finish().await?)
        }
        None => {
            relay.stop()?;
            None
        }
    };
    let (ids, commit_to_ack, commit_to_consumer) = latencies(db, checker.as_ref()).await?;
    Ok(SteadyResult {
        target_rate: load.rate,
        seconds: written.elapsed.as_secs_f64(),
        events: written.events,
        written_per_s: written.events as f64 / written.elapsed.as_secs_f64(),
        tail_ms: tail.as_secs_f64() * 1000.0,
        keeps_up: tail <= KEEP_UP_TAIL,
        commit_to_ack,
        commit_to_consumer,
        peak_rss_mb: usage.peak_rss_mb,
        cpu_s_per_1k: usage.cpu_per_1k(written.events),
        check: match &checker {
            Some(checker) => checker.finish(&ids),
            None => CheckReport::not_checked(ids.len() as u64),
        },
    })
}

/// The written ids and both latencies of every row.
async fn latencies(
    db: &BenchDb,
    checker: Option<&Checker>,
) -> Result<(Vec<u64>, Option<Percentiles>, Option<Percentiles>)> {
    let rows = db.row_times().await?;
    let to_ack = rows
        .iter()
        .filter_map(|r| r.sent.map(|sent| sent - r.created))
        .collect();
    let to_consumer = rows
        .iter()
        .filter_map(|r| {
            let seen = checker?.first_seen(r.id)?;
            Some(seen - r.created)
        })
        .collect();
    let ids = rows.iter().map(|r| r.id).collect();
    Ok((ids, Percentiles::of(to_ack), Percentiles::of(to_consumer)))
}
