//! The relay binary as a child process with a generated config file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::db::TestDb;
use super::free_port;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_outbox-relay");

/// A config file: `(section, key, value)` entries, value as TOML text.
pub struct RelayConfig {
    entries: Vec<(String, String, String)>,
    /// Environment variables every process started from this config gets.
    env: Vec<(String, String)>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RelayConfig {
    /// Postgres of `db`, RabbitMQ sink on `exchange` (declared by the relay)
    /// of the run's broker, a free metrics port, fast polling and retries,
    /// debug logs.
    pub fn new(db: &TestDb, exchange: &str) -> Self {
        Self::for_url(&db.url, exchange)
    }

    /// The same for a Postgres URL the test made itself (a login that must
    /// fail, a database that does not exist).
    pub fn for_url(postgres_url: &str, exchange: &str) -> Self {
        let port = free_port();
        let mut config = RelayConfig {
            entries: Vec::new(),
            env: Vec::new(),
            port,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        config
            .set("postgres", "url", &toml_str(postgres_url))
            .set("source.polling", "poll_interval", "\"200ms\"")
            .set("sink.rabbitmq", "url", &toml_str(&super::rabbit::url()))
            .set("sink.rabbitmq", "exchange", &toml_str(exchange))
            .set("sink.rabbitmq", "declare_exchange", "true")
            .set("sink.rabbitmq", "confirm_timeout", "\"5s\"")
            .set("retry", "initial_backoff", "\"50ms\"")
            .set("retry", "max_backoff", "\"1s\"")
            .set("metrics", "listen", &toml_str(&format!("127.0.0.1:{port}")))
            .set("metrics", "backlog_interval", "\"500ms\"")
            .set("log", "level", "\"debug\"");
        config
    }

    /// Reads by logical replication from slot and publication `name`
    /// (created by the relay), `batch_size` events per batch, reporting its
    /// position every second.
    pub fn replication(&mut self, name: &str, batch_size: usize) -> &mut Self {
        let name = toml_str(name);
        self.set("source", "mode", "\"replication\"")
            .set("source.replication", "slot", &name)
            .set("source.replication", "publication", &name)
            .set("source.replication", "batch_size", &batch_size.to_string())
            .set("source.replication", "status_interval", "\"1s\"")
    }

    /// Moves the metrics listener to another free port, so a second relay
    /// can run from this config beside the first.
    #[allow(dead_code)]
    pub fn new_port(&mut self) -> &mut Self {
        self.port = free_port();
        let listen = toml_str(&format!("127.0.0.1:{}", self.port));
        self.set("metrics", "listen", &listen)
    }

    /// Sets (or replaces) `key` in `[section]` ("" for top level).
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> &mut Self {
        self.entries.retain(|(s, k, _)| !(s == section && k == key));
        self.entries
            .push((section.to_owned(), key.to_owned(), value.to_owned()));
        self
    }

    /// Sets an environment variable for the processes started from now on
    /// (the debug build's fault injection, for one).
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs a subcommand with arguments, whatever its outcome.
    pub fn output(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.write())
            .args(args)
            .envs(self.env.iter().cloned())
            .output()
            .expect("running outbox-relay")
    }

    /// Writes the file and returns its path.
    pub fn write(&self) -> PathBuf {
        let mut sections: Vec<&str> = self.entries.iter().map(|(s, _, _)| s.as_str()).collect();
        sections.sort();
        sections.dedup();
        let mut text = String::new();
        for section in sections {
            if !section.is_empty() {
                text.push_str(&format!("[{section}]\n"));
            }
            for (_, key, value) in self.entries.iter().filter(|(s, _, _)| s == section) {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        let path = self.dir.path().join("relay.toml");
        std::fs::write(&path, text).expect("writing config");
        path
    }

    /// Runs a subcommand (`migrate`, `check`) to completion.
    pub fn command(&self, subcommand: &str) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.write())
            .arg(subcommand)
            .output()
            .expect("running outbox-relay")
    }

    /// Runs a subcommand with arguments (`dead-letters list`, `replay
    /// --from-id 3`), asserting success; returns its stdout.
    #[allow(dead_code)]
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(self.write())
            .args(args)
            .output()
            .expect("running outbox-relay");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ outbox-relay {}\n{stdout}", args.join(" "));
        stdout
    }

    /// `migrate`, asserting success.
    pub fn migrate(&self) {
        let out = self.command("migrate");
        assert!(
            out.status.success(),
            "migrate failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("relay-{n}.log"))
    }
}

/// A running relay process.
pub struct Relay {
    child: Option<Child>,
    pub port: u16,
    log: PathBuf,
}

static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Relay {
    /// Starts `run` with stdout discarded (or piped, for the stdout sink).
    pub fn start(config: &RelayConfig) -> Self {
        Self::spawn(config, Stdio::null())
    }

    /// Starts `run` with stdout captured to a file, which is returned.
    pub fn start_capturing_stdout(config: &RelayConfig) -> (Self, PathBuf) {
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = config.dir.path().join(format!("stdout-{n}.jsonl"));
        let file = File::create(&path).expect("stdout file");
        (Self::spawn(config, Stdio::from(file)), path)
    }

    fn spawn(config: &RelayConfig, stdout: Stdio) -> Self {
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = config.log_path(n);
        let stderr = File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(config.write())
            .arg("run")
            .envs(config.env.iter().cloned())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("starting outbox-relay");
        Relay {
            child: Some(child),
            port: config.port,
            log,
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("relay exited early ({status}):\n{}", self.log_text());
            }
            if let Some((200, _)) = http_get(self.port, "/readyz").await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "relay not ready after 30s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The value of one sample line of `/metrics`, e.g.
    /// `outbox_relay_events_published_total{sink="rabbitmq"}`.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        sample_value(&self.metrics().await, sample)
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn sigkill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn sigterm(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory of the running process, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Everything the relay logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.sigkill();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- relay log tail ({}) ---", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The value of one sample line of a `/metrics` text.
pub fn sample_value(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

/// A TOML basic string.
pub fn toml_str(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A minimal HTTP/1.0 GET: status code and body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Appends `text` to a file (for notes kept across restarts).
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    let _ = f.write_all(text.as_bytes());
}

/// Waits (up to 60 s) for a relay that is expected to stop on its own;
/// returns its exit code and log.
pub async fn run_to_exit(mut relay: Relay) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = relay.try_wait() {
                return (status.code(), relay.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "relay kept running:\n{}",
                relay.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("waiter")
}

impl RelayConfig {
    /// `outbox-relay check`'s output (stdout then stderr) and whether it
    /// succeeded.
    pub fn check(&self) -> (bool, String) {
        let out = self.output(&["check"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// The line of `check`'s output about `what` (`kafka`, `kafka tls`).
pub fn check_line<'a>(text: &'a str, what: &str) -> &'a str {
    let ok = format!("ok   {what}: ");
    let fail = format!("FAIL {what}: ");
    text.lines()
        .find(|l| l.starts_with(&ok) || l.starts_with(&fail))
        .unwrap_or_else(|| panic!("no `{what}` line in:\n{text}"))
}
