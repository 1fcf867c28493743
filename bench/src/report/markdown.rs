//! The markdown tables of a run: baselines, drain (throughput and ratios,
//! memory, CPU, consumer check) and steady load (latency percentiles).

use std::fmt::Write as _;

use super::{Results, Run};
use crate::latency::Percentiles;
use crate::scenario::{DrainResult, SteadyResult};

/// The whole results file.
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let o = &r.options;
    let _ = writeln!(out, "# outbox-relay benchmark, {}\n", r.started_at);
    let _ = writeln!(out, "- machine: {}", r.machine.line());
    let _ = writeln!(out, "- commit: {}", r.commit);
    let _ = writeln!(
        out,
        "- drain: {} events (~300-byte JSON, 1000 aggregates, {} per transaction); batch size {}; \
         steady: {} s per rate, {} writer sessions; Kafka topics with {} partition(s); took {:.1} min\n",
        o.events,
        o.rows_per_preload_txn,
        o.batch_size,
        o.steady_seconds,
        o.writers,
        o.kafka_partitions,
        r.minutes
    );
    if !r.drain.is_empty() {
        out.push_str(&drain_table(&r.drain));
    }
    if !r.steady.is_empty() {
        out.push_str(&steady_table(&r.steady));
    }
    if !r.baselines.is_empty() {
        out.push_str("\n### Baselines (same run)\n\n");
        out.push_str("| baseline | measured before | events | seconds | events/s | how |\n");
        out.push_str("| --- | --- | ---: | ---: | ---: | --- |\n");
        for b in &r.baselines {
            let x = &b.baseline;
            let _ = writeln!(
                out,
                "| {} | {} runs | {} | {:.2} | {} | {} |",
                x.name,
                b.before.name(),
                x.events,
                x.seconds,
                rate(x.events_per_s),
                x.how
            );
        }
    }
    out
}

/// The drain table.
pub fn drain_table(runs: &[Run<DrainResult>]) -> String {
    let mut out = String::from("### Backlog drain\n\n");
    out.push_str(
        "| mode | sink | events/s | vs source baseline | vs broker baseline | peak RSS MB | CPU s / 1k events | consumer check |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for run in runs {
        let _ = write!(out, "| {} | {} ", run.mode.name(), run.sink.name());
        match (&run.result, &run.error) {
            (Some(d), _) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.1} | {:.3} | {} |",
                    rate(d.events_per_s),
                    ratio(d.ratio_to_source, d.source_baseline_per_s),
                    ratio(d.ratio_to_broker, d.broker_baseline_per_s),
                    d.peak_rss_mb,
                    d.cpu_s_per_1k,
                    d.check.summary()
                );
            }
            (None, error) => {
                let _ = writeln!(out, "| failed: {} | | | | | |", cell(error));
            }
        }
    }
    out
}

/// The steady-load table.
pub fn steady_table(runs: &[Run<SteadyResult>]) -> String {
    let mut out = String::from("\n### Steady load\n\n");
    out.push_str(
        "| mode | sink | target/s | written/s | keeps up (tail ms) | commit→ack ms p50 / p99 / max | commit→consumer ms p50 / p99 / max | peak RSS MB | CPU s / 1k events | consumer check |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
    for run in runs {
        let _ = write!(out, "| {} | {} ", run.mode.name(), run.sink.name());
        match (&run.result, &run.error) {
            (Some(s), _) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} ({:.0}) | {} | {} | {:.1} | {:.3} | {} |",
                    s.target_rate,
                    rate(s.written_per_s),
                    if s.keeps_up { "yes" } else { "no" },
                    s.tail_ms,
                    Percentiles::cell(s.commit_to_ack.as_ref()),
                    Percentiles::cell(s.commit_to_consumer.as_ref()),
                    s.peak_rss_mb,
                    s.cpu_s_per_1k,
                    s.check.summary()
                );
            }
            (None, error) => {
                let _ = writeln!(out, "| failed: {} | | | | | | | |", cell(error));
            }
        }
    }
    out
}

/// `12.3k`.
fn rate(per_s: f64) -> String {
    format!("{:.1}k", per_s / 1000.0)
}

/// `0.85 (of 41.0k)`, or `-` without a baseline.
fn ratio(ratio: Option<f64>, baseline: Option<f64>) -> String {
    match (ratio, baseline) {
        (Some(r), Some(b)) => format!("{r:.2} (of {})", rate(b)),
        _ => "-".into(),
    }
}

/// An error as one table cell.
fn cell(error: &Option<String>) -> String {
    error
        .as_deref()
        .unwrap_or("unknown")
        .replace('|', "/")
        .replace('\n', " ")
}
