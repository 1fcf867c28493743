//! The harness's consumers, one per sink: each feeds every message it
//! receives to a [`Checker`] with its arrival time, in a task or thread of
//! its own, until told to stop (the stdout reader until the pipe closes).

mod kafka;
mod rabbitmq;
mod stdout;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

pub use kafka::{KafkaTopic, consume_kafka};
pub use rabbitmq::{RabbitQueue, consume_rabbitmq};
pub use stdout::consume_stdout;

use crate::Result;
use crate::checker::Checker;

/// A running consumer.
pub struct Consumer {
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Checker>>,
}

/// What a consumer loop shares with its [`Consumer`] handle.
#[derive(Clone)]
pub struct ConsumerLink {
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl ConsumerLink {
    fn new() -> Self {
        ConsumerLink {
            progress: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Feeds one message to the checker and publishes the progress.
    pub fn record(&self, checker: &mut Checker, id: u64, aggregate: &str) {
        checker.observe(id, aggregate, now_micros());
        self.progress.store(checker.unique(), Ordering::Relaxed);
    }

    /// Whether the consumer should stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Consumer {
    /// Runs `body` on a blocking thread (librdkafka, pipe reads).
    pub fn blocking<F>(body: F) -> Self
    where
        F: FnOnce(ConsumerLink) -> Result<Checker> + Send + 'static,
    {
        let link = ConsumerLink::new();
        let task = tokio::task::spawn_blocking({
            let link = link.clone();
            move || body(link)
        });
        Self::with(link, task)
    }

    /// Runs `body` as an async task (lapin).
    pub fn spawn<F>(body: impl FnOnce(ConsumerLink) -> F) -> Self
    where
        F: Future<Output = Result<Checker>> + Send + 'static,
    {
        let link = ConsumerLink::new();
        let task = tokio::spawn(body(link.clone()));
        Self::with(link, task)
    }

    fn with(link: ConsumerLink, task: tokio::task::JoinHandle<Result<Checker>>) -> Self {
        Consumer {
            progress: link.progress,
            stop: link.stop,
            task,
        }
    }

    /// Distinct events received so far.
    pub fn unique(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Waits until `count` distinct events arrived, or nothing new arrived
    /// for `idle` (then the checker will report what is missing).
    pub async fn wait_for(&self, count: u64, idle: Duration) {
        let mut last = self.unique();
        let mut since = Instant::now();
        while self.unique() < count && since.elapsed() < idle {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = self.unique();
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }

    /// Stops the consumer and returns its checker.
    pub async fn finish(mut self) -> Result<Checker> {
        self.stop.store(true, Ordering::Relaxed);
        (&mut self.task).await?
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // A run that failed early must not leave its consumer running.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
