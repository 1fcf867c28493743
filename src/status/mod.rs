//! What a relay is doing, on one screen: `outbox-relay status` (text, or
//! `--json` for scripts) and the daemon's `/status` page. Both gather the
//! same [`Status`] with [`collect`]: Postgres says who holds the leader
//! lock, the backlog, the slot and the dead letters; the relay's own
//! counters (over HTTP from `metrics.listen`, or the daemon's registry)
//! say its role, its connections and the lag it measured.
//!
//! The JSON shape is [`Status`] serialised; its `format` field changes only
//! when a field is removed or changes meaning (new fields may appear).

mod collect;
pub mod exposition;
mod relay;
mod render_html;
mod render_text;
mod view;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{Config, MarkMode, SourceMode};
use exposition::Samples;
pub use relay::RelayView;
pub use render_html::html;
pub use render_text::text;

/// The version of the JSON shape (see the module docs).
pub const FORMAT: u32 = 1;

/// Exit status: nothing needs attention.
pub const EXIT_OK: u8 = 0;
/// Exit status: something needs attention (the `attention` list says what).
pub const EXIT_ATTENTION: u8 = 1;
/// Exit status: the configuration or Postgres could not be read.
pub const EXIT_UNREADABLE: u8 = 2;

/// The default of `--max-unsent-age`: an unsent row older than this needs
/// attention.
pub const DEFAULT_MAX_UNSENT_AGE: Duration = Duration::from_secs(300);

/// How long the relay's counter is watched when throughput cannot be read
/// from `sent_at`.
const COUNTER_WINDOW: Duration = Duration::from_secs(1);

/// What to look at and what counts as a problem.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the relay's counters are read.
    pub relay: RelayView,
    /// An unsent row older than this needs attention.
    pub max_unsent_age: Duration,
}

impl Options {
    /// The relay at the configured `metrics.listen`, default threshold.
    pub fn for_config(config: &Config) -> Self {
        Options {
            relay: RelayView::from_listen(&config.metrics.listen),
            max_unsent_age: DEFAULT_MAX_UNSENT_AGE,
        }
    }
}

/// One look at a relay and its outbox. Every section read from Postgres is
/// `null` when it could not be read (an `attention` line says why).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// [`FORMAT`].
    pub format: u32,
    /// True when `attention` is empty.
    pub ok: bool,
    /// What needs an operator, one sentence each; empty when all is well.
    pub attention: Vec<String>,
    /// When this was gathered, seconds since the Unix epoch.
    pub collected_at_unix: u64,
    /// The configured outbox table.
    pub outbox: String,
    /// `polling` or `replication`.
    pub source_mode: &'static str,
    /// The `--max-unsent-age` this was judged by, in seconds.
    pub max_unsent_age_seconds: f64,
    pub postgres: PostgresState,
    pub relay: RelayState,
    pub leader: Option<LeaderState>,
    pub backlog: Option<Backlog>,
    pub throughput: Throughput,
    /// `null` when the relay is unreachable.
    pub lag: Option<Lag>,
    /// `null` outside replication mode (and when Postgres is unreadable).
    pub slot: Option<SlotState>,
    pub dead_letters: Option<DeadLetters>,
    pub retention: Retention,
    pub sink: SinkState,
}

/// Whether Postgres could be read at all.
#[derive(Debug, Clone, Serialize)]
pub struct PostgresState {
    pub reachable: bool,
    /// Why not, when it is not.
    pub error: Option<String>,
}

/// The relay whose counters were read.
#[derive(Debug, Clone, Serialize)]
pub struct RelayState {
    /// `host:port` of its `/metrics`, or `this process`.
    pub address: String,
    pub reachable: bool,
    /// Why it could not be read.
    pub error: Option<String>,
    /// `leader` or `standby`, as the relay reports itself.
    pub role: Option<Role>,
    /// Its `build_info` version.
    pub version: Option<String>,
    /// Each connection it keeps (`postgres`, `broker`, `election`): up or not.
    pub connections: Vec<Connection>,
}

/// A relay's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the leader lock (or runs without an election) and publishes.
    Leader,
    /// Waits to take over.
    Standby,
}

/// One of the relay's connections.
#[derive(Debug, Clone, Serialize)]
pub struct Connection {
    pub component: String,
    pub connected: bool,
}

/// Who holds the outbox's leader lock.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderState {
    /// `leader.enabled`: false means no lock is taken (one relay runs).
    pub election: bool,
    /// The session holding the lock; `null` when nobody does.
    pub holder: Option<LockHolder>,
    /// Other relays' election sessions (application name `outbox-relay
    /// leader`) waiting to take over.
    pub standbys: i64,
}

/// The Postgres session holding the leader lock, as `pg_stat_activity`
/// shows it (addresses are hidden from roles without `pg_read_all_stats`).
#[derive(Debug, Clone, Serialize)]
pub struct LockHolder {
    pub pid: i32,
    /// The relay's address as Postgres sees it; `null` over a Unix socket
    /// or when hidden.
    pub client_addr: Option<String>,
    pub client_port: Option<i32>,
    /// When the lock session started (`YYYY-MM-DD HH:MM:SS+TZ`).
    pub backend_start: Option<String>,
    pub application_name: Option<String>,
}

/// Rows waiting to be published.
#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub unsent: i64,
    /// `null` when nothing is unsent or the table has no `created_at`.
    pub oldest_unsent_age_seconds: Option<f64>,
}

/// How many events were published recently, and how that was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// `sent_at` (rows marked sent in the last minute, every relay's),
    /// `relay_counter` (the relay's `events_acknowledged_total` watched for
    /// `window_seconds`) or `none` (neither could be read).
    pub source: &'static str,
    pub window_seconds: f64,
    pub events: Option<u64>,
    pub events_per_second: Option<f64>,
}

/// Confirmation time minus `created_at`, from the relay's
/// `outbox_relay_event_lag_seconds` histogram: every event since it started.
#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    pub observations: u64,
    pub p50_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    pub p99_seconds: Option<f64>,
}

/// The replication slot, from `pg_replication_slots`.
#[derive(Debug, Clone, Serialize)]
pub struct SlotState {
    pub name: String,
    pub exists: bool,
    /// A session streams from it.
    pub active: Option<bool>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// WAL it holds back: current position minus its confirmed position.
    pub lag_bytes: Option<i64>,
    /// A failover slot (PostgreSQL 17+; `null` on older servers).
    pub failover: Option<bool>,
}

/// Dead letters not yet retried.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    pub table: String,
    pub pending: i64,
    /// Pending letters per reason, the most frequent first.
    pub by_reason: Vec<ReasonCount>,
}

/// Pending dead letters of one reason.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonCount {
    pub reason: String,
    pub count: i64,
}

/// What the retention job reports, once there is one.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Retention {
    /// No retention job runs here.
    NotConfigured,
    /// The relay exports the retention metrics.
    Reported {
        deleted_rows_total: Option<f64>,
        oldest_sent_age_seconds: Option<f64>,
        last_pass_unix_seconds: Option<f64>,
    },
}

/// The configured sink and whether the relay is connected to it.
#[derive(Debug, Clone, Serialize)]
pub struct SinkState {
    /// `rabbitmq`, `kafka` or `stdout`.
    pub kind: &'static str,
    /// The broker URL (password masked) or Kafka bootstrap servers.
    pub target: String,
    /// `null` when the relay is unreachable or on standby (a standby does
    /// not connect to the broker).
    pub connected: Option<bool>,
    /// RabbitMQ blocks the connection (memory or disk alarm).
    pub blocked: Option<bool>,
}

impl Status {
    /// [`EXIT_UNREADABLE`], [`EXIT_ATTENTION`] or [`EXIT_OK`].
    pub fn exit_code(&self) -> u8 {
        if !self.postgres.reachable {
            EXIT_UNREADABLE
        } else if self.ok {
            EXIT_OK
        } else {
            EXIT_ATTENTION
        }
    }
}

/// `outbox-relay status`: gathers the status, prints it (as JSON with
/// `json`) and returns the exit status.
pub async fn run(config: &Config, options: &Options, json: bool) -> u8 {
    let status = collect(config, options).await;
    if json {
        match serde_json::to_string_pretty(&status) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("encoding the status: {e}");
                return EXIT_UNREADABLE;
            }
        }
    } else {
        print!("{}", text(&status));
    }
    status.exit_code()
}

/// Gathers the status of the relay and outbox of `config`. Never fails:
/// what cannot be read is `null` and named in `attention`.
pub async fn collect(config: &Config, options: &Options) -> Status {
    let started = Instant::now();
    let first = options.relay.read().await;
    let mut attention = Vec::new();
    let pg = collect::postgres(config, &mut attention).await;
    let samples = first.as_ref().ok();

    let throughput = match (&pg.sent_last_minute, samples) {
        (Some(count), _) => Throughput {
            source: "sent_at",
            window_seconds: 60.0,
            events: Some(u64::try_from(*count).unwrap_or(0)),
            events_per_second: Some(*count as f64 / 60.0),
        },
        (None, Some(before)) => {
            let wait = COUNTER_WINDOW.saturating_sub(started.elapsed());
            tokio::time::sleep(wait).await;
            let window = started.elapsed().as_secs_f64();
            let acknowledged = |s: &Samples| s.get("outbox_relay_events_acknowledged_total", &[]);
            let after = options.relay.read().await.ok();
            let delta = match (acknowledged(before), after.as_ref().and_then(acknowledged)) {
                (Some(a), Some(b)) => Some((b - a).max(0.0)),
                _ => None,
            };
            Throughput {
                source: if delta.is_some() {
                    "relay_counter"
                } else {
                    "none"
                },
                window_seconds: window,
                events: delta.map(|d| d as u64),
                events_per_second: delta.map(|d| d / window),
            }
        }
        (None, None) => Throughput {
            source: "none",
            window_seconds: 0.0,
            events: None,
            events_per_second: None,
        },
    };

    let relay = relay_state(&options.relay, &first);
    let status = Status {
        format: FORMAT,
        ok: false,
        attention: Vec::new(),
        collected_at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        outbox: config.outbox.table.clone(),
        source_mode: config.source.mode.label(),
        max_unsent_age_seconds: options.max_unsent_age.as_secs_f64(),
        postgres: PostgresState {
            reachable: pg.error.is_none(),
            error: pg.error.clone(),
        },
        lag: samples.map(lag),
        retention: retention(config, samples),
        sink: sink_state(config, samples, relay.role),
        relay,
        leader: pg.leader,
        backlog: pg.backlog,
        throughput,
        slot: pg.slot,
        dead_letters: pg.dead_letters,
    };
    judge(status, attention, options)
}

/// Adds what needs attention to `found` (errors met while reading) and sets
/// `ok`.
fn judge(mut status: Status, mut found: Vec<String>, options: &Options) -> Status {
    if let Some(error) = &status.postgres.error {
        found.insert(0, format!("cannot read Postgres: {error}"));
    }
    if let Some(error) = &status.relay.error {
        found.push(format!(
            "relay unreachable at {}: {error}",
            status.relay.address
        ));
    }
    if let Some(leader) = &status.leader
        && leader.election
        && leader.holder.is_none()
    {
        found.push("no relay holds the leader lock: nothing is being published".into());
    }
    if let Some(age) = status
        .backlog
        .as_ref()
        .and_then(|b| b.oldest_unsent_age_seconds)
        && age > options.max_unsent_age.as_secs_f64()
    {
        found.push(format!(
            "the oldest unsent row is {} old (threshold {})",
            duration_text(age),
            duration_text(options.max_unsent_age.as_secs_f64())
        ));
    }
    if let Some(slot) = &status.slot {
        let unsent = status.backlog.as_ref().map_or(0, |b| b.unsent);
        if !slot.exists {
            found.push(format!("replication slot {} does not exist", slot.name));
        } else if slot.wal_status.as_deref() == Some("lost") {
            found.push(format!(
                "replication slot {} is lost: run `outbox-relay recover-slot`",
                slot.name
            ));
        } else if slot.active == Some(false) && unsent > 0 {
            found.push(format!(
                "replication slot {} is inactive with {unsent} unsent row(s)",
                slot.name
            ));
        }
    }
    if let Some(letters) = &status.dead_letters
        && letters.pending > 0
    {
        found.push(format!(
            "{} dead letter(s) pending: see `outbox-relay dead-letters list`",
            letters.pending
        ));
    }
    if status.sink.connected == Some(false) {
        found.push(format!(
            "the leader is not connected to its sink ({})",
            status.sink.kind
        ));
    }
    if status.sink.blocked == Some(true) {
        found.push("the broker blocks the relay's connection (memory or disk alarm)".into());
    }
    status.ok = found.is_empty();
    status.attention = found;
    status
}

fn relay_state(view: &RelayView, read: &Result<Samples, String>) -> RelayState {
    let address = view.address();
    match read {
        Err(error) => RelayState {
            address,
            reachable: false,
            error: Some(error.clone()),
            role: None,
            version: None,
            connections: Vec::new(),
        },
        Ok(samples) => RelayState {
            address,
            reachable: true,
            error: None,
            role: samples.get("outbox_relay_leader", &[]).map(|v| {
                if v == 1.0 {
                    Role::Leader
                } else {
                    Role::Standby
                }
            }),
            version: samples
                .label_values("outbox_relay_build_info", "version")
                .into_iter()
                .next()
                .map(|(v, _)| v),
            connections: samples
                .label_values("outbox_relay_connected", "component")
                .into_iter()
                .map(|(component, v)| Connection {
                    component,
                    connected: v == 1.0,
                })
                .collect(),
        },
    }
}

fn lag(samples: &Samples) -> Lag {
    let buckets = samples.buckets("outbox_relay_event_lag_seconds");
    let q = |q| exposition::quantile(&buckets, q);
    Lag {
        observations: buckets.last().map_or(0, |b| b.1 as u64),
        p50_seconds: q(0.5),
        p90_seconds: q(0.9),
        p99_seconds: q(0.99),
    }
}

/// The retention state: the relay's retention metrics when it exports
/// them, else what the configuration says (no `[retention]` section yet:
/// not configured).
fn retention(config: &Config, samples: Option<&Samples>) -> Retention {
    if !config.retention.enabled() {
        return Retention::NotConfigured;
    }
    const DELETED: &str = "outbox_relay_retention_deleted_rows_total";
    const OLDEST: &str = "outbox_relay_retention_oldest_sent_age_seconds";
    const LAST_PASS: &str = "outbox_relay_retention_last_pass_timestamp_seconds";
    match samples {
        Some(s) if [DELETED, OLDEST, LAST_PASS].iter().any(|n| s.has(n)) => Retention::Reported {
            deleted_rows_total: s.get(DELETED, &[]),
            oldest_sent_age_seconds: s.get(OLDEST, &[]),
            last_pass_unix_seconds: s.get(LAST_PASS, &[]).filter(|t| *t > 0.0),
        },
        // Configured, but the relay's counters cannot be read.
        _ => Retention::Reported {
            deleted_rows_total: None,
            oldest_sent_age_seconds: None,
            last_pass_unix_seconds: None,
        },
    }
}

fn sink_state(config: &Config, samples: Option<&Samples>, role: Option<Role>) -> SinkState {
    let kind = config.sink.kind;
    let target = match kind {
        crate::config::SinkKind::Rabbitmq => config.sink.rabbitmq.url.redacted(),
        crate::config::SinkKind::Kafka => config.sink.kafka.brokers.clone(),
        crate::config::SinkKind::Stdout => "stdout".into(),
    };
    let leading = role == Some(Role::Leader);
    let connected = samples
        .filter(|_| leading)
        .and_then(|s| s.get("outbox_relay_connected", &[("component", "broker")]))
        .map(|v| v == 1.0);
    let blocked = samples
        .filter(|_| leading)
        .and_then(|s| s.get("outbox_relay_broker_blocked", &[]))
        .map(|v| v == 1.0);
    SinkState {
        kind: kind.label(),
        target,
        connected,
        blocked,
    }
}

/// Whether throughput can be read from `sent_at` (mark = update with a
/// `sent_at` column).
fn sent_at_column(config: &Config) -> Option<&str> {
    if config.outbox.mark != MarkMode::Update {
        return None;
    }
    crate::config::ColumnsConfig::optional(&config.outbox.columns.sent_at)
}

/// Whether the slot section applies.
fn replication(config: &Config) -> bool {
    config.source.mode == SourceMode::Replication
}

/// `3m 12s`-style text of a number of seconds (whole seconds from 1 s up).
pub fn duration_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".into();
    }
    if seconds < 1.0 {
        return format!("{:.0}ms", seconds * 1000.0);
    }
    humantime::format_duration(Duration::from_secs(seconds as u64)).to_string()
}
