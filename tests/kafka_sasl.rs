//! SASL logins against a private tansu started with `--authentication`
//! (which then serves nobody who has not logged in): SCRAM-SHA-256 over
//! plain TCP with the password in the config, SCRAM-SHA-512 inside TLS
//! (`sasl_ssl`, as hosted Kafka asks) with the password from
//! `sasl_password_file` and from `OUTBOX_RELAY_SINK__KAFKA__SASL_PASSWORD_FILE`.
//! A wrong password is refused with an error that says so and delivers
//! nothing. (tansu accepts any PLAIN password, so PLAIN is not tested here.)

mod support;

use std::time::Duration;

use support::certs::{Pki, ServerCert};
use support::kafka::KafkaSetup;
use support::relay::{Relay, check_line, toml_str};
use support::tansu::{PrivateTansu, ScramUser};
use support::tls_front::{Front, TlsTansu, client_props};
use support::writers;

const USER: &str = "relay";
const PASSWORD: &str = "scram-Pa55word";
const WRONG: &str = "not-the-Pa55word";

fn login(mechanism: &str, password: &str) -> Vec<(String, String)> {
    vec![
        ("sasl.mechanisms".to_owned(), mechanism.to_owned()),
        ("sasl.username".to_owned(), USER.to_owned()),
        ("sasl.password".to_owned(), password.to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scram_sha_256_delivers_and_a_wrong_password_is_refused() {
    let broker = PrivateTansu::with_users(
        None,
        &[ScramUser {
            name: USER,
            password: PASSWORD,
            mechanism: "SCRAM-SHA-256",
        }],
    );
    let mut client = login("SCRAM-SHA-256", PASSWORD);
    client.push(("security.protocol".into(), "sasl_plaintext".into()));
    let mut setup = KafkaSetup::on_as(&broker.address, client, 200).await;
    setup
        .config
        .set("sink.kafka", "security_protocol", "\"sasl_plaintext\"")
        .set("sink.kafka", "sasl_mechanism", "\"SCRAM-SHA-256\"")
        .set("sink.kafka", "sasl_username", &toml_str(USER))
        .set("sink.kafka", "sasl_password", &toml_str(PASSWORD))
        .set("sink.kafka", "message_timeout", "\"5s\"");

    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check\n{text}");
    assert!(ok, "{text}");
    assert_eq!(
        check_line(&text, "kafka auth"),
        "ok   kafka auth: SCRAM-SHA-256 as user relay"
    );
    assert!(check_line(&text, "kafka tls").contains("off"), "{text}");

    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 300, 4, Duration::ZERO).await;
    let (report, _) = setup.settle("kafka scram-sha-256", &written).await;
    assert_eq!(
        report.duplicates, 0,
        "no failure, so no duplicate: {report}"
    );
    drop(relay);

    setup
        .config
        .set("sink.kafka", "sasl_password", &toml_str(WRONG));
    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check (wrong password)\n{text}");
    assert!(!ok, "{text}");
    let refused = check_line(&text, "kafka");
    assert!(refused.contains("uthentication"), "{refused}");
    assert!(
        !text.contains(WRONG),
        "the password is never shown:\n{text}"
    );

    let mut relay = Relay::start(&setup.config);
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a' || i, 'created', '{}' FROM generate_series(1, 20) i",
    );
    support::eventually(Duration::from_secs(30), "the refusal logged", || {
        let log = relay.log_text();
        async move { log.contains("broker not reachable yet") && log.contains("uthentication") }
    })
    .await;
    assert_eq!(setup.db.unsent().await, 20, "nothing delivered");
    let log = relay.log_text();
    assert!(!log.contains(WRONG), "the password is never logged:\n{log}");
    relay.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scram_sha_512_inside_tls_with_the_password_from_a_file() {
    let pki = Pki::new();
    let server = pki.server(ServerCert::Good);
    let broker = TlsTansu::with_users(
        Front::Tls {
            server: &server,
            client_ca: None,
        },
        &[ScramUser {
            name: USER,
            password: PASSWORD,
            mechanism: "SCRAM-SHA-512",
        }],
    );
    let mut client = client_props(&pki.ca(), None);
    client.retain(|(k, _)| k != "security.protocol");
    client.push(("security.protocol".into(), "sasl_ssl".into()));
    client.extend(login("SCRAM-SHA-512", PASSWORD));
    let mut setup = KafkaSetup::on_as(&broker.brokers, client, 200).await;
    let secrets = tempfile::tempdir().expect("secret dir");
    let password_file = secrets.path().join("kafka-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("password file");
    let password_file = password_file.display().to_string();
    setup
        .config
        .set("sink.kafka", "security_protocol", "\"sasl_ssl\"")
        .set("sink.kafka", "sasl_mechanism", "\"SCRAM-SHA-512\"")
        .set("sink.kafka", "sasl_username", &toml_str(USER))
        .set(
            "sink.kafka",
            "sasl_password_file",
            &toml_str(&password_file),
        )
        .set(
            "sink.kafka",
            "ca_file",
            &toml_str(&pki.ca().display().to_string()),
        )
        .set("sink.kafka", "message_timeout", "\"5s\"");

    let (ok, text) = setup.config.check();
    println!("$ outbox-relay check\n{text}");
    assert!(ok, "{text}");
    assert_eq!(
        check_line(&text, "kafka auth"),
        "ok   kafka auth: SCRAM-SHA-512 as user relay"
    );
    assert!(
        check_line(&text, "kafka tls").contains("CN=localhost"),
        "{text}"
    );

    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 300, 4, Duration::ZERO).await;
    let (report, _) = setup.settle("kafka sasl_ssl scram-sha-512", &written).await;
    assert_eq!(
        report.duplicates, 0,
        "no failure, so no duplicate: {report}"
    );
    drop(relay);

    // The *_FILE variable instead of the key.
    setup
        .config
        .set("sink.kafka", "sasl_password_file", "\"\"")
        .env(
            "OUTBOX_RELAY_SINK__KAFKA__SASL_PASSWORD_FILE",
            &password_file,
        );
    let (ok, text) = setup.config.check();
    assert!(ok, "password from the *_FILE variable:\n{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}
