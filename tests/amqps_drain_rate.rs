//! The cost of TLS to RabbitMQ, measured, not asserted: the same backlog
//! drained over `amqp://` and over `amqps://` from one private node, the
//! two taking turns, in one run. Ignored by default (it takes a minute);
//! run it with `cargo nextest run --test amqps_drain_rate --run-ignored all
//! --success-output immediate`.

mod support;

use std::time::{Duration, Instant};

use support::certs::Pki;
use support::rabbit_node::RabbitNode;
use support::relay::toml_str;
use support::setup::Setup;

const ROWS: usize = 20_000;
const BATCH: usize = 500;
const ROUNDS: usize = 2;

/// Rows per second for draining a backlog of [`ROWS`] through `url`.
async fn drain(node: &RabbitNode, url: &str, ca: &str) -> f64 {
    let mut setup = Setup::on(&support::db::server(), &node.url, BATCH).await;
    setup
        .config
        .set("sink.rabbitmq", "url", &toml_str(url))
        .set("sink.rabbitmq", "ca_file", &toml_str(ca));
    if url.starts_with("amqp://") {
        setup.config.set("sink.rabbitmq", "ca_file", "\"\"");
    }
    setup.db.psql(&format!(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers) \
         SELECT 'order', 'agg-' || (g % 100), 'created', \
                jsonb_build_object('key', 'dr-' || g, 'pad', repeat('x', 200)), '{{}}' \
         FROM generate_series(1, {ROWS}) AS g"
    ));
    let relay = setup.start_relay().await;
    let started = Instant::now();
    support::eventually(Duration::from_secs(300), "the backlog drained", || async {
        setup.db.unsent().await == 0
    })
    .await;
    let rate = ROWS as f64 / started.elapsed().as_secs_f64();
    drop(relay);
    setup.queue.delete().await;
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run on demand"]
async fn drain_rate_over_tls_and_plain() {
    let pki = Pki::new();
    let node = RabbitNode::start_tls(&pki);
    let ca = pki.ca().display().to_string();
    let tls_url = node.amqps_url("guest:guest", "localhost");
    let (mut plain, mut tls) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (first, second) = if round % 2 == 0 {
            (&node.url, &tls_url)
        } else {
            (&tls_url, &node.url)
        };
        for url in [first, second] {
            let rate = drain(&node, url, &ca).await;
            println!("round {round}: {url}: {rate:.0} rows/s");
            if url == &tls_url {
                &mut tls
            } else {
                &mut plain
            }
            .push(rate);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "{ROWS} rows, batch {BATCH}: plain {:.0} rows/s, TLS {:.0} rows/s, TLS/plain {:.2}",
        mean(&plain),
        mean(&tls),
        mean(&tls) / mean(&plain)
    );
}
