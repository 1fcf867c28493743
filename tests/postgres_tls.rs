//! PostgreSQL over verified TLS, on a cluster of the test's own with
//! `ssl = on` and certificates made by the test, whose pg_hba.conf admits
//! TCP sessions only over TLS (`hostssl`), so every session the relay
//! opens (the source's, the replication stream's, the marks', the leader's
//! lock session) must have used TLS for anything to be delivered.
//! `verify-full` connects with the right CA and host name and refuses an
//! unknown CA, a wrong host name and an expired certificate, naming the
//! reason; `require` still connects; `cert` authentication works.

mod support;

use std::time::Duration;

use support::certs::{CertFiles, Pki, ServerCert, VALID_DAYS};
use support::cluster::TempCluster;
use support::relay::{Relay, RelayConfig, check_line, toml_str};
use support::setup::Setup;
use support::writers;

/// A cluster presenting `pki`'s good server certificate, trusting `pki`'s
/// CA for client certificates; TCP only over TLS: `postgres` trusted,
/// `certuser` by its client certificate.
fn tls_cluster(pki: &Pki) -> TempCluster {
    let server = pki.server(ServerCert::Good);
    let cluster = TempCluster::start(
        &[
            "wal_level = logical",
            "max_replication_slots = 10",
            "max_wal_senders = 10",
            "ssl = on",
            &format!("ssl_cert_file = '{}'", server.cert.display()),
            &format!("ssl_key_file = '{}'", server.key.display()),
            &format!("ssl_ca_file = '{}'", pki.ca().display()),
        ],
        &[
            "hostssl all,replication certuser 127.0.0.1/32 cert",
            "hostssl all,replication postgres 127.0.0.1/32 trust",
        ],
    );
    cluster.psql("CREATE ROLE certuser LOGIN SUPERUSER REPLICATION");
    cluster
}

/// Presents another server certificate from now on.
fn present(cluster: &TempCluster, files: &CertFiles) {
    cluster.reconfigure(&[
        &format!("ssl_cert_file = '{}'", files.cert.display()),
        &format!("ssl_key_file = '{}'", files.key.display()),
    ]);
}

/// `postgres://USER@HOST:PORT/DB?QUERY`.
fn tcp_url(user: &str, host: &str, cluster: &TempCluster, db: &str, query: &str) -> String {
    format!("postgres://{user}@{host}:{}/{db}?{query}", cluster.port)
}

fn verify_full(pki: &Pki) -> String {
    format!("sslmode=verify-full&sslrootcert={}", pki.ca().display())
}

/// `check`'s output for `url`, and whether it succeeded.
fn check(url: &str) -> (bool, String) {
    RelayConfig::for_url(url, "unused").check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_delivers_with_every_session_on_tls() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki);
    let mut setup =
        Setup::replication_on(&cluster.socket_url(), &support::rabbit::url(), 200).await;
    let url = tcp_url(
        "postgres",
        "localhost",
        &cluster,
        &setup.db.name,
        &verify_full(&pki),
    );
    setup.config.set("postgres", "url", &toml_str(&url));

    let (ok, text) = check(&url);
    assert!(ok, "{text}");
    let tls = check_line(&text, "postgres tls");
    assert!(tls.contains("TLSv1.3"), "{tls}");
    assert!(tls.contains("CN=localhost"), "{tls}");
    // Valid until VALID_DAYS days after it was made: a moment ago.
    assert!(
        tls.contains(&format!("in {} days", VALID_DAYS - 1)),
        "{tls}"
    );
    assert!(tls.contains("sslmode=verify-full"), "{tls}");
    assert!(
        tls.contains("chain to CA file") && tls.contains("and host name"),
        "{tls}"
    );
    println!("{tls}\n{}", check_line(&text, "postgres auth"));

    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 4, 250, 5, Duration::ZERO).await;
    let (report, _) = setup.settle("verify-full replication", &written).await;
    assert_eq!(report.duplicates, 0, "no crash, no duplicate: {report}");

    let sessions = cluster.psql(&format!(
        "SELECT count(*) || ' ' || count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE 'outbox-relay%' \
         AND (a.datname = '{}' OR a.backend_type = 'walsender')",
        setup.db.name
    ));
    let (all, on_tls) = sessions.trim().split_once(' ').expect("two counts");
    println!("relay sessions: {all}, over TLS: {on_tls}");
    assert!(
        all.parse::<u32>().expect("count") >= 3,
        "source, stream, leader: {sessions}"
    );
    assert_eq!(all, on_tls, "every relay session uses TLS");
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_unknown_ca_wrong_host_and_expired_certificates() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki);
    let db = "postgres";

    let unknown = format!(
        "sslmode=verify-full&sslrootcert={}",
        pki.unknown_ca().display()
    );
    let (ok, text) = check(&tcp_url("postgres", "localhost", &cluster, db, &unknown));
    assert!(!ok, "{text}");
    assert!(
        check_line(&text, "postgres").contains("(unknown issuer)"),
        "{text}"
    );

    // 127.0.0.1 is in the good certificate; wrong.example's is for another host.
    present(&cluster, &pki.server(ServerCert::WrongHost));
    let (ok, text) = check(&tcp_url(
        "postgres",
        "127.0.0.1",
        &cluster,
        db,
        &verify_full(&pki),
    ));
    assert!(!ok, "{text}");
    let refused = check_line(&text, "postgres");
    assert!(refused.contains("(wrong host name)"), "{refused}");
    assert!(
        refused.contains("127.0.0.1") && refused.contains("wrong.example"),
        "{refused}"
    );
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={}", pki.ca().display());
    let (_, text) = check(&tcp_url("postgres", "127.0.0.1", &cluster, db, &verify_ca));
    let connected = check_line(&text, "postgres");
    assert!(
        connected.starts_with("ok"),
        "verify-ca does not check the host name:\n{text}"
    );

    present(&cluster, &pki.server(ServerCert::Expired));
    let url = tcp_url("postgres", "localhost", &cluster, db, &verify_full(&pki));
    let (ok, text) = check(&url);
    assert!(!ok, "{text}");
    assert!(
        check_line(&text, "postgres").contains("(expired)"),
        "{text}"
    );
    let require = tcp_url("postgres", "localhost", &cluster, db, "sslmode=require");
    let (_, text) = check(&require);
    assert!(
        check_line(&text, "postgres").starts_with("ok"),
        "require checks no certificate:\n{text}"
    );
    assert!(
        check_line(&text, "postgres tls").contains("verified: none"),
        "{text}"
    );

    // `run` does not go on with an untrusted server, and says why.
    let mut config = RelayConfig::for_url(&url, "unused");
    config.set("sink", "kind", "\"stdout\"");
    let mut relay = Relay::start(&config);
    support::eventually(Duration::from_secs(30), "the reason logged", || {
        let log = relay.log_text();
        async move { log.contains("(expired)") }
    })
    .await;
    relay.sigkill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_authentication() {
    let pki = Pki::new();
    let cluster = tls_cluster(&pki);
    let client = pki.client("certuser");
    let mut setup = Setup::on(&cluster.socket_url(), &support::rabbit::url(), 100).await;
    let query = format!(
        "{}&sslcert={}&sslkey={}",
        verify_full(&pki),
        client.cert.display(),
        client.key.display()
    );
    let url = tcp_url("certuser", "localhost", &cluster, &setup.db.name, &query);
    setup.config.set("postgres", "url", &toml_str(&url));

    let (ok, text) = check(&url);
    assert!(ok, "{text}");
    assert!(
        check_line(&text, "postgres tls").contains("client certificate"),
        "{text}"
    );
    assert!(
        check_line(&text, "postgres auth").contains("client certificate"),
        "{text}"
    );

    let without = tcp_url(
        "certuser",
        "localhost",
        &cluster,
        &setup.db.name,
        &verify_full(&pki),
    );
    let (ok, text) = check(&without);
    assert!(!ok, "no client certificate, no login:\n{text}");
    println!("{}", check_line(&text, "postgres"));

    let relay = setup.start_relay().await;
    let written = writers::write(&setup.db.url, 2, 200, 4, Duration::ZERO).await;
    let (report, _) = setup.settle("client certificate, polling", &written).await;
    assert_eq!(report.duplicates, 0, "no crash, no duplicate: {report}");
    drop(relay);
}
