//! A Kafka-protocol broker of a test's own, for tests that crash the
//! broker, put a TLS terminator in front of it or require a login: the
//! tansu binary of `OUTBOX_TEST_TANSU_BIN` (default: what `scripts/tansu.sh
//! install` builds) on a free port, with its SQLite store in a temporary
//! directory that outlives a crash and is deleted on drop.
//!
//! tansu 0.6 has no TLS listener (`--cert` and `--key` exist but refuse to
//! be given together, and its accept loop never uses a TLS acceptor), so
//! TLS tests put
//! [`super::tls_front::TlsFront`] in front and have tansu advertise the
//! front's address. It does SASL (SCRAM-SHA-256, SCRAM-SHA-512, and PLAIN
//! without checking the password) with `--authentication`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::free_port;

/// A private broker; killed and its store deleted on drop.
pub struct PrivateTansu {
    /// `127.0.0.1:PORT`, where tansu itself listens.
    pub address: String,
    /// `HOST:PORT` it tells clients to connect to (metadata): its own
    /// address, or a front's.
    pub advertised: String,
    /// Whether clients must log in (SASL).
    authentication: AtomicBool,
    dir: tempfile::TempDir,
    /// None while crashed by a [`KafkaOutage`].
    child: Mutex<Option<Child>>,
}

/// A SCRAM user for [`PrivateTansu::with_users`].
pub struct ScramUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: &'a str,
}

fn tansu_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("OUTBOX_TEST_TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
        });
    cache.join("outbox-relay/tools/bin/tansu")
}

impl PrivateTansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Self {
        Self::advertising(None)
    }

    /// Starts a broker that tells clients to connect to `advertised`
    /// (`HOST:PORT`, e.g. a TLS front's) instead of its own address.
    pub fn advertising(advertised: Option<&str>) -> Self {
        let broker = Self::new(advertised);
        broker.launch().unwrap_or_else(|e| panic!("{e}"));
        broker
    }

    /// Starts a broker that requires a SASL login, with `users` created
    /// (tansu creates them only while authentication is off: it starts
    /// without, creates them, and restarts with it on the same store).
    pub fn with_users(advertised: Option<&str>, users: &[ScramUser<'_>]) -> Self {
        let broker = Self::advertising(advertised);
        let bin = tansu_bin().display().to_string();
        let url = format!("tcp://{}", broker.address);
        for user in users {
            let mechanism = match user.mechanism {
                "SCRAM-SHA-256" => "scram256",
                "SCRAM-SHA-512" => "scram512",
                other => panic!("tansu has no SCRAM user kind {other}"),
            };
            super::sh(
                &bin,
                &[
                    "user",
                    "create",
                    "--broker",
                    &url,
                    "--mechanism",
                    mechanism,
                    user.name,
                    user.password,
                ],
            );
        }
        broker.kill();
        broker.authentication.store(true, Ordering::SeqCst);
        broker.launch().unwrap_or_else(|e| panic!("{e}"));
        broker
    }

    fn new(advertised: Option<&str>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("outbox_test_tansu")
            .tempdir()
            .expect("tansu dir");
        let address = format!("127.0.0.1:{}", free_port());
        PrivateTansu {
            advertised: advertised.map_or_else(|| address.clone(), str::to_owned),
            address,
            authentication: AtomicBool::new(false),
            dir,
            child: Mutex::new(None),
        }
    }

    /// Kills the broker with SIGKILL (a crash) until the guard drops, which
    /// starts it again on the same port and store.
    pub fn outage(&self) -> KafkaOutage<'_> {
        self.kill();
        KafkaOutage { broker: self }
    }

    /// Starts the process and waits (up to 10 s) until it listens.
    fn launch(&self) -> Result<(), String> {
        let url = format!("tcp://{}", self.address);
        let advertised = format!("tcp://{}", self.advertised);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .map_err(|e| format!("tansu log: {e}"))?;
        let bin = tansu_bin();
        // tansu reads sqlite://PATH relative to its working directory.
        let mut child = Command::new(&bin)
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &advertised])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .args(
                self.authentication
                    .load(Ordering::SeqCst)
                    .then_some("--authentication"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "starting {} ({e}); `scripts/tansu.sh install` builds it",
                    bin.display()
                )
            })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.address).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "tansu exited ({status}); see {}",
                    self.dir.path().display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("tansu did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        *self.child.lock().expect("tansu lock") = Some(child);
        Ok(())
    }

    fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("tansu lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The broker crashed; started again when dropped, even on panic.
pub struct KafkaOutage<'a> {
    broker: &'a PrivateTansu,
}

impl Drop for KafkaOutage<'_> {
    fn drop(&mut self) {
        // A second panic while unwinding would abort the whole binary.
        if let Err(e) = self.broker.launch()
            && !std::thread::panicking()
        {
            panic!("restarting tansu: {e}");
        }
    }
}
