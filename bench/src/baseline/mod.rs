//! The baselines each run's relay figures are divided by, measured in the
//! same run on the same machine: how fast Postgres hands out the same
//! changes without the relay (pg_recvlogical; a bare claim-and-mark loop),
//! and how fast the broker takes the same messages from a minimal client.

mod claim_mark;
mod kafka;
mod rabbitmq;
mod recvlogical;

use std::time::Duration;

pub use claim_mark::claim_and_mark;
pub use kafka::kafka_publish;
pub use rabbitmq::rabbitmq_publish;
pub use recvlogical::pg_recvlogical;
use serde::Serialize;

/// One baseline measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// `pg_recvlogical`, `claim_mark`, `rabbitmq_publish`, `kafka_publish`.
    pub name: String,
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
    /// How it was measured, for the results file.
    pub how: String,
}

impl Baseline {
    fn new(name: &str, events: u64, elapsed: Duration, how: String) -> Self {
        let seconds = elapsed.as_secs_f64();
        Baseline {
            name: name.to_owned(),
            events,
            seconds,
            events_per_s: events as f64 / seconds.max(1e-9),
            how,
        }
    }
}

/// Sequence numbers 1..=`events` in windows of `batch`: each window is
/// published, then its confirmations awaited, as the relay does with a batch.
fn windows(events: u64, batch: usize) -> impl Iterator<Item = std::ops::RangeInclusive<u64>> {
    let batch = batch.max(1) as u64;
    (1..=events)
        .step_by(batch as usize)
        .map(move |first| first..=(first + batch - 1).min(events))
}

#[cfg(test)]
mod tests {
    use super::windows;

    #[test]
    fn windows_cover_every_event_once() {
        let all: Vec<_> = windows(7, 3).collect();
        assert_eq!(all, [1..=3, 4..=6, 7..=7]);
        assert_eq!(windows(0, 3).count(), 0);
    }
}
