//! Kafka over verified TLS: the relay's producer reaches a private tansu
//! only through a TLS front (socat) that tansu advertises as its address,
//! so every connection, bootstrap or not, is TLS checked against the test
//! CA and the host name. Everything written is delivered, in order per
//! aggregate; `check` reports the session. With a front that requires a
//! client certificate, the relay's (`cert_file`, `key_file`) gets it in.

mod support;

use std::time::Duration;

use support::certs::{CertFiles, Pki, ServerCert, VALID_DAYS};
use support::kafka::KafkaSetup;
use support::relay::{check_line, toml_str};
use support::tls_front::{Front, TlsTansu, client_props};
use support::writers;

/// Sets the relay's TLS keys: TLS, the test CA, and `client`'s certificate.
fn relay_tls(setup: &mut KafkaSetup, pki: &Pki, client: Option<&CertFiles>) {
    setup
        .config
        .set("sink.kafka", "security_protocol", "\"ssl\"")
        .set(
            "sink.kafka",
            "ca_file",
            &toml_str(&pki.ca().display().to_string()),
        )
        .set("sink.kafka", "message_timeout", "\"5s\"");
    if let Some(client) = client {
        setup
            .config
            .set(
                "sink.kafka",
                "cert_file",
                &toml_str(&client.cert.display().to_string()),
            )
            .set(
                "sink.kafka",
                "key_file",
                &toml_str(&client.key.display().to_string()),
            );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivers_everything_over_verified_tls() {
    let pki = Pki::new();
    let server = pki.server(ServerCert::Good);
    let broker = TlsTansu::start(Front::Tls {
        server: &server,
        client_ca: None,
    });
    let mut setup = KafkaSetup::on_as(&broker.brokers, client_props(&pki.ca(), None), 200).await;
    relay_tls(&mut setup, &pki, None);

    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check\n{text}");
    assert!(ok, "{text}");
    let tls = check_line(&text, "kafka tls");
    assert!(tls.contains("TLSv1."), "{tls}");
    assert!(tls.contains("CN=localhost"), "{tls}");
    // Valid until VALID_DAYS days after it was made: a moment ago (or in
    // the same second, which leaves the whole of them).
    assert!(
        tls.contains(&format!("in {} days", VALID_DAYS - 1))
            || tls.contains(&format!("in {VALID_DAYS} days")),
        "{tls}"
    );
    assert!(
        tls.contains("chain to CA file") && tls.contains("and host name"),
        "{tls}"
    );
    assert_eq!(check_line(&text, "kafka auth"), "ok   kafka auth: none");

    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 4, 500, 5, Duration::ZERO).await;
    let (report, records) = setup.settle("kafka over tls", &written).await;
    assert_eq!(
        report.duplicates, 0,
        "no failure, so no duplicate: {report}"
    );
    assert!(records.iter().all(|r| r.topic == setup.topic));
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_certificate_gets_through_a_front_that_requires_one() {
    let pki = Pki::new();
    let server = pki.server(ServerCert::Good);
    let ca = pki.ca();
    let client = pki.client("outbox-relay");
    let broker = TlsTansu::start(Front::Tls {
        server: &server,
        client_ca: Some(&ca),
    });
    let mut setup = KafkaSetup::on_as(&broker.brokers, client_props(&ca, Some(&client)), 200).await;

    // Without a client certificate the front lets nothing through.
    relay_tls(&mut setup, &pki, None);
    let (ok, text) = setup.config.check();
    assert!(!ok, "no client certificate, no connection:\n{text}");
    println!(
        "without a client certificate: {}",
        check_line(&text, "kafka")
    );

    relay_tls(&mut setup, &pki, Some(&client));
    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check\n{text}");
    assert!(ok, "{text}");
    let tls = check_line(&text, "kafka tls");
    assert!(tls.contains("client certificate"), "{tls}");

    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 300, 4, Duration::ZERO).await;
    let (report, _) = setup.settle("kafka over mutual tls", &written).await;
    assert_eq!(
        report.duplicates, 0,
        "no failure, so no duplicate: {report}"
    );
    drop(relay);
}
