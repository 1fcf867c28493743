//! The cost of TLS to PostgreSQL, measured, not asserted: the same backlog
//! drained into the stdout sink (so no broker bounds it) over plain TCP
//! and over `sslmode=verify-full`, by polling (with marks) and by
//! replication, from one private cluster with `ssl = on`, in one run.
//! Ignored by default; run it with `cargo nextest run --test
//! postgres_tls_drain_rate --run-ignored all --success-output immediate`.

mod support;

use std::time::{Duration, Instant};

use support::certs::{Pki, ServerCert};
use support::cluster::TempCluster;
use support::db::TestDb;
use support::relay::{Relay, RelayConfig, toml_str};

const ROWS: usize = 20_000;
const BATCH: usize = 500;

/// Rows per second for draining [`ROWS`] rows with `query` in the URL.
async fn drain(cluster: &TempCluster, replication: bool, query: &str) -> f64 {
    let db = TestDb::on(&cluster.socket_url());
    let url = format!(
        "postgres://postgres@localhost:{}/{}?{query}",
        cluster.port, db.name
    );
    let mut config = RelayConfig::for_url(&url, "unused");
    config
        .set("sink", "kind", "\"stdout\"")
        .set("log", "level", "\"info\"")
        .set("source.polling", "batch_size", &BATCH.to_string());
    if replication {
        config
            .set("source", "mode", "\"replication\"")
            .set("source.replication", "slot", &toml_str(&db.name))
            .set("source.replication", "publication", &toml_str(&db.name))
            .set("source.replication", "batch_size", &BATCH.to_string());
    }
    config.migrate();
    db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'agg-' || (g % 100), 'created', \
                jsonb_build_object('key', 'dr-' || g, 'pad', repeat('x', 200)), '{{}}' \
         FROM generate_series(1, {ROWS}) AS g"
    ));
    let (mut relay, _stdout) = Relay::start_capturing_stdout(&config);
    relay.wait_ready().await;
    let started = Instant::now();
    support::eventually(Duration::from_secs(300), "the backlog drained", || async {
        db.unsent().await == 0
    })
    .await;
    let rate = ROWS as f64 / started.elapsed().as_secs_f64();
    relay.sigterm(Duration::from_secs(10));
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run on demand"]
async fn drain_rate_over_tls_and_plain() {
    let pki = Pki::new();
    let server = pki.server(ServerCert::Good);
    let cluster = TempCluster::start(
        &[
            "wal_level = logical",
            "max_replication_slots = 10",
            "max_wal_senders = 10",
            "ssl = on",
            &format!("ssl_cert_file = '{}'", server.cert.display()),
            &format!("ssl_key_file = '{}'", server.key.display()),
        ],
        &["host all,replication postgres 127.0.0.1/32 trust"],
    );
    let tls = format!("sslmode=verify-full&sslrootcert={}", pki.ca().display());
    for replication in [false, true] {
        let mode = if replication {
            "replication"
        } else {
            "polling"
        };
        let plain = drain(&cluster, replication, "sslmode=disable").await;
        let secured = drain(&cluster, replication, &tls).await;
        let plain_again = drain(&cluster, replication, "sslmode=disable").await;
        let plain = (plain + plain_again) / 2.0;
        println!(
            "{mode}, {ROWS} rows, batch {BATCH}, stdout sink: plain {plain:.0} rows/s, \
             verify-full {secured:.0} rows/s, TLS/plain {:.2}",
            secured / plain
        );
    }
}
