//! What the results were measured on: the machine, the service versions
//! and the relay's commit, so tables from different runs can be told apart.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::database::connect;

/// The machine and services of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub postgres: String,
    pub rabbitmq: String,
    pub tansu: String,
}

impl Machine {
    /// Looks everything up; what cannot be found is "unknown".
    pub async fn detect(postgres_server: &str) -> Self {
        let postgres = match connect(&format!("{postgres_server}/postgres")).await {
            Ok(client) => match client.query_one("SHOW server_version", &[]).await {
                Ok(row) => row.try_get::<_, String>(0).unwrap_or_default(),
                Err(_) => String::new(),
            },
            Err(_) => String::new(),
        };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned());
        let tansu_bin = std::env::var("HOME")
            .map(|home| format!("{home}/.cache/outbox-relay/tools/bin/tansu"))
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: known(cpu),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: known(
                std::fs::read_to_string("/proc/sys/kernel/osrelease")
                    .ok()
                    .map(|s| s.trim().to_owned()),
            ),
            postgres: known(Some(postgres).filter(|v| !v.is_empty())),
            rabbitmq: known(
                output("timeout", &["10", "rabbitmqctl", "version"]).or_else(|| {
                    output("dpkg-query", &["-W", "-f", "${Version}", "rabbitmq-server"])
                }),
            ),
            tansu: known(
                output(&tansu_bin, &["--version"])
                    .map(|v| v.trim_start_matches("tansu ").to_owned()),
            ),
        }
    }

    /// One line for the markdown header.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {} GiB, Linux {}; PostgreSQL {}, RabbitMQ {}, tansu {}",
            self.cores,
            self.cpu,
            self.memory_gib,
            self.kernel,
            self.postgres,
            self.rabbitmq,
            self.tansu
        )
    }
}

/// The short commit of the tree at `dir`, with `-dirty` when it has
/// uncommitted changes.
pub fn commit(dir: &Path) -> String {
    let dir = dir.to_string_lossy();
    let hash = output("git", &["-C", &dir, "rev-parse", "--short", "HEAD"]);
    let dirty = output(
        "git",
        &["-C", &dir, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    let mut commit = known(hash);
    if dirty {
        commit.push_str("-dirty");
    }
    commit
}

/// The trimmed stdout of a command that succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn known(value: Option<String>) -> String {
    value.unwrap_or_else(|| "unknown".into())
}
