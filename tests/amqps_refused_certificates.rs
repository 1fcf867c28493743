//! A broker certificate that does not verify stops the relay from talking
//! to RabbitMQ, and both `check` and the relay's log say why: an unknown
//! issuer, a wrong host name, an expired certificate. Nothing is marked
//! sent meanwhile. One node of the test's own presents each certificate.

mod support;

use std::time::Duration;

use support::certs::{Pki, ServerCert};
use support::rabbit_node::RabbitNode;
use support::relay::{Relay, toml_str};
use support::setup::Setup;
use support::writers;

/// `check`'s `rabbitmq` and `rabbitmq tls` lines; `check` must fail.
fn failing_check(setup: &Setup) -> String {
    let (ok, text) = setup.config.check();
    assert!(!ok, "check must fail:\n{text}");
    text.lines()
        .filter(|l| l.starts_with("FAIL rabbitmq"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_issuer_wrong_host_and_expired_are_refused_and_named() {
    let pki = Pki::new();
    let node = RabbitNode::start_tls(&pki);
    let mut setup = Setup::on(&support::db::server(), &node.url, 50).await;
    setup
        .config
        .set(
            "sink.rabbitmq",
            "url",
            &toml_str(&node.amqps_url("guest:guest", "localhost")),
        )
        .set(
            "sink.rabbitmq",
            "ca_file",
            &toml_str(&pki.unknown_ca().display().to_string()),
        )
        .set("sink.rabbitmq", "confirm_timeout", "\"5s\"")
        .set("retry", "max_backoff", "\"1s\"");

    let failed = failing_check(&setup);
    println!("unknown CA:\n{failed}");
    assert!(failed.contains("FAIL rabbitmq tls:"), "{failed}");
    assert!(failed.contains("FAIL rabbitmq:"), "{failed}");
    assert_eq!(failed.matches("(unknown issuer)").count(), 2, "{failed}");

    // The relay keeps trying, says why, and marks nothing.
    let mut relay = Relay::start(&setup.config);
    let written = writers::write(&setup.db.url, 1, 20, 2, Duration::ZERO).await;
    let log = &relay;
    support::eventually(
        Duration::from_secs(30),
        "the reason in the log",
        || async move { log.log_text().contains("(unknown issuer)") },
    )
    .await;
    assert_eq!(
        setup.db.unsent().await,
        written.len() as i64,
        "nothing sent"
    );
    assert!(relay.try_wait().is_none(), "the relay waits for the broker");
    drop(relay);

    let ca = pki.ca().display().to_string();
    setup.config.set("sink.rabbitmq", "ca_file", &toml_str(&ca));
    node.present(&pki.server(ServerCert::WrongHost));
    let failed = failing_check(&setup);
    println!("wrong host:\n{failed}");
    assert_eq!(failed.matches("(wrong host name)").count(), 2, "{failed}");
    assert!(failed.contains("localhost"), "names the host: {failed}");

    node.present(&pki.server(ServerCert::Expired));
    let failed = failing_check(&setup);
    println!("expired:\n{failed}");
    assert_eq!(failed.matches("(expired)").count(), 2, "{failed}");

    // The good certificate again: everything written meanwhile arrives.
    node.present(&pki.server(ServerCert::Good));
    let relay = setup.start_relay().await;
    let (report, _) = setup.settle("after the refusals", &written).await;
    assert_eq!(report.received, written.len(), "{report}");
    drop(relay);
    setup.queue.delete().await;
}
