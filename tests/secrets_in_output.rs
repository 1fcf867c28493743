//! A password in any form of the connection URL (here libpq's
//! `?password=` query parameter) never reaches `run`'s log or `check`'s
//! output: both show it masked. Nor do the Kafka SASL password read from
//! `sasl_password_file` and the client certificate's private key, even
//! with librdkafka's own security and protocol debug logging on.

mod support;

use std::time::Duration;

use support::certs::{Pki, ServerCert};
use support::kafka::KafkaSetup;
use support::relay::toml_str;
use support::setup::Setup;
use support::tansu::ScramUser;
use support::tls_front::{Front, TlsTansu, client_props};
use support::writers;

const SECRET: &str = "s3cr3t-Pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_parameter_passwords_are_masked_in_run_and_check() {
    let mut setup = Setup::new(10).await;
    // Trust authentication: the password is sent, and not needed.
    let url = format!("{}?password={SECRET}&connect_timeout=10", setup.db.url);
    setup.config.set("postgres", "url", &toml_str(&url));

    let out = setup.config.output(&["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ outbox-relay check\n{text}");
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains(SECRET),
        "check printed the password:\n{text}"
    );
    assert!(text.contains("password=***"), "{text}");

    let mut relay = setup.start_relay().await;
    relay.sigterm(Duration::from_secs(10));
    let log = relay.log_text();
    assert!(!log.contains(SECRET), "run logged the password:\n{log}");
    let starting = log
        .lines()
        .find(|l| l.contains("starting"))
        .unwrap_or_default();
    assert!(starting.contains("password=***"), "{starting}");
}

const KAFKA_SECRET: &str = "k4fka-S3cret";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kafka_password_file_and_client_key_never_appear() {
    let pki = Pki::new();
    let server = pki.server(ServerCert::Good);
    let ca = pki.ca();
    let client = pki.client("outbox-relay");
    let broker = TlsTansu::with_users(
        Front::Tls {
            server: &server,
            client_ca: Some(&ca),
        },
        &[ScramUser {
            name: "relay",
            password: KAFKA_SECRET,
            mechanism: "SCRAM-SHA-512",
        }],
    );
    let mut props = client_props(&ca, Some(&client));
    props.retain(|(k, _)| k != "security.protocol");
    for (k, v) in [
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", "relay"),
        ("sasl.password", KAFKA_SECRET),
    ] {
        props.push((k.to_owned(), v.to_owned()));
    }
    let mut setup = KafkaSetup::on_as(&broker.brokers, props, 50).await;
    let dir = tempfile::tempdir().expect("secret dir");
    let password_file = dir.path().join("kafka-password");
    std::fs::write(&password_file, KAFKA_SECRET).expect("password file");
    let path = |p: &std::path::Path| toml_str(&p.display().to_string());
    setup
        .config
        .set("sink.kafka", "security_protocol", "\"sasl_ssl\"")
        .set("sink.kafka", "sasl_mechanism", "\"SCRAM-SHA-512\"")
        .set("sink.kafka", "sasl_username", "\"relay\"")
        .set("sink.kafka", "sasl_password_file", &path(&password_file))
        .set("sink.kafka", "ca_file", &path(&ca))
        .set("sink.kafka", "cert_file", &path(&client.cert))
        .set("sink.kafka", "key_file", &path(&client.key))
        .set(
            "sink.kafka.librdkafka",
            "\"debug\"",
            "\"security,broker,protocol\"",
        );
    let key = std::fs::read_to_string(&client.key).expect("client key");
    let key_lines: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .collect();
    assert!(!key_lines.is_empty());
    let leaks = |text: &str| -> Vec<String> {
        let mut found: Vec<String> = key_lines
            .iter()
            .filter(|l| text.contains(**l))
            .map(|l| format!("key line {l}"))
            .collect();
        if text.contains(KAFKA_SECRET) {
            found.push("the sasl password".into());
        }
        found
    };

    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check\n{text}");
    assert!(ok, "{text}");
    assert_eq!(leaks(&text), Vec::<String>::new(), "check printed secrets");

    let mut relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 1, 100, 4, Duration::ZERO).await;
    setup
        .settle("secrets: kafka sasl_ssl + mtls", &written)
        .await;
    relay.sigterm(Duration::from_secs(10));
    let log = relay.log_text();
    assert!(
        log.contains("librdkafka"),
        "librdkafka's debug lines are logged"
    );
    assert_eq!(leaks(&log), Vec::<String>::new(), "run logged secrets");
}
