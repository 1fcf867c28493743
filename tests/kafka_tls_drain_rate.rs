//! How much TLS costs the Kafka sink: the same 20,000-row backlog drained
//! (inserted at once, every row marked sent) through a plain private
//! tansu, through a socat front that only forwards TCP, and through a
//! socat TLS front, in one run; prints rows per second for each and checks
//! the topic holds at least every row. Ignored by default (about a minute):
//! `scripts/servers.sh run --kafka -- cargo nextest run --test
//! kafka_tls_drain_rate --run-ignored only --no-capture`.

mod support;

use std::time::{Duration, Instant};

use support::certs::{Pki, ServerCert};
use support::kafka::{KafkaSetup, record_count_as};
use support::relay::toml_str;
use support::tansu::PrivateTansu;
use support::tls_front::{Front, TlsFront, TlsTansu, client_props};

const ROWS: usize = 20_000;
const BATCH: usize = 500;

/// Inserts the backlog into a running relay's outbox and times it until
/// every row is marked; verifies delivery; returns rows per second.
async fn drain(setup: &KafkaSetup, label: &str) -> f64 {
    let relay = setup.start_relay().await;
    let started = Instant::now();
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a' || (i % 100), 'created', \
                jsonb_build_object('key', 'k' || i, 'amount', i) \
         FROM generate_series(1, {ROWS}) i"
    ));
    support::eventually(Duration::from_secs(240), "the backlog drained", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let took = started.elapsed();
    drop(relay);
    let rate = ROWS as f64 / took.as_secs_f64();
    println!("{label}: {ROWS} rows drained in {took:.1?} ({rate:.0} rows/s)");
    // Reading 20,000 records back one by one takes tansu minutes; the
    // delivery tests check content and order, this the count.
    let (brokers, client, topic) = (
        setup.brokers.clone(),
        setup.client.clone(),
        setup.topic.clone(),
    );
    let records = tokio::task::spawn_blocking(move || record_count_as(&brokers, &client, &topic))
        .await
        .expect("counting");
    assert!(
        records >= ROWS as i64,
        "{label}: only {records} of {ROWS} records"
    );
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, about a minute: run with --run-ignored"]
async fn drain_rate_plain_forwarded_and_tls() {
    let plain = {
        let broker = PrivateTansu::start();
        let setup = KafkaSetup::on(&broker.address, BATCH).await;
        drain(&setup, "plain tansu").await
    };

    let forwarded = {
        let port = TlsFront::reserve_port();
        let brokers = format!("127.0.0.1:{port}");
        let broker = PrivateTansu::advertising(Some(&brokers));
        let _front = TlsFront::start(port, Front::Plain, &broker.address);
        let setup = KafkaSetup::on(&brokers, BATCH).await;
        drain(&setup, "socat tcp forwarding").await
    };

    let pki = Pki::new();
    let server = pki.server(ServerCert::Good);
    let tls = {
        let broker = TlsTansu::start(Front::Tls {
            server: &server,
            client_ca: None,
        });
        let mut setup =
            KafkaSetup::on_as(&broker.brokers, client_props(&pki.ca(), None), BATCH).await;
        setup
            .config
            .set("sink.kafka", "security_protocol", "\"ssl\"")
            .set(
                "sink.kafka",
                "ca_file",
                &toml_str(&pki.ca().display().to_string()),
            );
        drain(&setup, "socat tls").await
    };

    println!(
        "drain rate, rows/s: plain {plain:.0}, socat forwarding {forwarded:.0} ({:.2}x), \
         socat tls {tls:.0} ({:.2}x of plain, {:.2}x of forwarding)",
        forwarded / plain,
        tls / plain,
        tls / forwarded
    );
}
