//! The deployment assets and the README agree with what the relay really
//! exports: every `outbox_relay_*` name in deploy/prometheus and the Grafana
//! dashboards is in a live scrape of a running relay, the README's metric
//! table lists exactly the exported families with their types and labels,
//! and no label carries an event or aggregate id. The relay runs in
//! replication mode, which exports every family a polling relay does plus
//! the slot gauges. Also: the relay configs shipped under deploy/ load.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use outbox_relay::config::Config;
use support::exposition::{self, Family};
use support::setup::Setup;

/// Label names the relay may use: low-cardinality by rule.
const ALLOWED_LABELS: &[&str] = &["sink", "reason", "source", "component", "version", "table"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The files under deploy/ that name metrics: alerting rules, their tests,
/// dashboards.
fn referencing_files() -> Vec<PathBuf> {
    let mut files = vec![
        repo("deploy/prometheus/alerts.yml"),
        repo("deploy/prometheus/alerts.test.yml"),
    ];
    let dashboards = std::fs::read_dir(repo("deploy/grafana/dashboards")).expect("dashboards");
    for entry in dashboards {
        let path = entry.expect("dashboard entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    files
}

/// Every `outbox_relay_*` identifier in `text`.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("outbox_relay_") {
        // A recording rule's name (`dashboard:outbox_relay_...`) is not a metric.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':') {
            continue;
        }
        let end = text[at..]
            .find(|c| !is_ident(c))
            .map_or(text.len(), |n| at + n);
        names.insert(text[at..end].to_owned());
    }
    names
}

/// One row of the README's metric table.
#[derive(Debug, PartialEq, Eq)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
}

/// The README's metric table: rows that start with a metric name.
fn readme_metrics(readme: &str) -> BTreeMap<String, Documented> {
    let mut rows = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, name, kind, labels, ..] = cells[..] else {
            continue;
        };
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            continue;
        };
        if !name.starts_with("outbox_relay_") {
            continue;
        }
        let labels = labels
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        let (name, kind) = (name.to_owned(), kind.to_owned());
        rows.insert(name, Documented { kind, labels });
    }
    rows
}

/// The TOML text of a block scalar `key: |` in a YAML file.
fn yaml_block(yaml: &str, key: &str) -> String {
    let mut lines = yaml.lines().skip_while(|l| l.trim() != format!("{key}: |"));
    let header = lines.next().expect("block key");
    let outer = header.len() - header.trim_start().len();
    let block: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > outer)
        .collect();
    let indent = block
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    block
        .iter()
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_references_exported(families: &BTreeMap<String, Family>) {
    let mut checked = 0;
    for file in referencing_files() {
        let names = referenced_metrics(&read(&file));
        for name in &names {
            let family = exposition::family_of(families, name);
            assert!(
                families.contains_key(&family),
                "{} names {name}, which the relay does not export",
                file.display()
            );
        }
        checked += names.len();
    }
    assert!(checked > 20, "only {checked} metric references found");
}

fn assert_documented(families: &BTreeMap<String, Family>) {
    let documented = readme_metrics(&read(&repo("README.md")));
    let exported: BTreeSet<&String> = families
        .keys()
        .filter(|n| n.starts_with("outbox_relay_"))
        .collect();
    let listed: BTreeSet<&String> = documented.keys().collect();
    assert_eq!(listed, exported, "README metric table vs /metrics");
    for (name, row) in &documented {
        let family = &families[name];
        assert_eq!(row.kind, family.kind, "type of {name} in the README");
        assert_eq!(row.labels, family.labels, "labels of {name} in the README");
    }
}

fn assert_no_ids_in_labels(families: &BTreeMap<String, Family>, ids: &[String]) {
    for (name, family) in families {
        for label in &family.labels {
            assert!(
                ALLOWED_LABELS.contains(&label.as_str()),
                "{name} has label {label}; allowed: {ALLOWED_LABELS:?}"
            );
        }
        for id in ids {
            assert!(
                !family.values.contains(id),
                "{name} has a label value {id}, an event or aggregate id"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_assets_name_only_exported_metrics() {
    let setup = Setup::replication(100).await;
    let relay = setup.start_relay().await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'deploy-metrics-' || g, 'created', '{}' FROM generate_series(1, 5) g",
    );
    support::eventually(Duration::from_secs(30), "events sent", || async {
        setup.db.unsent().await == 0
    })
    .await;
    setup.queue.drain(5, Duration::from_secs(30)).await;
    let mut ids: Vec<String> = setup
        .db
        .psql("SELECT id FROM outbox")
        .lines()
        .map(str::to_owned)
        .collect();
    ids.extend((1..=5).map(|g| format!("deploy-metrics-{g}")));

    let families = exposition::parse(&relay.metrics().await);
    assert_references_exported(&families);
    assert_documented(&families);
    assert_no_ids_in_labels(&families, &ids);
    setup.queue.delete().await;
}

#[test]
fn deploy_configs_load() {
    for file in [
        "deploy/compose/relay-orders.toml",
        "deploy/compose/relay-payments.toml",
    ] {
        if let Err(e) = Config::load(Some(&repo(file))) {
            panic!("{file}: {e}");
        }
    }
    let yaml = read(&repo("deploy/kubernetes/sidecar.yaml"));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, yaml_block(&yaml, "config.toml")).expect("write config");
    if let Err(e) = Config::load(Some(&path)) {
        panic!("the ConfigMap's config.toml: {e}");
    }
}

#[test]
fn references_are_whole_identifiers() {
    let text = r#"rate(outbox_relay_events_published_total{sink="x"}[5m]) / my_outbox_relay_x
        "outbox_relay_backlog_events: unsent rows", record: dashboard:outbox_relay_1_A"#;
    let names: Vec<String> = referenced_metrics(text).into_iter().collect();
    assert_eq!(
        names,
        [
            "outbox_relay_backlog_events",
            "outbox_relay_events_published_total"
        ]
    );
}

#[test]
fn scrapes_parse_into_families() {
    let text = "# HELP outbox_relay_d Duration.\n\
                # TYPE outbox_relay_d histogram\n\
                outbox_relay_d_bucket{sink=\"kafka\",le=\"0.5\"} 1\n\
                outbox_relay_d_sum{sink=\"kafka\"} 0.2\n\
                outbox_relay_d_count{sink=\"kafka\"} 1\n\
                # TYPE outbox_relay_e_total counter\n\
                outbox_relay_e_total{reason=\"a \\\"b\\\", c\",sink=\"x\"} 3\n\
                # TYPE outbox_relay_g gauge\n\
                outbox_relay_g 0\n";
    let families = exposition::parse(text);
    assert_eq!(families.len(), 3, "{families:?}");
    let d = &families["outbox_relay_d"];
    assert_eq!(d.kind, "histogram");
    assert_eq!(d.labels, BTreeSet::from(["sink".to_owned()]));
    let e = &families["outbox_relay_e_total"];
    assert_eq!(
        e.values,
        BTreeSet::from(["a \"b\", c".to_owned(), "x".to_owned()])
    );
    assert!(families["outbox_relay_g"].labels.is_empty());
    assert_eq!(
        exposition::family_of(&families, "outbox_relay_d_bucket"),
        "outbox_relay_d"
    );
    assert_eq!(
        exposition::family_of(&families, "outbox_relay_e_total_count"),
        "outbox_relay_e_total_count"
    );
}

#[test]
fn readme_rows_parse() {
    let readme = "| metric | type | labels | meaning |\n\
                  | `outbox_relay_a_total` | counter | `sink`, `reason` | what: `x`, `y` |\n\
                  | `outbox_relay_b` | gauge | | b |\n";
    let rows = readme_metrics(readme);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows["outbox_relay_a_total"].kind, "counter");
    assert_eq!(
        rows["outbox_relay_a_total"].labels,
        BTreeSet::from(["sink".to_owned(), "reason".to_owned()])
    );
    assert!(rows["outbox_relay_b"].labels.is_empty());
}

#[test]
fn yaml_blocks_are_extracted() {
    let yaml = "data:\n  config.toml: |\n    [a]\n    b = 1\n\n    [c]\nnext: 1\n";
    assert_eq!(yaml_block(yaml, "config.toml"), "[a]\nb = 1\n\n[c]");
}
