//! Helpers shared by the integration tests: a fresh database per test, the
//! relay as a real child process, a RabbitMQ queue to read what it published,
//! concurrent writers, the checker that counts what arrived, the relay's
//! spans caught in memory, and a stand-in OTLP collector.
#![allow(dead_code)]

pub mod checker;
pub mod cluster;
pub mod collector;
pub mod db;
pub mod exposition;
pub mod kafka;
pub mod rabbit;
pub mod relay;
pub mod scenarios;
pub mod setup;
pub mod spans;
pub mod writers;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `check` every 100 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a shell command, panicking with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Restarts the machine's PostgreSQL cluster (tests of reconnection).
pub fn restart_postgres() {
    let version = sh("sh", &["-c", "ls /etc/postgresql | sort -n | tail -1"]);
    sh(
        "pg_ctlcluster",
        &[
            "--skip-systemctl-redirect",
            version.trim(),
            "main",
            "restart",
        ],
    );
}
