//! The relay loop: claim a batch from the source, publish it to the sink,
//! mark what the broker confirmed, repeat. Batches run one after another, so
//! events of one aggregate reach the broker in the order they were claimed.
//!
//! On any error the loop keeps what was confirmed, releases the rest and
//! retries with exponential backoff and jitter, forever: an event is never
//! skipped. After a failure the batch size drops to one event and doubles
//! with each success, which bounds the duplicates a flapping broker causes.

use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::config::RetryConfig;
use crate::event::OutboxEvent;
use crate::metrics::metrics;
use crate::shutdown::Shutdown;
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError};

/// One source feeding one sink.
pub struct Pipeline<S, K> {
    pub source: S,
    pub sink: K,
    /// Upper bound on events per batch.
    pub batch_size: usize,
    pub retry: RetryConfig,
    pub shutdown: Shutdown,
    /// Return as soon as the source has nothing ready (a one-time pass)
    /// instead of waiting for more.
    pub drain_only: bool,
}

/// Why the pipeline stopped before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}; it stays unsent (fix it, or remove the row, and restart)")]
    Refused(SinkError),
    #[error("{0}")]
    Source(SourceError),
}

impl<S: Source, K: Sink> Pipeline<S, K> {
    /// Runs until shutdown is requested, then returns once the in-flight
    /// batch is confirmed and marked. Dropping the future abandons the batch:
    /// its rows stay unsent. Returns an error when the broker refuses an
    /// event for good: the relay stops rather than skip it.
    pub async fn run(&mut self) -> Result<(), PipelineError> {
        let mut limit = self.batch_size;
        let mut backoff = self.backoff();
        while !self.shutdown.is_requested() {
            let events = match self.source.claim(limit).await {
                Ok(events) => events,
                Err(e) if e.is_fatal() => {
                    self.source.release().await;
                    return Err(PipelineError::Source(e));
                }
                Err(e) => {
                    metrics()
                        .source_errors
                        .with_label_values(&[self.source.label(), e.reason()])
                        .inc();
                    tracing::warn!(error = %e, "claiming events failed; retrying");
                    self.pause(&mut backoff).await;
                    continue;
                }
            };
            if events.is_empty() {
                if self.drain_only {
                    break;
                }
                self.idle().await;
                continue;
            }
            let full = events.len() == limit;
            match self.relay_batch(&events).await {
                Outcome::Done => {
                    backoff = self.backoff();
                    limit = limit.saturating_mul(2).min(self.batch_size);
                    if !full {
                        self.idle().await;
                    }
                }
                Outcome::Retry => {
                    limit = 1;
                    self.pause(&mut backoff).await;
                }
                Outcome::Refused(error) => {
                    self.source.release().await;
                    return Err(PipelineError::Refused(error));
                }
            }
        }
        self.source.release().await;
        Ok(())
    }

    /// Publishes and marks one batch.
    async fn relay_batch(&mut self, events: &[OutboxEvent]) -> Outcome {
        let label = self.sink.label();
        metrics().batch_size.observe(events.len() as f64);
        let started = Instant::now();
        let outcome = self.sink.publish(events).await;
        let confirmed = match &outcome {
            Ok(()) => events.len(),
            Err(failure) => failure.confirmed,
        };
        record_confirmed(label, &events[..confirmed], started.elapsed());

        let acked = if confirmed > 0 {
            self.source.ack(confirmed).await
        } else {
            self.source.release().await;
            Ok(())
        };
        match (outcome, acked) {
            (Ok(()), Ok(())) => {
                tracing::debug!(
                    events = events.len(),
                    first_id = %events[0].id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "batch published"
                );
                Outcome::Done
            }
            (Err(failure), acked) => {
                metrics()
                    .publish_failures
                    .with_label_values(&[label, failure.error.reason()])
                    .inc();
                tracing::warn!(
                    error = %failure.error,
                    confirmed,
                    unconfirmed = events.len() - confirmed,
                    "publishing failed; unconfirmed events stay unsent and will be retried"
                );
                if let Err(e) = acked {
                    self.ack_failed(&e);
                }
                if failure.error.is_permanent() {
                    Outcome::Refused(failure.error)
                } else {
                    Outcome::Retry
                }
            }
            (Ok(()), Err(e)) => {
                self.ack_failed(&e);
                Outcome::Retry
            }
        }
    }

    fn ack_failed(&self, error: &crate::source::SourceError) {
        metrics()
            .source_errors
            .with_label_values(&[self.source.label(), error.reason()])
            .inc();
        tracing::warn!(
            error = %error,
            "marking confirmed events failed; they stay unsent and will be published again"
        );
    }

    fn backoff(&self) -> ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(self.retry.initial_backoff)
            .with_max_delay(self.retry.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Sleeps for the next backoff step, or until shutdown.
    async fn pause(&self, backoff: &mut ExponentialBackoff) {
        let delay = backoff.next().unwrap_or(self.retry.max_backoff);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.shutdown.requested() => {}
        }
    }

    /// Waits for new events, or until shutdown.
    async fn idle(&mut self) {
        tokio::select! {
            _ = self.source.wait() => {}
            _ = self.shutdown.requested() => {}
        }
    }
}

/// What became of a batch.
enum Outcome {
    /// Confirmed and marked.
    Done,
    /// Partly or not at all; what was confirmed is marked, the rest retried.
    Retry,
    /// The broker refuses an event for good.
    Refused(SinkError),
}

fn record_confirmed(label: &str, confirmed: &[OutboxEvent], elapsed: Duration) {
    if confirmed.is_empty() {
        return;
    }
    let m = metrics();
    m.events_published
        .with_label_values(&[label])
        .inc_by(confirmed.len() as u64);
    m.publish_duration
        .with_label_values(&[label])
        .observe(elapsed.as_secs_f64());
    let now = SystemTime::now();
    for event in confirmed {
        if let Some(age) = event.age(now) {
            m.event_lag.observe(age);
        }
    }
}
