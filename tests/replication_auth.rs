//! The replication connection authenticates with SCRAM-SHA-256 and md5 and
//! names a wrong password; replication mode refuses a server whose
//! wal_level is below logical. Each on a throwaway cluster, never on the
//! shared server.

mod support;

use std::time::Duration;

use outbox_relay::config::{PostgresConfig, SecretUrl};
use outbox_relay::source::replication::connection::ReplicationConnection;
use support::cluster::TempCluster;
use support::relay::{Relay, RelayConfig, run_to_exit, toml_str};

fn config(url: String) -> PostgresConfig {
    PostgresConfig {
        url: SecretUrl::new(url),
        connect_timeout: Duration::from_secs(10),
        ..PostgresConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_md5_and_wrong_passwords() {
    let cluster = TempCluster::start(
        &["wal_level = logical"],
        &[
            "host all md5user 127.0.0.1/32 md5",
            "host all,replication all 127.0.0.1/32 scram-sha-256",
        ],
    );
    cluster.psql("CREATE ROLE relay LOGIN REPLICATION PASSWORD 's3cret'");
    cluster.psql(
        "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN REPLICATION PASSWORD 'md5pw'",
    );
    let port = cluster.port;

    let mut scram = ReplicationConnection::connect(&config(format!(
        "postgres://relay:s3cret@127.0.0.1:{port}/postgres"
    )))
    .await
    .expect("scram login");
    let system = scram
        .simple_query("IDENTIFY_SYSTEM")
        .await
        .expect("identify");
    assert_eq!(system[0][3].as_deref(), Some("postgres"));

    let mut md5 = ReplicationConnection::connect(&config(format!(
        "postgres://md5user:md5pw@127.0.0.1:{port}/postgres"
    )))
    .await
    .expect("md5 login");
    md5.simple_query("IDENTIFY_SYSTEM").await.expect("identify");

    let wrong = ReplicationConnection::connect(&config(format!(
        "postgres://relay:nope@127.0.0.1:{port}/postgres"
    )))
    .await;
    let error = wrong.err().expect("wrong password refused");
    assert_eq!(error.sqlstate(), Some("28P01"), "{error}");
    assert!(!error.to_string().contains("nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_level_below_logical_is_a_clear_error() {
    let cluster = TempCluster::start(
        &["wal_level = replica"],
        &["host all,replication all 127.0.0.1/32 trust"],
    );
    let db = support::db::TestDb::new();
    let mut relay_config = RelayConfig::new(&db, "unused");
    relay_config
        .set(
            "postgres",
            "url",
            &toml_str(&format!(
                "postgres://postgres@127.0.0.1:{}/postgres",
                cluster.port
            )),
        )
        .set("source", "mode", "\"replication\"")
        .set("sink", "kind", "\"stdout\"");
    relay_config.migrate();
    let (code, log) = run_to_exit(Relay::start(&relay_config)).await;
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("wal_level is `replica`"), "{log}");
    assert!(
        log.contains("ALTER SYSTEM SET wal_level = logical"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sslmode_require() {
    let cluster = TempCluster::start(
        &[
            "wal_level = logical",
            "ssl = on",
            "ssl_cert_file = '/etc/ssl/certs/ssl-cert-snakeoil.pem'",
            "ssl_key_file = '/etc/ssl/private/ssl-cert-snakeoil.key'",
        ],
        &[
            "hostssl all,replication all 127.0.0.1/32 scram-sha-256",
            "hostnossl all,replication all 127.0.0.1/32 reject",
        ],
    );
    cluster.psql("CREATE ROLE relay LOGIN REPLICATION PASSWORD 's3cret'");
    let url = |mode: &str| {
        format!(
            "postgres://relay:s3cret@127.0.0.1:{}/postgres?sslmode={mode}",
            cluster.port
        )
    };

    let mut replication = ReplicationConnection::connect(&config(url("require")))
        .await
        .expect("replication over TLS");
    replication
        .simple_query("IDENTIFY_SYSTEM")
        .await
        .expect("identify");

    let client = outbox_relay::postgres::connect(&config(url("require")), "tls test", None)
        .await
        .expect("session over TLS");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the session is encrypted");

    let plain = ReplicationConnection::connect(&config(url("disable"))).await;
    assert!(plain.is_err(), "the server rejects plaintext");
}
