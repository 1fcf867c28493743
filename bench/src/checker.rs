//! The consumer-side check of every run: fed each message as it arrives, it
//! counts duplicates and per-aggregate order violations as it goes, keeps
//! the first arrival time of each event for the latency figures, and at the
//! end compares what arrived with what was written.
//!
//! Order: the harness's writers give each aggregate to one session, so an
//! aggregate's events commit in id order; the first arrival of an event
//! whose id is lower than one already seen for its aggregate is a violation.

use std::collections::HashMap;

use serde::Serialize;

/// How many missing ids and violations a report names as examples.
const EXAMPLES: usize = 5;

/// Streaming checker for one run's consumer.
#[derive(Debug, Default)]
pub struct Checker {
    /// Highest event id seen per aggregate.
    last_per_aggregate: HashMap<String, u64>,
    /// First arrival (µs since the Unix epoch) by event id; 0 = not seen.
    first_seen: Vec<i64>,
    received: u64,
    duplicates: u64,
    order_violations: u64,
    violation_examples: Vec<String>,
}

/// What the checker found, for the results file.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CheckReport {
    /// Events written (in the outbox when the run ended).
    pub expected: u64,
    /// Messages received, duplicates included.
    pub received: u64,
    /// Distinct written events received.
    pub unique: u64,
    pub duplicates: u64,
    pub missing: u64,
    /// Received events that were never written.
    pub unexpected: u64,
    pub order_violations: u64,
    /// A few missing ids and violating pairs, for a first look.
    pub examples: Vec<String>,
    /// False when no consumer read the destination (see
    /// [`CheckReport::not_checked`]).
    pub checked: bool,
}

impl CheckReport {
    /// The report of a run whose messages could not be read back.
    pub fn not_checked(expected: u64) -> Self {
        CheckReport {
            expected,
            ..CheckReport::default()
        }
    }

    /// Every event arrived, none out of order and none foreign (or the
    /// run was not checked).
    pub fn ok(&self) -> bool {
        !self.checked || self.missing == 0 && self.order_violations == 0 && self.unexpected == 0
    }

    /// One cell for the tables: `ok` or what went wrong, duplicates always.
    pub fn summary(&self) -> String {
        if !self.checked {
            return "not checked".into();
        }
        let mut parts = Vec::new();
        if self.missing > 0 {
            parts.push(format!("{} missing", self.missing));
        }
        if self.order_violations > 0 {
            parts.push(format!("{} out of order", self.order_violations));
        }
        if self.unexpected > 0 {
            parts.push(format!("{} unexpected", self.unexpected));
        }
        if parts.is_empty() {
            parts.push("ok".into());
        }
        parts.push(format!("{} dup", self.duplicates));
        parts.join(", ")
    }
}

impl Checker {
    /// A checker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one received message: event `id` of `aggregate`, arriving at
    /// `at_micros` (µs since the Unix epoch).
    pub fn observe(&mut self, id: u64, aggregate: &str, at_micros: i64) {
        self.received += 1;
        let Ok(index) = usize::try_from(id) else {
            return;
        };
        if index >= self.first_seen.len() {
            self.first_seen.resize((index + 1).max(1024), 0);
        }
        if self.first_seen[index] != 0 {
            self.duplicates += 1;
            return;
        }
        self.first_seen[index] = at_micros.max(1);
        match self.last_per_aggregate.get_mut(aggregate) {
            Some(last) if *last > id => {
                self.order_violations += 1;
                if self.violation_examples.len() < EXAMPLES {
                    self.violation_examples.push(format!(
                        "aggregate {aggregate}: {id} arrived after {}",
                        *last
                    ));
                }
            }
            Some(last) => *last = id,
            None => {
                self.last_per_aggregate.insert(aggregate.to_owned(), id);
            }
        }
    }

    /// Distinct events received so far.
    pub fn unique(&self) -> u64 {
        self.received - self.duplicates
    }

    /// When event `id` first arrived (µs since the Unix epoch).
    pub fn first_seen(&self, id: u64) -> Option<i64> {
        let index = usize::try_from(id).ok()?;
        self.first_seen.get(index).copied().filter(|&at| at != 0)
    }

    /// Compares what arrived with the ids that were written.
    pub fn finish(&self, written: &[u64]) -> CheckReport {
        let mut report = CheckReport {
            expected: written.len() as u64,
            received: self.received,
            duplicates: self.duplicates,
            order_violations: self.order_violations,
            examples: self.violation_examples.clone(),
            checked: true,
            ..CheckReport::default()
        };
        let mut written_flags = vec![false; self.first_seen.len()];
        for &id in written {
            if self.first_seen(id).is_some() {
                report.unique += 1;
                if let Some(flag) = usize::try_from(id)
                    .ok()
                    .and_then(|i| written_flags.get_mut(i))
                {
                    *flag = true;
                }
            } else {
                report.missing += 1;
                if report.examples.len() < 2 * EXAMPLES {
                    report.examples.push(format!("{id} missing"));
                }
            }
        }
        report.unexpected = self
            .first_seen
            .iter()
            .zip(&written_flags)
            .filter(|&(&at, &written)| at != 0 && !written)
            .count() as u64;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::Checker;

    /// Events 1..=6 over aggregates a (odd ids) and b (even ids).
    fn written() -> Vec<u64> {
        (1..=6).collect()
    }

    fn aggregate(id: u64) -> &'static str {
        if id % 2 == 1 { "a" } else { "b" }
    }

    fn feed(ids: &[u64]) -> Checker {
        let mut checker = Checker::new();
        for (at, &id) in ids.iter().enumerate() {
            checker.observe(id, aggregate(id), at as i64 + 1);
        }
        checker
    }

    #[test]
    fn a_complete_ordered_stream_is_ok() {
        let report = feed(&[1, 2, 3, 4, 5, 6]).finish(&written());
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.unique, 6);
        assert_eq!(report.summary(), "ok, 0 dup");
    }

    #[test]
    fn detects_a_missing_event() {
        let report = feed(&[1, 2, 3, 5, 6]).finish(&written());
        assert!(!report.ok());
        assert_eq!(report.missing, 1);
        assert_eq!(report.order_violations, 0);
        assert!(report.examples.contains(&"4 missing".to_owned()));
    }

    #[test]
    fn detects_an_out_of_order_pair_within_one_aggregate() {
        // 5 before 3, both of aggregate a; b's events interleave freely.
        let report = feed(&[1, 2, 5, 4, 3, 6]).finish(&written());
        assert!(!report.ok());
        assert_eq!(report.order_violations, 1);
        assert_eq!(report.missing, 0);
        assert_eq!(report.examples, vec!["aggregate a: 3 arrived after 5"]);
    }

    #[test]
    fn interleaving_aggregates_is_not_a_violation() {
        let report = feed(&[2, 4, 1, 6, 3, 5]).finish(&written());
        assert!(report.ok(), "{report:?}");
    }

    #[test]
    fn counts_duplicates_and_keeps_the_first_arrival() {
        // A redelivered batch: 3 and 4 again after 5, not a violation.
        let checker = feed(&[1, 2, 3, 4, 5, 3, 4, 6]);
        let report = checker.finish(&written());
        assert!(report.ok(), "{report:?}");
        assert_eq!(report.duplicates, 2);
        assert_eq!(report.received, 8);
        assert_eq!(checker.first_seen(3), Some(3));
    }

    #[test]
    fn counts_events_never_written() {
        let report = feed(&[1, 2, 3, 4, 5, 6, 9]).finish(&written());
        assert_eq!(report.unexpected, 1);
        assert!(!report.ok());
    }
}
