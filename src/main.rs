//! outbox-relay: publishes the rows of a PostgreSQL transactional outbox to
//! RabbitMQ (or stdout), at least once, marking each row sent only after the
//! broker confirmed it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use outbox_relay::config::{Config, SinkKind, SourceMode};
use outbox_relay::leader::{Election, Leadership, Lease};
use outbox_relay::metrics::{Component, LabelSets, metrics};
use outbox_relay::pipeline::{Pipeline, PipelineError};
use outbox_relay::postgres::RefusalBackoff;
use outbox_relay::replay::{self, ReplayRange};
use outbox_relay::shutdown::Shutdown;
use outbox_relay::sink::{
    KafkaSink, RabbitMqSink, Sink, SinkError, StdoutSink, dead_letter_reasons,
};
use outbox_relay::source::{PollingSource, ReplicationSource, Source, SourceError};
use outbox_relay::{backlog, check, http, migrate, shutdown, status, telemetry};

/// Exit status for a configuration error (as opposed to 1 for a failure).
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "outbox-relay", version, about)]
struct Cli {
    /// TOML configuration file; keys not in it take their defaults, and
    /// OUTBOX_RELAY_* environment variables override it.
    #[arg(long, short, env = "OUTBOX_RELAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Clone)]
enum Command {
    /// Run the relay until SIGTERM or SIGINT (the default).
    Run,
    /// Create the outbox table and NOTIFY trigger if missing (and the
    /// relay's own tables and, in replication mode, the publication); safe
    /// to repeat. Run it as the tables' owner.
    Migrate {
        /// Also grant this role what the relay needs for the configured
        /// mode (the ones it lacks), e.g. the role the relay logs in as.
        #[arg(long, value_name = "ROLE")]
        grant_to: Option<String>,
    },
    /// Validate the configuration and check Postgres and the broker.
    Check,
    /// Replication mode: drop and forget the slot (after it was lost or
    /// dropped), so the next start recreates it and first publishes every
    /// row not yet marked sent.
    RecoverSlot,
    /// What the relay and its outbox are doing (role, leader, backlog,
    /// throughput, lag, slot, dead letters, sink). Exit status: 0 all
    /// well, 1 something needs attention, 2 config or Postgres unreadable.
    Status {
        /// JSON for scripts (the shape the README documents).
        #[arg(long)]
        json: bool,
        /// The relay's metrics listener to read (default: metrics.listen).
        #[arg(long, value_name = "HOST:PORT")]
        relay: Option<String>,
        /// An unsent row older than this needs attention.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        max_unsent_age: std::time::Duration,
    },
    /// Show or retry the events the broker could never take.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Publish already-sent events again (for a consumer that lost its
    /// data): they go back through the outbox, so the running relay
    /// publishes them, in order, at least once.
    Replay {
        /// First id to replay.
        #[arg(long)]
        from_id: Option<String>,
        /// Last id to replay.
        #[arg(long)]
        to_id: Option<String>,
        /// Events created at or after this time: a timestamp, or a duration
        /// such as `2h` meaning that long ago.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand, Clone)]
enum DeadLetterAction {
    /// List dead letters (not yet retried, unless --include-retried).
    List {
        /// Only this reason (oversized, unroutable, template, ...).
        #[arg(long)]
        reason: Option<String>,
        /// Only this aggregate type.
        #[arg(long)]
        aggregate_type: Option<String>,
        /// Only letters recorded at or after this time: a timestamp, or a
        /// duration such as `2h` meaning that long ago.
        #[arg(long)]
        since: Option<String>,
        /// Show letters already retried too.
        #[arg(long)]
        include_retried: bool,
        /// Show at most this many (the newest).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put dead letters back in the stream, once their cause is fixed.
    Retry {
        /// Dead-letter ids, as `list` shows them.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Every letter not retried yet.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let telemetry = match telemetry::init(&config.log, &config.tracing) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => match run(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "relay stopped");
                    ExitCode::FAILURE
                }
            },
            Command::Migrate { grant_to } => match migrate::run(&config, grant_to.as_deref()).await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("migrate failed: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::RecoverSlot => match recover_slot(&config).await {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("recover-slot failed: {e}");
                    ExitCode::FAILURE
                }
            },
            Command::DeadLetters { action } => dead_letters(&config, action).await,
            Command::Status {
                json,
                relay,
                max_unsent_age,
            } => {
                let mut options = status::Options::for_config(&config);
                if let Some(address) = relay {
                    options.relay = status::RelayView::Http(address);
                }
                options.max_unsent_age = max_unsent_age;
                ExitCode::from(status::run(&config, &options, json).await)
            }
            Command::Replay {
                from_id,
                to_id,
                since,
            } => {
                let range = ReplayRange {
                    from_id,
                    to_id,
                    since,
                };
                let result = replay::replay(&config, &range).await.map(|replayed| {
                    let mut lines = vec![match replayed.count {
                        0 => format!(
                            "replayed 0 events: no sent event of {} is in the range",
                            config.outbox.table
                        ),
                        count => format!(
                            "replayed {count} event(s) from {}; the relay will publish them again",
                            config.outbox.table
                        ),
                    }];
                    lines.extend(replayed.beyond_retention);
                    lines
                });
                report(result, |e| e.is_usage())
            }
            Command::Check => match check::run(&config).await {
                0 => ExitCode::SUCCESS,
                problems => {
                    println!("{problems} problem(s) found");
                    ExitCode::FAILURE
                }
            },
        }
    });
    drop(runtime);
    telemetry.shutdown();
    code
}

/// Prints a subcommand's lines, or its error, and picks the exit status:
/// 2 for a usage error (`usage(e)`), 1 for any other.
fn report<E: std::fmt::Display>(
    result: Result<Vec<String>, E>,
    usage: impl Fn(&E) -> bool,
) -> ExitCode {
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) if usage(&e) => {
            eprintln!("usage error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dead_letters(config: &Config, action: DeadLetterAction) -> ExitCode {
    use outbox_relay::dead_letters::{DeadLetterError, ListFilter, RetryTarget, list, retry};
    match action {
        DeadLetterAction::List {
            reason,
            aggregate_type,
            since,
            include_retried,
            limit,
        } => {
            let filter = ListFilter {
                reason,
                aggregate_type,
                since,
                include_retried,
                limit,
            };
            report(list(config, &filter).await, DeadLetterError::is_usage)
        }
        DeadLetterAction::Retry { ids, all } => {
            let target = if all {
                RetryTarget::All
            } else {
                RetryTarget::Ids(ids)
            };
            match retry(config, target).await {
                Ok(outcome) if !outcome.missing.is_empty() => {
                    let missing: Vec<String> = outcome.missing.iter().map(i64::to_string).collect();
                    for line in outcome.lines {
                        println!("{line}");
                    }
                    eprintln!("error: no such dead letter: {}", missing.join(", "));
                    ExitCode::FAILURE
                }
                result => report(result.map(|o| o.lines), DeadLetterError::is_usage),
            }
        }
    }
}

async fn recover_slot(config: &Config) -> Result<String, SourceError> {
    let table = outbox_relay::outbox::TableName::parse(&config.outbox.table)
        .map_err(SourceError::Replication)?;
    let client = outbox_relay::postgres::connect(&config.postgres, "recover-slot", None).await?;
    outbox_relay::source::replication::slot::recover(
        &client,
        &table,
        &config.source.replication.slot,
    )
    .await
}

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("binding metrics.listen {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    Source(SourceError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("building the sink: {0}")]
    Sink(SinkError),
}

async fn run(config: Config) -> Result<(), RunError> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        postgres = %config.postgres.url,
        table = %config.outbox.table,
        sink = config.sink.kind.label(),
        "starting"
    );
    prepare_metrics(&config);
    // A panic the pipeline cannot catch still names the event it was on.
    outbox_relay::crash_guard::install_panic_hook();
    let (trigger, shutdown) = shutdown::channel();
    // Register the handlers before anything slow, so an early SIGTERM counts.
    let signal = trigger.on_signal().map_err(RunError::Signals)?;
    let signals = tokio::spawn(async move {
        let name = signal.await;
        tracing::info!(signal = name, "shutting down");
    });

    // Validated by Config::validate.
    let addr: SocketAddr = config
        .metrics
        .listen
        .parse()
        .map_err(|_| RunError::Listen(SocketAddr::from(([0, 0, 0, 0], 0)), bad_addr()))?;
    let server = http::serve(addr, config.clone(), shutdown.clone())
        .await
        .map_err(|e| RunError::Listen(addr, e))?;
    tokio::spawn(server);
    tokio::spawn(backlog::run(config.clone(), shutdown.clone()));
    tokio::spawn(outbox_relay::grants::log_missing(config.clone()));

    let result = lead(&config, &shutdown).await;
    signals.abort();
    result
}

/// Creates every series this relay can produce, at 0 (see
/// [`outbox_relay::metrics::Metrics::prepare`]).
fn prepare_metrics(config: &Config) {
    let components: &[Component] = if config.leader.enabled {
        &[Component::Postgres, Component::Broker, Component::Election]
    } else {
        &[Component::Postgres, Component::Broker]
    };
    outbox_relay::rate_limit::export_limit(&config.sink);
    metrics().prepare(&LabelSets {
        sink: config.sink.kind.label(),
        source: config.source.mode.label(),
        publish_failure_reasons: SinkError::REASONS,
        dead_letter_reasons: dead_letter_reasons(config.sink.kind),
        source_error_reasons: SourceError::REASONS,
        components,
        replication: config.source.mode == SourceMode::Replication,
    });
}

/// Waits to be elected (when `leader.enabled`), relays while leader, and
/// goes back to standby if the lease is lost.
async fn lead(config: &Config, shutdown: &Shutdown) -> Result<(), RunError> {
    let mut election = Election::new(config);
    loop {
        let lease = if config.leader.enabled {
            match election.acquire(shutdown).await {
                Ok(Some(lease)) => lease,
                Ok(None) => return Ok(()),
                Err(e) => return Err(RunError::Source(SourceError::Connect(e))),
            }
        } else {
            Lease::unconditional()
        };
        metrics().leader.set(1);
        let leadership = lease.leadership();
        // Retention runs on the leader only, and stops with its lease.
        let retention = tokio::spawn(outbox_relay::retention::run(
            config.clone(),
            shutdown.clone(),
        ));
        let result = tokio::select! {
            result = relay_from_source(config, shutdown.clone(), leadership) => result,
            () = lease.lost() => Err(RunError::Pipeline(PipelineError::LostLeadership)),
        };
        retention.abort();
        // Dropping the relay above closed its sessions; now the lock's.
        drop(lease);
        metrics().leader.set(0);
        metrics().set_connected(Component::Postgres, false);
        metrics().set_connected(Component::Broker, false);
        match result {
            Err(RunError::Pipeline(PipelineError::LostLeadership)) => {
                tracing::warn!("lost leadership: stopped publishing; back to standby");
            }
            other => return other,
        }
    }
}

/// Builds the configured source and relays from it.
async fn relay_from_source(
    config: &Config,
    shutdown: Shutdown,
    leadership: Leadership,
) -> Result<(), RunError> {
    match config.source.mode {
        SourceMode::Polling => {
            with_sink(config, PollingSource::new(config), shutdown, leadership).await
        }
        SourceMode::Replication => match ReplicationSource::new(config) {
            Ok(source) => with_sink(config, source, shutdown, leadership).await,
            Err(e) => Err(RunError::Source(e)),
        },
    }
}

/// Builds the configured sink and relays from `source` to it.
async fn with_sink<S: Source>(
    config: &Config,
    source: S,
    shutdown: Shutdown,
    leadership: Leadership,
) -> Result<(), RunError> {
    match config.sink.kind {
        SinkKind::Rabbitmq => match RabbitMqSink::new(&config.sink.rabbitmq) {
            Ok(sink) => relay(config, source, sink, shutdown, leadership).await,
            Err(e) => Err(RunError::Sink(e)),
        },
        SinkKind::Kafka => match KafkaSink::new(&config.sink.kafka) {
            Ok(sink) => relay(config, source, sink, shutdown, leadership).await,
            Err(e) => Err(RunError::Sink(e)),
        },
        SinkKind::Stdout => relay(config, source, StdoutSink::new(), shutdown, leadership).await,
    }
}

fn bad_addr() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, "not host:port")
}

/// Connects both ends, publishes any catch-up backlog, then runs the
/// pipeline until shutdown (plus grace).
async fn relay<S: Source, K: Sink>(
    config: &Config,
    mut source: S,
    mut sink: K,
    shutdown: Shutdown,
    leadership: Leadership,
) -> Result<(), RunError> {
    if !connect_both(config, &mut source, &mut sink, &shutdown).await? {
        return Ok(());
    }
    tracing::info!("connected; relaying");
    let grace = config.shutdown_grace;
    let work = async {
        let mut rate_limit = None;
        if let Some(until) = source.catch_up_bound() {
            tracing::info!(
                until,
                "publishing rows written before the replication slot existed"
            );
            let mut pass = Pipeline::new(
                PollingSource::until(config, until),
                sink,
                config,
                shutdown.clone(),
                leadership.clone(),
            );
            pass.drain_only = true;
            pass.run().await?;
            if shutdown.is_requested() {
                return Ok(());
            }
            source
                .finish_catch_up()
                .await
                .map_err(PipelineError::Source)?;
            sink = pass.sink;
            rate_limit = Some(pass.rate_limit);
        }
        let mut pipeline = Pipeline::new(source, sink, config, shutdown.clone(), leadership);
        // The stream goes on with the pass's limiter: no second burst.
        if let Some(rate_limit) = rate_limit {
            pipeline.rate_limit = rate_limit;
        }
        pipeline.run().await
    };
    tokio::select! {
        result = work => {
            result?;
            tracing::info!("stopped cleanly");
        }
        () = async { shutdown.requested().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(
                ?grace,
                "shutdown grace period over; abandoning the in-flight batch (its rows stay unsent)"
            );
        }
    }
    Ok(())
}

/// Connects the source and the sink, retrying connection errors with
/// backoff. A wrong outbox table is fatal. A server that refuses the login,
/// the database or a privilege is retried too, logged as an error and at
/// the slower [`RefusalBackoff`] pace. Returns false on shutdown.
async fn connect_both<S: Source, K: Sink>(
    config: &Config,
    source: &mut S,
    sink: &mut K,
    shutdown: &Shutdown,
) -> Result<bool, RunError> {
    let mut delay = config.retry.initial_backoff;
    let mut refusals = RefusalBackoff::default();
    let mut source_up = false;
    loop {
        let mut wait = delay;
        if !source_up {
            match source.connect().await {
                Ok(()) => source_up = true,
                Err(e) => match e.refusal() {
                    Some(failure) => {
                        wait = refusals.next_delay();
                        tracing::error!(error = %e, "{}; retrying in {wait:?}", failure.summary());
                    }
                    // At startup a replication error (wal_level, publication,
                    // slot in use) needs the operator, not a retry.
                    None if matches!(e, SourceError::Replication(_)) || e.is_fatal() => {
                        return Err(RunError::Source(e));
                    }
                    None => tracing::warn!(error = %e, "postgres not reachable yet; retrying"),
                },
            }
        }
        if source_up {
            match sink.connect().await {
                Ok(()) => return Ok(true),
                Err(e) => tracing::warn!(error = %e, "broker not reachable yet; retrying"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.requested() => return Ok(false),
        }
        delay = (delay * 2).min(config.retry.max_backoff);
    }
}
