//! Counting what arrived against what was written: nothing lost, duplicates
//! counted, and per-aggregate order.

use std::collections::{HashMap, HashSet};

use super::writers::Written;

/// What the checker found.
#[derive(Debug)]
pub struct Report {
    pub written: usize,
    pub received: usize,
    pub duplicates: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "written {}, received {}, duplicates {}",
            self.written, self.received, self.duplicates
        )
    }
}

/// Panics unless every written event arrived, and the first arrival of each
/// aggregate's events follows the order they were written in. `received` is
/// the message ids in arrival order.
pub fn verify(written: &[Written], received: &[String]) -> Report {
    let mut position: HashMap<&str, (&str, usize)> = HashMap::new();
    let mut per_aggregate: HashMap<&str, usize> = HashMap::new();
    for w in written {
        let n = per_aggregate.entry(&w.aggregate_id).or_default();
        position.insert(&w.id, (&w.aggregate_id, *n));
        *n += 1;
    }
    let mut seen = HashSet::new();
    let mut next: HashMap<&str, usize> = HashMap::new();
    let mut duplicates = 0;
    for id in received {
        let Some(&(aggregate, index)) = position.get(id.as_str()) else {
            panic!("received event {id}, which was never written");
        };
        if !seen.insert(id.as_str()) {
            duplicates += 1;
            continue;
        }
        let expected = next.entry(aggregate).or_default();
        assert_eq!(
            index, *expected,
            "aggregate {aggregate}: event {id} (its #{index}) arrived first before its #{expected}"
        );
        *expected += 1;
    }
    let missing: Vec<&str> = written
        .iter()
        .filter(|w| !seen.contains(w.id.as_str()))
        .map(|w| w.id.as_str())
        .take(20)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} events never arrived, e.g. {missing:?}",
        written.len() - seen.len(),
        written.len()
    );
    Report {
        written: written.len(),
        received: received.len(),
        duplicates,
    }
}

/// The first arrival of each id, in arrival order (duplicates dropped).
pub fn first_arrivals<T: PartialEq + Clone>(ids: &[T]) -> Vec<T> {
    let mut distinct: Vec<T> = Vec::new();
    for id in ids {
        if !distinct.contains(id) {
            distinct.push(id.clone());
        }
    }
    distinct
}
