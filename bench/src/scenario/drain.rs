//! Backlog drain: `events` rows are preloaded (in transactions of
//! `per_txn`), then the relay is started and timed from its spawn until its
//! `/metrics` says every event is confirmed and marked (checked against the
//! table afterwards). Peak RSS and CPU are read just before it is stopped.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{Context, Destination};
use crate::Result;
use crate::checker::CheckReport;
use crate::database::BenchDb;
use crate::relay::{self, Mode, RelayProcess, SinkKind};

/// How long the relay may acknowledge nothing before the run is given up
/// (longer than the sinks' 30 s confirm and message timeouts).
pub const STALL: Duration = Duration::from_secs(45);

/// How long the consumer may go without a new message before the check
/// counts the rest as missing.
const CONSUMER_IDLE: Duration = Duration::from_secs(15);

/// One drain's figures; the ratios are filled in against the baselines.
#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    pub source_baseline_per_s: Option<f64>,
    pub ratio_to_source: Option<f64>,
    pub broker_baseline_per_s: Option<f64>,
    pub ratio_to_broker: Option<f64>,
    pub peak_rss_mb: f64,
    pub cpu_s_per_1k: f64,
    pub check: CheckReport,
}

/// A migrated database with `events` rows, and the slot first in
/// replication mode (so the backlog is streamed, not caught up by polling).
pub async fn prepared_db(ctx: &Context, mode: Mode, events: u64, per_txn: u64) -> Result<BenchDb> {
    let db = BenchDb::create(&ctx.server, &ctx.unique_name("db")).await?;
    relay::migrate(&ctx.relay_bin, &db.url, &ctx.work_dir)?;
    if mode == Mode::Replication {
        db.create_slot().await?;
    }
    if events > 0 {
        db.preload(events, per_txn).await?;
    }
    Ok(db)
}

/// Runs one drain of `events` preloaded events.
pub async fn drain(
    ctx: &Context,
    mode: Mode,
    sink: SinkKind,
    events: u64,
    per_txn: u64,
) -> Result<DrainResult> {
    let db = prepared_db(ctx, mode, events, per_txn).await?;
    let name = ctx.unique_name("drain");
    let destination = Destination::create(ctx, sink, &name).await?;
    let result = drain_into(ctx, &db, &destination, mode, sink, &name, events).await;
    destination.delete().await;
    result
}

async fn drain_into(
    ctx: &Context,
    db: &BenchDb,
    destination: &Destination,
    mode: Mode,
    sink: SinkKind,
    name: &str,
    events: u64,
) -> Result<DrainResult> {
    let settings = ctx.relay_settings(db, mode, sink, destination, name);
    let dir = run_dir(&ctx.work_dir, name)?;
    let mut relay = RelayProcess::start(&ctx.relay_bin, &settings, &dir)?;
    let consumer = destination.consume(ctx, Some(&mut relay)).await?;
    let done = relay.wait_acknowledged(events, STALL).await?;
    let elapsed = done - relay.started;
    let usage = relay.usage()?;
    let unsent = db.unsent().await?;
    if unsent != 0 {
        return Err(
            format!("{unsent} rows still unsent after the relay acknowledged {events}").into(),
        );
    }
    let check = match consumer {
        Some(consumer) => {
            consumer.wait_for(events, CONSUMER_IDLE).await;
            relay.stop()?;
            let checker = consumer.finish().await?;
            checker.finish(&db.written_ids().await?)
        }
        None => {
            relay.stop()?;
            CheckReport::not_checked(events)
        }
    };
    let seconds = elapsed.as_secs_f64();
    Ok(DrainResult {
        events,
        seconds,
        events_per_s: events as f64 / seconds,
        source_baseline_per_s: None,
        ratio_to_source: None,
        broker_baseline_per_s: None,
        ratio_to_broker: None,
        peak_rss_mb: usage.peak_rss_mb,
        cpu_s_per_1k: usage.cpu_per_1k(events),
        check,
    })
}

/// A directory of its own for one run's config and log.
pub fn run_dir(work: &Path, name: &str) -> Result<std::path::PathBuf> {
    let dir = work.join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
