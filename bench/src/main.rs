//! outbox-bench: measures the relay (the release binary, as deployed)
//! against the real Postgres and brokers on this machine: backlog drain
//! throughput and steady-load latency for every mode x sink, peak RSS and
//! CPU per event, a consumer that checks every event arrived in order, and
//! baselines measured in the same run so results are ratios. Run it with
//! `bench/run.sh`; results go to `bench/results/`.

mod baseline;
mod checker;
mod consumer;
mod database;
mod latency;
mod relay;
mod report;
mod scenario;
mod tansu;
mod usage;
mod workload;
mod writer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;

use relay::{Mode, SinkKind};
use report::{BaselineRun, Options, Results, Run};
use scenario::{Context, KafkaBroker, Load};

/// The harness's error type: anything, with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The harness's result type.
pub type Result<T> = std::result::Result<T, BoxError>;

/// An error with its causes, `outer: inner: ...` (tokio-postgres's own
/// message is only "db error").
pub fn describe(error: &BoxError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// When the harness started, for the progress lines.
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Prints a progress line on stderr, stamped with the time since start.
pub fn note(line: &str) {
    let t = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    eprintln!("[{:02}:{:02}] {line}", t / 60, t % 60);
}

/// Benchmark the relay: drain and steady-load runs per mode x sink, with
/// baselines measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "outbox-bench")]
struct Cli {
    /// Source modes to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "polling,replication"
    )]
    modes: Vec<Mode>,
    /// Sinks to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "stdout,rabbitmq,kafka"
    )]
    sinks: Vec<SinkKind>,
    /// Events preloaded for each drain (and each baseline).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Rows per transaction when preloading.
    #[arg(long, default_value_t = 100)]
    preload_txn_rows: u64,
    /// The relay's batch size, also the baselines' batch and confirm window.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Steady-load rates, events/s.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,20000")]
    rates: Vec<u64>,
    /// Seconds each steady-load rate is held.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Writer sessions for steady load (must divide 1000).
    #[arg(long, default_value_t = 4)]
    writers: u64,
    /// Skip the drain runs (and their baselines).
    #[arg(long)]
    no_drain: bool,
    /// Skip the steady-load runs.
    #[arg(long)]
    no_steady: bool,
    /// Postgres server URL, without a database; trust auth, a superuser.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp: String,
    /// Kafka bootstrap servers, or `private`: a fresh tansu (the binary
    /// scripts/tansu.sh builds) per Kafka measurement, on a port of its own.
    #[arg(long, default_value = "private")]
    kafka: String,
    /// Check Kafka runs with a consumer too (tansu 0.6 cannot take one
    /// beside a fast producer; see bench/src/scenario/destination.rs).
    #[arg(long)]
    kafka_consumer: bool,
    /// Partitions of each run's Kafka topic.
    #[arg(long, default_value_t = 1)]
    kafka_partitions: i32,
    /// The relay binary; default: `outbox-relay` beside this binary.
    #[arg(long)]
    relay: Option<PathBuf>,
    /// Where the results go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            note("some runs failed or lost/reordered events; see the table");
            ExitCode::FAILURE
        }
        Err(e) => {
            note(&format!("outbox-bench: {}", describe(&e)));
            ExitCode::FAILURE
        }
    }
}

/// Runs everything asked for and writes the results; false if a run failed.
async fn run(cli: Cli) -> Result<bool> {
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let relay_bin = match &cli.relay {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("outbox-relay"),
    };
    if !relay_bin.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --locked` (bench/run.sh does)",
            relay_bin.display()
        )
        .into());
    }
    let work_dir = std::env::temp_dir().join(format!("outbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)?;
    let ctx = Context {
        relay_bin,
        server: cli.postgres.clone(),
        amqp_url: cli.amqp.clone(),
        kafka: match cli.kafka.as_str() {
            "private" => KafkaBroker::Private(tansu::PrivateTansu::default_binary()),
            brokers => KafkaBroker::External(brokers.to_owned()),
        },
        kafka_partitions: cli.kafka_partitions,
        kafka_consumer: cli.kafka_consumer,
        batch_size: cli.batch_size,
        work_dir: work_dir.clone(),
    };
    let machine = report::Machine::detect(&cli.postgres).await;
    note(&format!("machine: {}", machine.line()));

    let mut results = Results {
        machine,
        commit: report::commit(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
        started_at,
        minutes: 0.0,
        options: Options {
            events: cli.events,
            rows_per_preload_txn: cli.preload_txn_rows,
            batch_size: cli.batch_size,
            rates: cli.rates.clone(),
            steady_seconds: cli.duration,
            writers: cli.writers,
            kafka_partitions: cli.kafka_partitions,
        },
        baselines: Vec::new(),
        drain: Vec::new(),
        steady: Vec::new(),
    };
    if !cli.no_drain {
        drains(&cli, &ctx, &mut results).await;
    }
    if !cli.no_steady {
        steadies(&cli, &ctx, &mut results).await;
    }
    results.minutes = started.elapsed().as_secs_f64() / 60.0;
    let md = report::write(&results, &cli.out)?;
    let _ = std::fs::remove_dir_all(&work_dir);
    println!("{}", report::render(&results));
    note(&format!("results: {} (and .json)", md.display()));
    // A run fails if it could not be measured or its consumer check found
    // a lost or reordered event.
    let failed = results
        .drain
        .iter()
        .any(|r| r.result.as_ref().is_none_or(|d| !d.check.ok()))
        || results
            .steady
            .iter()
            .any(|r| r.result.as_ref().is_none_or(|s| !s.check.ok()));
    Ok(!failed)
}

/// Per mode: its source baseline, then per sink the broker's baseline and
/// the relay's drain, so every ratio compares measurements minutes apart.
async fn drains(cli: &Cli, ctx: &Context, results: &mut Results) {
    for &mode in &cli.modes {
        note(&format!("{}: source baseline", mode.name()));
        let source =
            match scenario::source_baseline(ctx, mode, cli.events, cli.preload_txn_rows).await {
                Ok(b) => {
                    note(&format!("  {}: {:.0} events/s", b.name, b.events_per_s));
                    results.baselines.push(BaselineRun {
                        before: mode,
                        baseline: b.clone(),
                    });
                    Some(b.events_per_s)
                }
                Err(e) => {
                    note(&format!("  source baseline failed: {}", describe(&e)));
                    None
                }
            };
        for &sink in &cli.sinks {
            let broker = match scenario::broker_baseline(ctx, sink, cli.events).await {
                Ok(Some(b)) => {
                    note(&format!("  {}: {:.0} events/s", b.name, b.events_per_s));
                    results.baselines.push(BaselineRun {
                        before: mode,
                        baseline: b.clone(),
                    });
                    Some(b.events_per_s)
                }
                Ok(None) => None,
                Err(e) => {
                    note(&format!(
                        "  {} baseline failed: {}",
                        sink.name(),
                        describe(&e)
                    ));
                    None
                }
            };
            note(&format!(
                "{} -> {}: drain of {}",
                mode.name(),
                sink.name(),
                cli.events
            ));
            let outcome =
                retried(|| scenario::drain(ctx, mode, sink, cli.events, cli.preload_txn_rows))
                    .await
                    .map(|mut d| {
                        d.source_baseline_per_s = source;
                        d.ratio_to_source = source.map(|b| d.events_per_s / b);
                        d.broker_baseline_per_s = broker;
                        d.ratio_to_broker = broker.map(|b| d.events_per_s / b);
                        d
                    });
            match &outcome {
                Ok(d) => note(&format!(
                    "  {:.0} events/s, peak RSS {:.1} MB, {:.3} CPU s/1k, check: {}",
                    d.events_per_s,
                    d.peak_rss_mb,
                    d.cpu_s_per_1k,
                    d.check.summary()
                )),
                Err(e) => note(&format!("  failed: {}", describe(e))),
            }
            results.drain.push(Run::new(mode, sink, outcome));
        }
    }
}

/// Every mode x sink x rate.
async fn steadies(cli: &Cli, ctx: &Context, results: &mut Results) {
    for &mode in &cli.modes {
        for &sink in &cli.sinks {
            for &rate in &cli.rates {
                note(&format!(
                    "{} -> {}: steady {rate}/s for {} s",
                    mode.name(),
                    sink.name(),
                    cli.duration
                ));
                let load = Load {
                    rate,
                    duration: Duration::from_secs(cli.duration),
                    writers: cli.writers,
                };
                let outcome = retried(|| scenario::steady(ctx, mode, sink, load)).await;
                match &outcome {
                    Ok(s) => note(&format!(
                        "  written {:.0}/s, tail {:.0} ms, commit->ack {}, commit->consumer {}, check: {}",
                        s.written_per_s,
                        s.tail_ms,
                        latency::Percentiles::cell(s.commit_to_ack.as_ref()),
                        latency::Percentiles::cell(s.commit_to_consumer.as_ref()),
                        s.check.summary()
                    )),
                    Err(e) => note(&format!("  failed: {}", describe(e))),
                }
                results.steady.push(Run::new(mode, sink, outcome));
            }
        }
    }
}

/// Runs a measurement, and once more if it failed: on this shared machine
/// the test suite restarts Postgres and brokers now and then.
async fn retried<T, F: Future<Output = Result<T>>>(mut measure: impl FnMut() -> F) -> Result<T> {
    match measure().await {
        Ok(value) => Ok(value),
        Err(e) => {
            note(&format!("  failed ({}); once more", describe(&e)));
            tokio::time::sleep(Duration::from_secs(5)).await;
            measure().await
        }
    }
}
