//! The results of one harness run: every measurement with the baselines it
//! is divided by, written as `bench/results/<date>-<commit>.json` and a
//! markdown table beside it.

mod machine;
mod markdown;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use machine::{Machine, commit};
pub use markdown::render;

use crate::Result;
use crate::baseline::Baseline;
use crate::relay::{Mode, SinkKind};
use crate::scenario::{DrainResult, SteadyResult};

/// Everything one harness run measured.
#[derive(Debug, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub commit: String,
    pub started_at: String,
    pub minutes: f64,
    pub options: Options,
    pub baselines: Vec<BaselineRun>,
    pub drain: Vec<Run<DrainResult>>,
    pub steady: Vec<Run<SteadyResult>>,
}

/// The options the run was made with.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub events: u64,
    pub rows_per_preload_txn: u64,
    pub batch_size: usize,
    pub rates: Vec<u64>,
    pub steady_seconds: u64,
    pub writers: u64,
    pub kafka_partitions: i32,
}

/// A baseline, and the mode whose runs it was measured just before.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineRun {
    pub before: Mode,
    #[serde(flatten)]
    pub baseline: Baseline,
}

/// One mode x sink measurement, or why it failed.
#[derive(Debug, Clone, Serialize)]
pub struct Run<T> {
    pub mode: Mode,
    pub sink: SinkKind,
    pub result: Option<T>,
    pub error: Option<String>,
}

impl<T> Run<T> {
    /// Records the outcome of one measurement.
    pub fn new(mode: Mode, sink: SinkKind, outcome: Result<T>) -> Self {
        match outcome {
            Ok(result) => Run {
                mode,
                sink,
                result: Some(result),
                error: None,
            },
            Err(e) => Run {
                mode,
                sink,
                result: None,
                error: Some(crate::describe(&e)),
            },
        }
    }
}

/// Writes `<dir>/<date>-<commit>.json` and `.md`; returns the markdown path.
pub fn write(results: &Results, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let date = results.started_at.get(..10).unwrap_or("undated");
    let stem = format!("{date}-{}", results.commit);
    std::fs::write(
        dir.join(format!("{stem}.json")),
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    let md = dir.join(format!("{stem}.md"));
    std::fs::write(&md, render(results))?;
    Ok(md)
}
