//! Helpers shared by the integration tests: a fresh database per test, the
//! relay as a real child process, a RabbitMQ queue to read what it published,
//! concurrent writers, the checker that counts what arrived, the relay's
//! spans caught in memory, a stand-in OTLP collector, and a TLS front for
//! a broker without TLS.
//!
//! The servers are private to the run: `scripts/servers.sh run -- ...`
//! starts them and passes their addresses in `OUTBOX_TEST_*` variables; a
//! test that restarts or stops a server starts one of its own
//! ([`cluster::TempCluster`], [`rabbit_node::RabbitNode`],
//! [`tansu::PrivateTansu`]).
#![allow(dead_code)]

pub mod certs;
pub mod checker;
pub mod cluster;
pub mod collector;
pub mod db;
pub mod exposition;
pub mod kafka;
pub mod rabbit;
pub mod rabbit_node;
pub mod relay;
pub mod scenarios;
pub mod setup;
pub mod spans;
pub mod standby;
pub mod tansu;
pub mod tls_front;
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
    checked(
        std::process::Command::new(program).args(args),
        program,
        args,
    )
}

/// Runs `command` (`program args`, already set up), panicking with its
/// output if it fails; its stdout.
pub fn checked(command: &mut std::process::Command, program: &str, args: &[&str]) -> String {
    let out = command
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

/// An environment variable `scripts/servers.sh` sets; panics naming it and
/// the way to run the tests when it is missing.
pub fn server_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the tests use private servers; run them as \
             `scripts/servers.sh run --kafka -- cargo nextest run` (or any command after --)"
        )
    })
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Sends SIGTERM to `pid` (the processes of private servers).
pub fn sigterm(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .output();
}
