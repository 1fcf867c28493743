//! Reading a `/metrics` scrape (Prometheus text format) back into metric
//! families: name, type, label names and label values.

use std::collections::{BTreeMap, BTreeSet};

/// One metric family as a scrape shows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Family {
    /// `counter`, `gauge`, `histogram`, ...
    pub kind: String,
    /// Label names over all samples, without a histogram's `le`.
    pub labels: BTreeSet<String>,
    /// Every label value seen, without `le`'s.
    pub values: BTreeSet<String>,
}

/// The families of a scrape, by name.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                families.entry(name.to_owned()).or_default().kind = kind.to_owned();
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = family_of(&families, &line[..name_end]);
        let labels = if line[name_end..].starts_with('{') {
            labels(&line[name_end + 1..])
        } else {
            Vec::new()
        };
        let family = families.entry(name).or_default();
        for (label, value) in labels.into_iter().filter(|(l, _)| l != "le") {
            family.labels.insert(label);
            family.values.insert(value);
        }
    }
    families
}

/// The family a sample belongs to: `x_bucket`, `x_sum` and `x_count` are
/// samples of the histogram (or summary) `x`.
pub fn family_of(families: &BTreeMap<String, Family>, sample: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && families
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
        {
            return base.to_owned();
        }
    }
    sample.to_owned()
}

/// `a="x",b="y\"z"} 1` -> [(a, x), (b, y"z)].
fn labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let name = name.trim_start_matches(',').trim().to_owned();
        if name.is_empty() || name.starts_with('}') || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((name, value));
        if chars.peek() == Some(&'}') {
            return out;
        }
    }
}
