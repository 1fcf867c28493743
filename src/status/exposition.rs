//! Reading the Prometheus text format the relay serves on `/metrics`: the
//! samples `status` needs, and quantiles from a histogram's buckets. The
//! same parser reads the daemon's own registry, so the command and the
//! page see one thing.

/// The samples of one `/metrics` text: name, labels, value.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Samples {
    /// Parses the text format; lines it cannot read (comments, anything
    /// malformed) are skipped, so one odd line never hides the rest.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Samples { samples }
    }

    /// The value of the sample `name` whose labels include every pair of
    /// `labels`; the first such sample.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels).next().map(|s| s.value)
    }

    /// Whether any sample is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// Each value of `label` among the samples `name`, with the sample's
    /// value, in the order served.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<(String, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| {
                let (_, v) = s.labels.iter().find(|(k, _)| k == label)?;
                Some((v.clone(), s.value))
            })
            .collect()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
    }

    /// The cumulative buckets of histogram `name` (`name_bucket`), as
    /// (upper bound, count) sorted by bound, `+Inf` last.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.name == bucket)
            .filter_map(|s| {
                let le = s.labels.iter().find(|(k, _)| k == "le")?;
                Some((parse_value(&le.1)?, s.value))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        buckets
    }
}

/// The `q` quantile (0..1) of cumulative `buckets`, interpolated linearly
/// within the bucket it falls in, as Prometheus' `histogram_quantile` does:
/// one in the `+Inf` bucket is the highest finite bound. `None` without
/// observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return Some(bound);
            }
            return Some(lower.0 + (bound - lower.0) * (rank - lower.1) / in_bucket);
        }
        lower = (bound, count);
    }
    Some(lower.0)
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ', '\t']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = if let Some(rest) = rest.strip_prefix('{') {
        parse_labels(rest)?
    } else {
        (Vec::new(), rest)
    };
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",...}` and what follows the closing brace.
fn parse_labels(mut rest: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.trim().to_owned(), value));
        rest = &after[1 + end + 1..];
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::{Samples, quantile};

    const TEXT: &str = r#"# HELP outbox_relay_connected 1 while up.
# TYPE outbox_relay_connected gauge
outbox_relay_connected{component="broker"} 1
outbox_relay_connected{component="postgres"} 0
outbox_relay_leader 1
odd{k="a \"quoted\" \\ value",other="x"} 7 1700000000
lag_bucket{le="0.1"} 50
lag_bucket{le="1"} 90
lag_bucket{le="+Inf"} 100
lag_bucket{le="0.01"} 0
not a sample line
"#;

    #[test]
    fn reads_samples_by_name_and_labels() {
        let s = Samples::parse(TEXT);
        assert_eq!(
            s.get("outbox_relay_connected", &[("component", "broker")]),
            Some(1.0)
        );
        assert_eq!(
            s.get("outbox_relay_connected", &[("component", "postgres")]),
            Some(0.0)
        );
        assert_eq!(s.get("outbox_relay_leader", &[]), Some(1.0));
        assert_eq!(s.get("odd", &[("k", "a \"quoted\" \\ value")]), Some(7.0));
        assert_eq!(s.get("odd", &[("other", "x")]), Some(7.0));
        assert_eq!(s.get("missing", &[]), None);
        assert!(s.has("outbox_relay_leader"));
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let s = Samples::parse(TEXT);
        let b = s.buckets("lag");
        assert_eq!(b.len(), 4);
        let p50 = quantile(&b, 0.5).expect("p50");
        assert!((p50 - 0.1).abs() < 1e-9, "{p50}");
        let p90 = quantile(&b, 0.9).expect("p90");
        assert!((p90 - 1.0).abs() < 1e-9, "{p90}");
        // Past the last finite bound: that bound.
        assert_eq!(quantile(&b, 0.99), Some(1.0));
        let p25 = quantile(&b, 0.25).expect("p25");
        assert!((p25 - 0.055).abs() < 1e-9, "{p25}");
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
