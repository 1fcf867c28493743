//! RabbitMQ over verified TLS, on a node of the test's own with an amqps
//! listener and certificates made by the test: every row is delivered in
//! per-aggregate order with a PLAIN login whose password comes from a
//! file, and with a client certificate and EXTERNAL (no password at all);
//! the broker confirms the relay's connection used TLS and which mechanism.
//! A broker that offers only TLS 1.2 is reached too.

mod support;

use std::time::Duration;

use support::certs::{Pki, VALID_DAYS};
use support::rabbit_node::RabbitNode;
use support::relay::{check_line, toml_str};
use support::setup::Setup;
use support::writers;

/// The relay's connections as the broker sees them: `ssl protocol user mechanism`.
fn relay_connections(node: &RabbitNode) -> Vec<String> {
    node.ctl(&[
        "list_connections",
        "--no-table-headers",
        "client_properties",
        "ssl",
        "ssl_protocol",
        "user",
        "auth_mechanism",
    ])
    .lines()
    .filter(|l| l.contains("outbox-relay"))
    .map(|l| {
        let fields: Vec<&str> = l.split('\t').collect();
        fields[fields.len() - 4..].join(" ")
    })
    .collect()
}

async fn deliver(setup: &Setup, node: &RabbitNode, label: &str) -> Vec<String> {
    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 4, 250, 5, Duration::ZERO).await;
    let (report, _) = setup.settle(label, &written).await;
    assert_eq!(report.duplicates, 0, "no failure, no duplicate: {report}");
    let connections = relay_connections(node);
    println!("{label}: relay connections {connections:?}");
    drop(relay);
    setup.queue.delete().await;
    connections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_with_the_ca_file_and_a_password_file_delivers_everything() {
    let pki = Pki::new();
    let node = RabbitNode::start_tls(&pki);
    let mut setup = Setup::on(&support::db::server(), &node.url, 100).await;
    let password = pki.dir().join("rabbit-password");
    std::fs::write(&password, "guest\n").expect("password file");
    setup
        .config
        .set(
            "sink.rabbitmq",
            "url",
            &toml_str(&node.amqps_url("guest", "localhost")),
        )
        .set(
            "sink.rabbitmq",
            "ca_file",
            &toml_str(&pki.ca().display().to_string()),
        )
        .set(
            "sink.rabbitmq",
            "password_file",
            &toml_str(&password.display().to_string()),
        );

    let (ok, text) = setup.config.check();
    assert!(ok, "{text}");
    let tls = check_line(&text, "rabbitmq tls");
    assert!(tls.contains("TLSv1.3"), "{tls}");
    assert!(tls.contains("CN=localhost"), "{tls}");
    assert!(
        tls.contains(&format!("in {} days", VALID_DAYS - 1)),
        "{tls}"
    );
    assert!(
        tls.contains("chain to CA file") && tls.contains("and host name"),
        "{tls}"
    );
    let auth = check_line(&text, "rabbitmq auth");
    assert!(auth.contains("PLAIN as user `guest`"), "{auth}");
    assert!(auth.contains("password from"), "{auth}");
    println!("{tls}\n{auth}");

    let connections = deliver(&setup, &node, "amqps PLAIN").await;
    assert!(!connections.is_empty(), "the relay was connected");
    for c in &connections {
        assert!(c.starts_with("true tlsv1.3 guest PLAIN"), "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_with_external_delivers_everything() {
    let pki = Pki::new();
    let node = RabbitNode::start_tls(&pki);
    node.ctl(&["add_user", "relay", "unused-password"]);
    node.ctl(&["clear_password", "relay"]);
    node.ctl(&["set_permissions", "-p", "/", "relay", ".*", ".*", ".*"]);
    let client = pki.client("relay");
    let mut setup = Setup::on(&support::db::server(), &node.url, 100).await;
    setup
        .config
        .set(
            "sink.rabbitmq",
            "url",
            &toml_str(&node.amqps_url("", "localhost")),
        )
        .set(
            "sink.rabbitmq",
            "ca_file",
            &toml_str(&pki.ca().display().to_string()),
        )
        .set(
            "sink.rabbitmq",
            "cert_file",
            &toml_str(&client.cert.display().to_string()),
        )
        .set(
            "sink.rabbitmq",
            "key_file",
            &toml_str(&client.key.display().to_string()),
        )
        .set("sink.rabbitmq", "auth_mechanism", "\"external\"");

    let (ok, text) = setup.config.check();
    assert!(ok, "{text}");
    let tls = check_line(&text, "rabbitmq tls");
    assert!(tls.contains("client certificate"), "{tls}");
    let auth = check_line(&text, "rabbitmq auth");
    assert!(auth.contains("EXTERNAL"), "{auth}");
    println!("{tls}\n{auth}");

    let connections = deliver(&setup, &node, "amqps EXTERNAL").await;
    assert!(!connections.is_empty(), "the relay was connected");
    for c in &connections {
        assert!(c.starts_with("true tlsv1.3 relay EXTERNAL"), "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_only_tls_1_2_is_reached() {
    let pki = Pki::new();
    let node = RabbitNode::start_tls_versions(&pki, &["tlsv1.2"]);
    let mut setup = Setup::on(&support::db::server(), &node.url, 100).await;
    setup
        .config
        .set(
            "sink.rabbitmq",
            "url",
            &toml_str(&node.amqps_url("guest:guest", "127.0.0.1")),
        )
        .set(
            "sink.rabbitmq",
            "ca_file",
            &toml_str(&pki.ca().display().to_string()),
        );

    let (ok, text) = setup.config.check();
    assert!(ok, "{text}");
    let tls = check_line(&text, "rabbitmq tls");
    assert!(tls.contains("TLSv1.2"), "{tls}");
    println!("{tls}");

    let connections = deliver(&setup, &node, "amqps TLS 1.2").await;
    assert!(!connections.is_empty(), "the relay was connected");
    for c in &connections {
        assert!(c.starts_with("true tlsv1.2 guest PLAIN"), "{c}");
    }
}
