//! A Kafka broker whose certificate does not verify is refused: signed by
//! a CA the relay was not told to trust, issued for another host name, or
//! expired. `check` fails and names the reason; `run` delivers nothing and
//! logs the same reason.

mod support;

use std::path::Path;
use std::time::Duration;

use support::certs::{Pki, ServerCert};
use support::kafka::KafkaSetup;
use support::relay::{Relay, check_line, toml_str};
use support::tls_front::{Front, TlsTansu};

/// The test's own clients skip verification, to make the topic the relay
/// must not reach.
fn unverified() -> Vec<(String, String)> {
    vec![
        ("security.protocol".to_owned(), "ssl".to_owned()),
        (
            "enable.ssl.certificate.verification".to_owned(),
            "false".to_owned(),
        ),
    ]
}

/// A broker presenting `which`, a relay trusting `ca`: `check` fails with
/// `reason` on its `kafka tls` line, librdkafka does not connect either,
/// and `run` leaves every row unsent and logs `reason`.
async fn refused(pki: &Pki, which: ServerCert, ca: &Path, reason: &str) {
    let server = pki.server(which);
    let broker = TlsTansu::start(Front::Tls {
        server: &server,
        client_ca: None,
    });
    let mut setup = KafkaSetup::on_as(&broker.brokers, unverified(), 10).await;
    setup
        .config
        .set("sink.kafka", "security_protocol", "\"ssl\"")
        .set(
            "sink.kafka",
            "ca_file",
            &toml_str(&ca.display().to_string()),
        )
        .set("sink.kafka", "message_timeout", "\"3s\"");

    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check ({which:?})\n{text}");
    assert!(!ok, "{text}");
    let tls = check_line(&text, "kafka tls");
    assert!(tls.starts_with("FAIL"), "{tls}");
    assert!(tls.contains(reason), "{tls}");
    assert!(check_line(&text, "kafka").starts_with("FAIL"), "{text}");

    let mut relay = Relay::start(&setup.config);
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a' || i, 'created', '{}' FROM generate_series(1, 20) i",
    );
    support::eventually(Duration::from_secs(30), "the reason logged", || {
        let log = relay.log_text();
        async move { log.contains(reason) }
    })
    .await;
    assert_eq!(setup.db.unsent().await, 20, "nothing delivered");
    relay.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_is_refused() {
    let pki = Pki::new();
    refused(
        &pki,
        ServerCert::Good,
        &pki.unknown_ca(),
        "(unknown issuer)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_name_is_refused() {
    let pki = Pki::new();
    refused(&pki, ServerCert::WrongHost, &pki.ca(), "(wrong host name)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let pki = Pki::new();
    refused(&pki, ServerCert::Expired, &pki.ca(), "(expired)").await;
}
