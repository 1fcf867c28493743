//! The relay under test: the release binary, run as a child process with a
//! generated config file, watched through its `/metrics` endpoint and
//! `/proc`, and stopped with SIGTERM.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Result;
use crate::usage::Usage;

/// Which source the relay reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Polling,
    Replication,
}

/// Which sink the relay writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Stdout,
    Rabbitmq,
    Kafka,
}

impl Mode {
    /// The `source.mode` value.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Polling => "polling",
            Mode::Replication => "replication",
        }
    }
}

impl SinkKind {
    /// The `sink.kind` value.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::Rabbitmq => "rabbitmq",
            SinkKind::Kafka => "kafka",
        }
    }
}

/// What one relay run is configured with.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    pub database_url: String,
    /// `source.replication.slot`.
    pub slot: String,
    pub mode: Mode,
    pub sink: SinkKind,
    pub batch_size: usize,
    /// RabbitMQ exchange or Kafka topic of this run.
    pub destination: String,
    pub amqp_url: String,
    pub kafka_brokers: String,
}

impl RelaySettings {
    /// The TOML config file's text, listening for metrics on `port`.
    fn toml(&self, port: u16) -> String {
        let q = |s: &str| toml_string(s);
        format!(
            "shutdown_grace = \"5s\"\n\
             [postgres]\nurl = {url}\n\
             [source]\nmode = {mode}\n\
             [source.polling]\nbatch_size = {batch}\n\
             [source.replication]\nbatch_size = {batch}\nslot = {slot}\n\
             [sink]\nkind = {sink}\n\
             [sink.rabbitmq]\nurl = {amqp}\nexchange = {dest}\n\
             [sink.kafka]\nbrokers = {brokers}\ntopic = {dest}\n\
             [metrics]\nlisten = {listen}\n\
             [log]\nlevel = \"warn\"\n",
            url = q(&self.database_url),
            mode = q(self.mode.name()),
            batch = self.batch_size,
            slot = q(&self.slot),
            sink = q(self.sink.name()),
            amqp = q(&self.amqp_url),
            dest = q(&self.destination),
            brokers = q(&self.kafka_brokers),
            listen = q(&format!("127.0.0.1:{port}")),
        )
    }
}

/// A running relay.
pub struct RelayProcess {
    child: Child,
    port: u16,
    /// When the process was spawned.
    pub started: Instant,
    log: PathBuf,
}

impl RelayProcess {
    /// Writes the config into `dir` and starts `bin run`; the stdout sink's
    /// output is piped (see [`RelayProcess::take_stdout`]).
    pub fn start(bin: &Path, settings: &RelaySettings, dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let config = dir.join("relay.toml");
        std::fs::write(&config, settings.toml(port))?;
        let log = dir.join("relay.log");
        let stdout = if settings.sink == SinkKind::Stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(File::create(&log)?)
            .spawn()?;
        Ok(RelayProcess {
            child,
            port,
            started: Instant::now(),
            log,
        })
    }

    /// The pipe carrying the stdout sink's lines.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the relay's log if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(format!("the relay exited ({status}): {}", self.log_tail()).into());
        }
        Ok(())
    }

    /// Waits until `/readyz` answers 200 (leader, connected both ways).
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            if let Ok(reply) = http_get(self.port, "/readyz").await
                && reply
                    .lines()
                    .next()
                    .is_some_and(|status| status.contains(" 200"))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the relay was not ready within {timeout:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `outbox_relay_events_acknowledged_total`: events confirmed by the
    /// broker and marked.
    pub async fn acknowledged(&self) -> Result<u64> {
        let body = http_get(self.port, "/metrics").await?;
        let value = body
            .lines()
            .find_map(|line| line.strip_prefix("outbox_relay_events_acknowledged_total "))
            .ok_or("no outbox_relay_events_acknowledged_total in /metrics")?;
        Ok(value.trim().parse::<f64>()? as u64)
    }

    /// Waits until at least `count` events are acknowledged; returns when
    /// that was seen. Polls every 10 ms; gives up when the count has not
    /// moved for `stall` (a broker gone, say: the relay would retry forever).
    pub async fn wait_acknowledged(&mut self, count: u64, stall: Duration) -> Result<Instant> {
        let mut last = 0;
        let mut moved = Instant::now();
        loop {
            self.check_alive()?;
            // 0 until the metrics listener is up.
            let acknowledged = self.acknowledged().await.unwrap_or(0);
            if acknowledged >= count {
                return Ok(Instant::now());
            }
            if acknowledged != last {
                last = acknowledged;
                moved = Instant::now();
            } else if moved.elapsed() > stall {
                return Err(format!(
                    "stalled at {acknowledged} of {count} events acknowledged for {stall:?}; {}",
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Peak RSS and CPU time so far, read from `/proc`.
    pub fn usage(&self) -> Result<Usage> {
        Usage::of(self.pid())
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 15 s).
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Err("the relay ignored SIGTERM for 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The last lines the relay logged.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        // After an error: never leave a relay running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `bin migrate` against `database_url`.
pub fn migrate(bin: &Path, database_url: &str, dir: &Path) -> Result<()> {
    let config = dir.join("migrate.toml");
    std::fs::write(
        &config,
        format!("[postgres]\nurl = {}\n", toml_string(database_url)),
    )?;
    let out = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "migrate failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

fn toml_string(s: &str) -> String {
    // A JSON string is a valid TOML basic string.
    serde_json::Value::String(s.to_owned()).to_string()
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A minimal HTTP/1.0 GET on 127.0.0.1: status line, headers and body.
async fn http_get(port: u16, path: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    Ok(reply)
}
