//! A server older than the oldest supported PostgreSQL (13) is refused at
//! once, naming its version and the minimum: `run` exits non-zero (polling
//! and replication, with and without leader election) instead of retrying,
//! and `check` prints a FAIL line. On a PostgreSQL 12 cluster of the
//! test's own (the npm build `scripts/postgres-versions.sh` installs).

mod support;

use support::cluster::{TempCluster, pg_bin_of_major};
use support::relay::{Relay, RelayConfig, check_line, run_to_exit};

const REFUSAL: &str = "the oldest supported is PostgreSQL 13";

fn relay_config(cluster: &TempCluster) -> RelayConfig {
    let mut config = RelayConfig::for_url(&format!("{}/postgres", cluster.url()), "unused");
    config
        .set("sink", "kind", "\"stdout\"")
        .set("log", "level", "\"info\"");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_12_is_refused_with_its_version_and_the_minimum() {
    let cluster = TempCluster::logical_from(&pg_bin_of_major(12));
    let version = cluster.psql("SHOW server_version").trim().to_owned();
    assert!(version.starts_with("12."), "{version}");
    let named = format!("postgres server version {version} is not supported");

    for mode in ["polling", "replication"] {
        for election in [false, true] {
            let mut config = relay_config(&cluster);
            config.set("source", "mode", &format!("\"{mode}\"")).set(
                "leader",
                "enabled",
                &election.to_string(),
            );
            let (code, log) = run_to_exit(Relay::start(&config)).await;
            println!("{mode}, election {election}: exit {code:?}\n{log}");
            assert_eq!(code, Some(1), "{mode}, election {election}:\n{log}");
            assert!(
                log.contains(&named) && log.contains(REFUSAL),
                "{mode}, election {election}:\n{log}"
            );
            assert!(!log.contains("retrying"), "{log}");
        }
    }

    let config = relay_config(&cluster);
    let (ok, text) = config.check();
    println!("check:\n{text}");
    assert!(!ok, "{text}");
    let line = check_line(&text, "postgres");
    assert!(
        line.starts_with("FAIL") && line.contains(&named) && line.contains(REFUSAL),
        "{text}"
    );

    let out = config.command("migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&named), "{stderr}");
}
