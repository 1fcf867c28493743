//! Latency percentiles from raw samples (sorted; a run has at most a few
//! hundred thousand, so no histogram crate is needed).

use serde::Serialize;

/// p50, p99 and max of one latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `micros` (negative samples, from clock
    /// steps, count as 0); `None` without samples.
    pub fn of(mut micros: Vec<i64>) -> Option<Self> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let rank = |p: f64| {
            let index = ((p * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1;
            micros[index].max(0) as f64 / 1000.0
        };
        Some(Percentiles {
            samples: micros.len() as u64,
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: rank(1.0),
        })
    }

    /// `p50 / p99 / max` for the tables.
    pub fn cell(value: Option<&Self>) -> String {
        match value {
            Some(p) => format!("{:.1} / {:.1} / {:.1}", p.p50_ms, p.p99_ms, p.max_ms),
            None => "-".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn nearest_rank() {
        let p = Percentiles::of((1..=100).map(|ms| ms * 1000).collect()).expect("samples");
        assert_eq!((p.p50_ms, p.p99_ms, p.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(Vec::new()), None);
        let one = Percentiles::of(vec![-5]).expect("one");
        assert_eq!(one.max_ms, 0.0);
    }
}
