//! The one place that decides what each error from lapin, rdkafka and
//! tokio-postgres means for delivery: retry, dead-letter the event, or stop.
//!
//! Sinks and sources translate library errors through these functions and
//! nothing else, so the policy can be read (and is unit-tested) here.

pub mod amqp;
pub mod kafka;
pub mod postgres;

/// What the relay does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The path to the broker or database failed (down, timeout, reset):
    /// retry with backoff and jitter, without limit and without skipping.
    Retry,
    /// This event can never be published as it is (too large, unroutable,
    /// a destination that does not exist or is forbidden): after
    /// `dead_letters.max_attempts` it is moved to the dead-letter table and
    /// the events behind it go on.
    DeadLetter,
    /// The relay's own setup is wrong (table or column missing, privileges):
    /// nothing will change by waiting, so the relay stops and says why.
    Stop,
}
