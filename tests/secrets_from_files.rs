//! Secrets read from files (a Postgres and a RabbitMQ password file, a
//! client certificate's private key) never reach `check`'s output or the
//! relay's log, even at debug level and when the broker refuses the login;
//! a rotated password file is read at the next connection.

mod support;

use std::time::Duration;

use support::certs::Pki;
use support::rabbit_node::RabbitNode;
use support::relay::{Relay, toml_str};
use support::setup::Setup;
use support::writers;

const PG_SECRET: &str = "pg-Fi1e-s3cret";
const AMQP_SECRET: &str = "amqp-Fi1e-s3cret";

/// Every line of the key file's base64 body: none may be printed.
fn key_material(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("key file")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(str::to_owned)
        .collect()
}

fn assert_no_secret(text: &str, key: &[String], what: &str) {
    for secret in [PG_SECRET, AMQP_SECRET] {
        assert!(!text.contains(secret), "{what} printed {secret}:\n{text}");
    }
    for line in key {
        assert!(
            !text.contains(line.as_str()),
            "{what} printed key material:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_secrets_and_client_keys_are_never_printed() {
    let pki = Pki::new();
    let node = RabbitNode::start_tls(&pki);
    let mut setup = Setup::on(&support::db::server(), &node.url, 50).await;
    let dir = pki.dir();
    let pg_password = dir.join("pg-password");
    let amqp_password = dir.join("amqp-password");
    // Trust authentication: the Postgres password is sent, and not needed.
    std::fs::write(&pg_password, PG_SECRET).expect("pg password file");
    std::fs::write(&amqp_password, format!("{AMQP_SECRET}\n")).expect("amqp password file");
    let client = pki.client("guest");
    let key = key_material(&client.key);
    let path = |p: &std::path::Path| toml_str(&p.display().to_string());
    setup
        .config
        .set("postgres", "password_file", &path(&pg_password))
        .set(
            "sink.rabbitmq",
            "url",
            &toml_str(&node.amqps_url("guest", "localhost")),
        )
        .set("sink.rabbitmq", "password_file", &path(&amqp_password))
        .set("sink.rabbitmq", "ca_file", &path(&pki.ca()))
        .set("sink.rabbitmq", "cert_file", &path(&client.cert))
        .set("sink.rabbitmq", "key_file", &path(&client.key))
        .set("sink.rabbitmq", "confirm_timeout", "\"5s\"")
        .set("retry", "max_backoff", "\"1s\"")
        .set("log", "level", "\"debug\"");

    // The broker refuses the wrong password from the file.
    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check\n{text}");
    assert!(!ok, "the login is refused:\n{text}");
    assert!(text.contains("FAIL rabbitmq:"), "{text}");
    assert_no_secret(&text, &key, "check");

    let mut relay = Relay::start(&setup.config);
    let written = writers::write(&setup.db.url, 1, 20, 2, Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(setup.db.unsent().await, 20, "nothing is sent while refused");
    // The secret is rotated: the next connection reads the new one.
    std::fs::write(&amqp_password, "guest\n").expect("rotate the password");
    let (report, _) = setup.settle("after rotating the password", &written).await;
    assert_eq!(report.received, written.len(), "{report}");
    relay.sigterm(Duration::from_secs(10));
    let log = relay.log_text();
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert_no_secret(&log, &key, "run");
    setup.queue.delete().await;
}
