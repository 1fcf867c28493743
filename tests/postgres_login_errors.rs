//! A server that refuses the relay names the cause, and is not called "not
//! reachable": a wrong password, a missing database, a missing role (under
//! SCRAM and under trust) and a missing CONNECT privilege, each from
//! `check` and `migrate` (non-zero exit at once) and from `run`'s log (an
//! error, retried with a growing wait, never ready), with and without
//! leader election. On a throwaway SCRAM cluster, never the shared server.

mod support;

use std::time::{Duration, Instant};

use support::cluster::TempCluster;
use support::relay::{Relay, RelayConfig, http_get};

/// One way to be refused, and what the relay must say about it.
struct Case {
    name: &'static str,
    /// user:password@ ... /database, after `postgres://`.
    login: &'static str,
    database: &'static str,
    /// The server's words, SQLSTATE included.
    cause: &'static str,
    /// What `run` says happened.
    summary: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "wrong password",
        login: "app:wrong",
        database: "postgres",
        cause: r#"password authentication failed for user "app" (28P01)"#,
        summary: "postgres refused the login",
    },
    Case {
        name: "missing database",
        login: "app:s3cret",
        database: "orders",
        cause: r#"database "orders" does not exist (3D000)"#,
        summary: "postgres has no such database",
    },
    Case {
        // SCRAM does not tell a missing role from a wrong password.
        name: "missing role (scram)",
        login: "ghost:s3cret",
        database: "postgres",
        cause: r#"password authentication failed for user "ghost" (28P01)"#,
        summary: "postgres refused the login",
    },
    Case {
        name: "missing role (trust)",
        login: "trustghost",
        database: "postgres",
        cause: r#"role "trustghost" does not exist (28000)"#,
        summary: "postgres refused the login",
    },
    Case {
        name: "no connect privilege",
        login: "app:s3cret",
        database: "locked",
        cause: r#"permission denied for database "locked" (42501); detail: User does not have CONNECT privilege."#,
        summary: "postgres denied a privilege the relay needs",
    },
];

fn cluster() -> TempCluster {
    let cluster = TempCluster::start(
        &[],
        &[
            "host all trustghost 127.0.0.1/32 trust",
            "host all all 127.0.0.1/32 scram-sha-256",
        ],
    );
    cluster.psql("CREATE ROLE app LOGIN PASSWORD 's3cret'");
    cluster.psql("CREATE DATABASE locked");
    cluster.psql("REVOKE CONNECT ON DATABASE locked FROM PUBLIC");
    cluster
}

/// A relay config for `url` with the stdout sink.
fn relay_config(url: &str) -> RelayConfig {
    let mut config = RelayConfig::for_url(url, "unused");
    config
        .set("sink", "kind", "\"stdout\"")
        .set("postgres", "connect_timeout", "\"5s\"")
        .set("log", "level", "\"info\"");
    config
}

fn url(cluster: &TempCluster, case: &Case) -> String {
    format!(
        "postgres://{}@127.0.0.1:{}/{}",
        case.login, cluster.port, case.database
    )
}

/// Waits (up to 30 s) for a log line containing every one of `parts`.
async fn log_line(relay: &Relay, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(line) = relay
            .log_text()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?}:\n{}",
            relay.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn check_and_migrate_name_the_cause_and_fail() {
    let cluster = cluster();
    for case in CASES {
        let config = relay_config(&url(&cluster, case));
        for command in ["check", "migrate"] {
            let out = config.command(command);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            println!("{} / {command}:\n{text}", case.name);
            assert!(!out.status.success(), "{}: {command}: {text}", case.name);
            assert!(
                text.contains(case.cause),
                "{}: {command}: {text}",
                case.name
            );
            assert!(
                !text.contains("db error"),
                "{}: {command}: {text}",
                case.name
            );
            assert!(!text.contains("wrong"), "password leaked: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_the_cause_as_an_error_and_keeps_retrying() {
    let cluster = cluster();
    for case in CASES {
        for election in [true, false] {
            let mut config = relay_config(&url(&cluster, case));
            config.set("leader", "enabled", &election.to_string());
            let mut relay = Relay::start(&config);
            let first = log_line(&relay, &[case.summary, "retrying in 1s", case.cause]).await;
            println!("{} (election {election}): {first}", case.name);
            assert!(first.contains("ERROR"), "{first}");
            assert_eq!(
                election,
                first.contains("leader election: "),
                "{}: {first}",
                case.name
            );
            if case.name == "wrong password" {
                // The wait grows: the server's log is not flooded.
                let second = log_line(&relay, &[case.summary, "retrying in 2s"]).await;
                println!("{} (election {election}): {second}", case.name);
            }
            let log = relay.log_text();
            assert!(!log.contains("not reachable"), "{log}");
            assert!(!log.contains("db error"), "{log}");
            assert!(relay.try_wait().is_none(), "run stopped:\n{log}");
            let ready = http_get(relay.port, "/readyz").await.map(|(s, _)| s);
            assert_eq!(ready, Some(503), "{log}");
            let status = relay.sigterm(Duration::from_secs(10));
            assert!(
                status.is_some_and(|s| s.success()),
                "{status:?}\n{}",
                relay.log_text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_still_not_reachable() {
    // A port nothing listens on: connection refused, not a refusal.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let config = relay_config(&format!("postgres://app:s3cret@127.0.0.1:{port}/postgres"));
    let mut relay = Relay::start(&config);
    let line = log_line(&relay, &["postgres not reachable", "Connection refused"]).await;
    println!("unreachable: {line}");
    assert!(line.contains("WARN"), "{line}");
    assert!(!relay.log_text().contains("refused the login"));
    relay.sigterm(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_without_the_attribute_is_a_permission_refusal() {
    let cluster = TempCluster::start(
        &["wal_level = logical"],
        &[
            "host all postgres 127.0.0.1/32 trust",
            "host all,replication all 127.0.0.1/32 scram-sha-256",
        ],
    );
    cluster.psql("CREATE ROLE app LOGIN PASSWORD 's3cret'");
    let admin = relay_config(&format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        cluster.port
    ));
    admin.migrate();
    let mut config = relay_config(&format!(
        "postgres://app:s3cret@127.0.0.1:{}/postgres",
        cluster.port
    ));
    config
        .set("source", "mode", "\"replication\"")
        .set("leader", "enabled", "false");
    let mut relay = Relay::start(&config);
    let line = log_line(
        &relay,
        &[
            "postgres denied a privilege the relay needs",
            "REPLICATION attribute",
        ],
    )
    .await;
    println!("no replication attribute: {line}");
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        relay.try_wait().is_none(),
        "run stopped:\n{}",
        relay.log_text()
    );
    relay.sigterm(Duration::from_secs(10));
}
