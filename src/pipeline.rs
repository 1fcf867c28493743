//! The relay loop: claim a batch from the source, publish it to the sink,
//! mark what the broker confirmed, repeat. Batches run one after another, so
//! events of one aggregate reach the broker in the order they were claimed.
//!
//! On any error the loop keeps what was confirmed, releases the rest and
//! retries with exponential backoff and jitter, forever: an event is never
//! skipped. After a failure the batch size drops to one event and doubles
//! with each success, which bounds the duplicates a flapping broker causes.
//!
//! An event the broker can never take (see [`crate::classify`]) is tried
//! `dead_letters.max_attempts` times, the last time alone, then recorded in
//! the dead-letter table and treated as done, so the events behind it go on.
//!
//! A panic while publishing (a bug a row's data reached) is caught and
//! treated like an event the broker refused (reason `panic`): the sink is
//! reset, the batch retried from its first unconfirmed event, and the event
//! that panics alone is dead-lettered after `max_attempts`. Deaths nothing
//! can catch are the [`crate::crash_guard`]'s.
//!
//! Memory is bounded by the batch size: the next batch is claimed only
//! after the broker confirmed the last one, so a slow broker slows reading.
//!
//! With `sink.max_events_per_second` set, each claim first waits for the
//! [`RateLimit`] and asks for no more events than may go at once; see
//! [`crate::rate_limit`].

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::classify::Disposition;
use crate::config::{Config, RetryConfig};
use crate::crash_guard::{self, CrashGuard, Verdict};
use crate::dead_letters::{DeadLetter, DeadLetterError, DeadLetterStore};
use crate::event::OutboxEvent;
use crate::leader::Leadership;
use crate::metrics::metrics;
use crate::rate_limit::RateLimit;
use crate::shutdown::Shutdown;
use crate::sink::{PublishFailure, Sink, SinkError};
use crate::source::{Source, SourceError};
use crate::telemetry::SPAN_TARGET;

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
    pub dead_letters: DeadLetterStore,
    /// Attempts at an event-specific error before dead-lettering (>= 1).
    pub max_attempts: u32,
    /// Checked before every publish: a relay that lost its lease stops.
    pub leadership: Leadership,
    /// Dead-letters the event a previous start kept dying on.
    pub crash_guard: CrashGuard,
    /// `sink.max_events_per_second`: paces claims, takes a token per event.
    pub rate_limit: RateLimit,
    /// The event that failed last, and how many times in a row.
    failing: Option<(String, u32)>,
}

/// Why the pipeline stopped before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Source(SourceError),
    #[error("{0}; the event stays unsent")]
    DeadLetter(DeadLetterError),
    #[error("lost leadership of the outbox")]
    LostLeadership,
}

impl<S: Source, K: Sink> Pipeline<S, K> {
    /// A pipeline with the batch size, retry and dead-letter settings of
    /// `config`, running until shutdown.
    pub fn new(
        source: S,
        sink: K,
        config: &Config,
        shutdown: Shutdown,
        leadership: Leadership,
    ) -> Self {
        Self {
            source,
            sink,
            batch_size: config.source.batch_size(),
            retry: config.retry.clone(),
            shutdown,
            drain_only: false,
            dead_letters: DeadLetterStore::new(config),
            max_attempts: config.dead_letters.max_attempts,
            leadership,
            crash_guard: CrashGuard::new(config),
            rate_limit: RateLimit::new(&config.sink),
            failing: None,
        }
    }

    /// Runs until shutdown is requested, then returns once the in-flight
    /// batch is confirmed and marked. Dropping the future abandons the batch:
    /// its rows stay unsent. Returns an error when the source or the
    /// dead-letter table is unusable, or leadership is lost.
    pub async fn run(&mut self) -> Result<(), PipelineError> {
        let result = self.relay_all().await;
        // Not dropped mid-batch and not dead: the next start owes us nothing.
        self.crash_guard.finish().await;
        result
    }

    async fn relay_all(&mut self) -> Result<(), PipelineError> {
        let mut limit = self.batch_size;
        let mut backoff = self.backoff();
        while !self.shutdown.is_requested() {
            if !self.leadership.is_held() {
                self.source.release().await;
                return Err(PipelineError::LostLeadership);
            }
            let wanted = self.crash_guard.limit(limit);
            // Nothing is claimed while waiting, and no more than may go at
            // once, so no claim is held open for the rate limit.
            let claim = tokio::select! {
                n = self.rate_limit.ready(wanted) => n,
                _ = self.shutdown.requested() => continue,
            };
            let events = match self.source.claim(claim).await {
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
                    match e.refusal() {
                        // The session was lost and the server now refuses
                        // the new one (a rotated secret, a revoked grant).
                        Some(failure) => tracing::error!(
                            error = %e,
                            "claiming events: {}; retrying",
                            failure.summary()
                        ),
                        None => tracing::warn!(error = %e, "claiming events failed; retrying"),
                    }
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
            // Trimmed to the rate and filled: more are likely waiting.
            let full = events.len() == limit || (claim < wanted && events.len() == claim);
            // The parent or link of the events' publish spans; ended below,
            // before any idle wait.
            let span = tracing::info_span!(
                target: SPAN_TARGET,
                "batch",
                otel.name = "relay batch",
                messaging.system = self.sink.label(),
                messaging.batch.message_count = events.len(),
                outbox.source = self.source.label(),
                outbox.first_event_id = %events[0].id,
                outbox.outcome = tracing::field::Empty,
            );
            let outcome = match self.crash_guard.check(&events).await {
                Verdict::Publish => self.relay_batch(&events).instrument(span.clone()).await,
                Verdict::FirstAlone => {
                    self.relay_batch(&events[..1])
                        .instrument(span.clone())
                        .await
                }
                Verdict::Crashed { deaths } => {
                    self.dead_letter_crashed(&events[0], deaths)
                        .instrument(span.clone())
                        .await
                }
            };
            span.record("outbox.outcome", outcome.label());
            drop(span);
            match outcome {
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
                Outcome::Stop(error) => {
                    self.source.release().await;
                    return Err(error);
                }
            }
        }
        self.source.release().await;
        Ok(())
    }

    /// Publishes and marks one batch, dead-lettering the events the broker
    /// can never take.
    async fn relay_batch(&mut self, events: &[OutboxEvent]) -> Outcome {
        let label = self.sink.label();
        metrics().batch_size.observe(events.len() as f64);
        // Never waits: the claim asked for no more than may go now. The
        // retries below, within the batch, take nothing more.
        self.rate_limit.take(events.len());
        let started = Instant::now();
        // events[..done] are confirmed or dead-lettered.
        let mut done = 0;
        let failure = loop {
            if !self.leadership.is_held() {
                break None;
            }
            let rest = &events[done..];
            let sent_at = Instant::now();
            match self.publish(rest).await {
                Ok(()) => {
                    record_confirmed(label, rest, sent_at.elapsed());
                    done = events.len();
                    break None;
                }
                Err(PublishFailure { confirmed, error }) => {
                    record_confirmed(label, &rest[..confirmed], sent_at.elapsed());
                    done += confirmed;
                    metrics()
                        .publish_failures
                        .with_label_values(&[label, error.reason()])
                        .inc();
                    tracing::warn!(
                        error = %error,
                        confirmed,
                        unconfirmed = rest.len() - confirmed,
                        "publishing failed; unconfirmed events stay unsent"
                    );
                    if error.disposition() != Disposition::DeadLetter {
                        break Some(Outcome::Retry);
                    }
                    let event = &events[done];
                    let alone = events.len() - done == 1;
                    let attempts = self.count_failure(&event.id);
                    if attempts < self.max_attempts || !alone {
                        break Some(Outcome::Retry);
                    }
                    let letter = DeadLetter {
                        event,
                        reason: error.dead_letter_reason(),
                        error: error.to_string(),
                        attempts,
                        sink: label,
                    };
                    match self.dead_letters.put(&letter).await {
                        Ok(()) => {
                            self.dead_lettered(&letter);
                            if let Err(e) = self
                                .sink
                                .publish_dead_letter(event, letter.reason, &letter.error)
                                .await
                            {
                                tracing::warn!(
                                    error = %e,
                                    event_id = %event.id,
                                    "publishing the dead letter's copy failed; the dead-letter table has it"
                                );
                            }
                            self.failing = None;
                            done += 1;
                            if done == events.len() {
                                break None;
                            }
                        }
                        Err(e) if e.disposition() == Disposition::Stop => {
                            break Some(Outcome::Stop(PipelineError::DeadLetter(e)));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, event_id = %event.id, "recording a dead letter failed; retrying");
                            break Some(Outcome::Retry);
                        }
                    }
                }
            }
        };

        let acked = if done > 0 {
            self.source.ack(done).await
        } else {
            self.source.release().await;
            Ok(())
        };
        if let Err(e) = &acked {
            self.ack_failed(e);
        }
        match (failure, acked) {
            (Some(outcome), _) => outcome,
            (None, _) if done < events.len() => Outcome::Stop(PipelineError::LostLeadership),
            (None, Ok(())) => {
                tracing::debug!(
                    events = events.len(),
                    first_id = %events[0].id,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "batch published"
                );
                Outcome::Done
            }
            (None, Err(_)) => Outcome::Retry,
        }
    }

    /// Publishes `events`, turning a panic into a failure of the first one:
    /// the sink is reset (its connection may be mid-message) and nothing
    /// counts as confirmed.
    async fn publish(&mut self, events: &[OutboxEvent]) -> Result<(), PublishFailure> {
        crash_guard::publishing(events);
        let sink = &mut self.sink;
        let result = AssertUnwindSafe(async move {
            crash_guard::inject_faults(events);
            sink.publish(events).await
        })
        .catch_unwind()
        .await;
        crash_guard::published();
        result.unwrap_or_else(|panic| {
            self.sink.reset();
            Err(PublishFailure {
                confirmed: 0,
                error: SinkError::Panicked {
                    event_id: events[0].id.clone(),
                    events: events.len(),
                    message: crash_guard::panic_message(panic.as_ref()),
                },
            })
        })
    }

    /// Dead-letters `event`, unpublished: the process died `deaths` times
    /// publishing it alone.
    async fn dead_letter_crashed(&mut self, event: &OutboxEvent, deaths: u32) -> Outcome {
        let letter = DeadLetter {
            event,
            reason: crash_guard::CRASHED,
            error: format!(
                "the relay process died {deaths} time(s) in a row while publishing this event \
                 alone (dead_letters.max_crashes = {})",
                self.crash_guard.max_crashes()
            ),
            attempts: deaths,
            sink: self.sink.label(),
        };
        // No copy to the dead-letter destination: publishing it is what
        // killed the process.
        match self.dead_letters.put(&letter).await {
            Ok(()) => self.dead_lettered(&letter),
            Err(e) if e.disposition() == Disposition::Stop => {
                self.source.release().await;
                return Outcome::Stop(PipelineError::DeadLetter(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, event_id = %event.id, "recording a dead letter failed; retrying");
                self.source.release().await;
                return Outcome::Retry;
            }
        }
        match self.source.ack(1).await {
            Ok(()) => Outcome::Done,
            Err(e) => {
                self.ack_failed(&e);
                Outcome::Retry
            }
        }
    }

    /// Counts a failure of the event with `id`; consecutive failures of the
    /// same event add up, any other event starts over.
    fn count_failure(&mut self, id: &str) -> u32 {
        match &mut self.failing {
            Some((failing, count)) if failing == id => {
                *count += 1;
                *count
            }
            _ => {
                self.failing = Some((id.to_owned(), 1));
                1
            }
        }
    }

    fn dead_lettered(&self, letter: &DeadLetter<'_>) {
        metrics()
            .dead_letters
            .with_label_values(&[letter.sink, letter.reason])
            .inc();
        tracing::error!(
            event_id = %letter.event.id,
            aggregate_type = %letter.event.aggregate_type,
            aggregate_id = %letter.event.aggregate_id,
            reason = letter.reason,
            attempts = letter.attempts,
            error = %letter.error,
            "event moved to the dead-letter table; the events behind it go on"
        );
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
    /// The pipeline cannot go on.
    Stop(PipelineError),
}

impl Outcome {
    /// The batch span's `outbox.outcome`.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Retry => "retry",
            Outcome::Stop(_) => "stop",
        }
    }
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
