//! The two measurements of the issue, each on a fresh database: draining a
//! preloaded backlog, and keeping up with writers at a fixed rate.

mod baselines;
mod destination;
mod drain;
mod steady;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub use baselines::{broker_baseline, source_baseline};
pub use destination::Destination;
pub use drain::{DrainResult, drain};
pub use steady::{Load, SteadyResult, steady};

use crate::database::BenchDb;
use crate::relay::{Mode, RelaySettings, SinkKind};

/// Which Kafka-protocol broker the Kafka runs use.
#[derive(Debug, Clone)]
pub enum KafkaBroker {
    /// A fresh private tansu per measurement, started from this binary.
    Private(PathBuf),
    /// A running broker's bootstrap servers.
    External(String),
}

/// What every run needs to know about the machine's services and options.
#[derive(Debug, Clone)]
pub struct Context {
    pub relay_bin: PathBuf,
    /// Postgres server URL without a database.
    pub server: String,
    pub amqp_url: String,
    pub kafka: KafkaBroker,
    pub kafka_partitions: i32,
    /// Read Kafka topics back while the relay publishes (see
    /// `Destination::consume`).
    pub kafka_consumer: bool,
    pub batch_size: usize,
    /// Working directory for configs and relay logs.
    pub work_dir: PathBuf,
}

impl Context {
    /// A name unique to this harness process, for a database, exchange,
    /// queue or topic.
    pub fn unique_name(&self, what: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        format!("outbox_bench_{}_{n}_{what}", std::process::id())
    }

    /// Relay settings for one run into `destination`, named `name`.
    pub fn relay_settings(
        &self,
        db: &BenchDb,
        mode: Mode,
        sink: SinkKind,
        destination: &Destination,
        name: &str,
    ) -> RelaySettings {
        RelaySettings {
            database_url: db.url.clone(),
            slot: db.slot.clone(),
            mode,
            sink,
            batch_size: self.batch_size,
            destination: name.to_owned(),
            amqp_url: self.amqp_url.clone(),
            kafka_brokers: destination.kafka_brokers().unwrap_or_default().to_owned(),
        }
    }
}
