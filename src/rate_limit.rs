//! The controlled rate (`sink.max_events_per_second`, `sink.burst`): after
//! an outage the backlog reaches the broker, and the consumers behind it, at
//! the rate they are sized for instead of as fast as the broker takes it.
//!
//! A token bucket: it holds up to `burst` tokens (one second's worth by
//! default), refills at the rate, and every event handed to the sink takes
//! one. So over any stretch of time `t` at most `burst + rate * t` events go
//! out. The pipeline asks it twice per batch, in every mode (polling,
//! replication, the replication catch-up pass, and so the rows `dead-letters
//! retry` and `replay` put back):
//!
//! - before claiming, [`RateLimit::ready`] waits until a slice of events may
//!   go (a tenth of a second's worth, at least one, at most what the claim
//!   wants) and answers how many may go now; the claim asks for no more.
//!   Nothing is claimed while it waits, so a polling claim transaction stays
//!   open only to publish and mark what may go at once, however low the
//!   limit and high `batch_size`; the replication stream is left unread for
//!   at most one slice (0.1 s, or 1/rate when slower); the leader lease is
//!   kept on a session of its own and checked before each publish as
//!   always. Order is untouched: batches still go one after another.
//! - before publishing, [`RateLimit::take`] takes one token per event of
//!   the batch, which never waits: the claim was no larger than what may go.
//!
//! Written here rather than taken from `governor`: its GCRA answers "may
//! these n go now?" and, when they may, counts them gone, with no way to ask
//! how many may go without taking them. The relay must size its claim before
//! it knows how many rows there are; taking a whole slice for a claim that
//! finds one row would make every quiet-time event wait for the next slice.
//! Its waiting futures also need its `std` feature, which brings its own
//! timer (futures-timer) beside tokio's and half a dozen crates. This bucket
//! is one owner, no atomics, a few lines of arithmetic, unit-tested below.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::SinkConfig;
use crate::metrics::metrics;

/// While the limit holds, a claim waits for a tenth of a second's worth of
/// events: about ten batches a second, each small enough to publish at once.
const SLICES_PER_SECOND: f64 = 10.0;

/// The pipeline's limiter; unlimited when `sink.max_events_per_second` is 0.
#[derive(Debug)]
pub struct RateLimit {
    bucket: Option<Bucket>,
}

impl RateLimit {
    /// The limiter `config` asks for, full (a start may send one burst).
    pub fn new(config: &SinkConfig) -> Self {
        let bucket = (config.max_events_per_second > 0)
            .then(|| Bucket::full(config.max_events_per_second, burst(config), Instant::now()));
        Self { bucket }
    }

    /// Waits until events may go, then returns how many may go now: between
    /// 1 and `wanted` (0 only when `wanted` is). The time spent waiting is
    /// added to `outbox_relay_rate_limit_wait_seconds_total`. Cancel-safe:
    /// it takes nothing.
    pub async fn ready(&mut self, wanted: usize) -> usize {
        let Some(bucket) = self.bucket.as_mut() else {
            return wanted;
        };
        if wanted == 0 {
            return 0;
        }
        let wait = bucket.wait(wanted, Instant::now());
        if !wait.is_zero() {
            let _counted = WaitCounted(Instant::now());
            tokio::time::sleep(wait).await;
        }
        bucket.allowed(wanted, Instant::now())
    }

    /// Records that `events` events are being handed to the sink.
    pub fn take(&mut self, events: usize) {
        if let Some(bucket) = self.bucket.as_mut() {
            bucket.take(events, Instant::now());
        }
    }
}

/// Adds the time from its creation to its drop to the wait counter, also
/// when the wait is cut short (shutdown).
struct WaitCounted(Instant);

impl Drop for WaitCounted {
    fn drop(&mut self) {
        metrics()
            .rate_limit_wait
            .inc_by(self.0.elapsed().as_secs_f64());
    }
}

/// Sets `outbox_relay_rate_limit_events_per_second` to the configured limit
/// (0: unlimited), so a dashboard can draw the published rate against it.
pub fn export_limit(config: &SinkConfig) {
    metrics()
        .rate_limit_events_per_second
        .set(i64::from(config.max_events_per_second));
}

/// The `rate limit` line of `check`.
pub fn describe(config: &SinkConfig) -> String {
    if config.max_events_per_second == 0 {
        return "unlimited (sink.max_events_per_second = 0)".into();
    }
    format!(
        "at most {} events per second, bursts of up to {} events (sink.max_events_per_second, sink.burst)",
        config.max_events_per_second,
        burst(config)
    )
}

/// `sink.burst`, with 0 meaning one second's worth.
fn burst(config: &SinkConfig) -> u32 {
    if config.burst == 0 {
        config.max_events_per_second
    } else {
        config.burst
    }
}

/// Tokens are events allowed to go; fractions accrue between calls.
#[derive(Debug)]
struct Bucket {
    /// Tokens added per second.
    rate: f64,
    /// Most tokens held.
    capacity: f64,
    /// Tokens a claim waits for while the limit holds.
    slice: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

/// Absorbs the rounding of a sleep computed from a float, so a wait that
/// ended on time is not answered with one event fewer.
const ROUNDING: f64 = 1e-6;

impl Bucket {
    fn full(rate: u32, capacity: u32, now: Instant) -> Self {
        let rate = f64::from(rate);
        let capacity = f64::from(capacity);
        Self {
            rate,
            capacity,
            slice: (rate / SLICES_PER_SECOND).ceil().max(1.0),
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let elapsed = (now - self.at).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
            self.at = now;
        }
    }

    /// How long until a claim of `wanted` may start: until the bucket holds
    /// a slice, or `wanted` if fewer, or all it can hold if less.
    fn wait(&mut self, wanted: usize, now: Instant) -> Duration {
        self.refill(now);
        let needed = (wanted as f64).min(self.slice).min(self.capacity);
        let missing = needed - self.tokens;
        if missing <= ROUNDING {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.rate)
        }
    }

    /// How many of `wanted` (>= 1) may go now; at least 1 once
    /// [`Bucket::wait`]'s time has passed.
    fn allowed(&mut self, wanted: usize, now: Instant) -> usize {
        self.refill(now);
        let whole = (self.tokens + ROUNDING).floor().max(1.0) as usize;
        whole.min(wanted)
    }

    fn take(&mut self, events: usize, now: Instant) {
        self.refill(now);
        self.tokens -= events as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn starts_full_and_hands_out_at_most_the_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::full(200, 50, t0);
        assert_eq!(b.wait(500, t0), Duration::ZERO);
        assert_eq!(b.allowed(500, t0), 50);
        assert_eq!(b.allowed(7, t0), 7, "never more than wanted");
    }

    #[test]
    fn an_empty_bucket_waits_for_a_slice() {
        let t0 = Instant::now();
        let mut b = Bucket::full(200, 200, t0);
        b.take(200, t0);
        // A slice of 200/s is 20 events: 100 ms.
        // A claim that wants fewer waits for fewer.
        assert_eq!(b.wait(2, t0), ms(10));
        assert_eq!(b.wait(500, t0), ms(100));
        assert_eq!(b.allowed(500, t0 + ms(100)), 20);
    }

    #[test]
    fn a_slow_rate_waits_for_one_event() {
        let t0 = Instant::now();
        let mut b = Bucket::full(2, 2, t0);
        b.take(2, t0);
        assert_eq!(b.wait(100, t0), ms(500));
        assert_eq!(b.allowed(100, t0 + ms(500)), 1);
    }

    #[test]
    fn refills_no_further_than_the_capacity() {
        let t0 = Instant::now();
        let mut b = Bucket::full(100, 30, t0);
        b.take(30, t0);
        assert_eq!(b.allowed(1000, t0 + Duration::from_secs(60)), 30);
    }

    #[test]
    fn a_backlog_goes_at_the_rate() {
        // A relay loop on a simulated clock: wait, claim what is allowed,
        // take it. Over 30 s at most burst + rate * 30 events may go, and
        // the bucket lets about that many go.
        let t0 = Instant::now();
        let mut now = t0;
        let mut b = Bucket::full(200, 200, t0);
        let mut sent = 0usize;
        while now < t0 + Duration::from_secs(30) {
            now += b.wait(500, now);
            let n = b.allowed(500, now);
            assert!(n <= 200, "a claim of {n} exceeds the burst");
            b.take(n, now);
            sent += n;
            // Publishing and marking take a little time.
            now += ms(3);
        }
        let limit = 200 + 200 * 30;
        assert!(sent <= limit + 20, "sent {sent}, limit {limit}");
        assert!(sent >= limit * 95 / 100, "sent {sent}, limit {limit}");
    }

    #[test]
    fn unlimited_never_waits_and_zero_burst_means_one_second() {
        let config = SinkConfig {
            max_events_per_second: 0,
            ..SinkConfig::default()
        };
        assert!(RateLimit::new(&config).bucket.is_none());
        assert!(describe(&config).starts_with("unlimited"));
        let config = SinkConfig {
            max_events_per_second: 300,
            burst: 0,
            ..SinkConfig::default()
        };
        assert_eq!(burst(&config), 300);
        assert!(describe(&config).contains("bursts of up to 300 events"));
    }
}
