//! A Kafka-protocol broker of a test's own, for tests that crash the
//! broker: the tansu binary of `OUTBOX_TEST_TANSU_BIN` (default: what
//! `scripts/tansu.sh install` builds) on a free port, with its SQLite store
//! in a temporary directory that outlives a crash and is deleted on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::free_port;

/// A private broker; killed and its store deleted on drop.
pub struct PrivateTansu {
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub address: String,
    dir: tempfile::TempDir,
    /// None while crashed by a [`KafkaOutage`].
    child: Mutex<Option<Child>>,
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
        let dir = tempfile::Builder::new()
            .prefix("outbox_test_tansu")
            .tempdir()
            .expect("tansu dir");
        let broker = PrivateTansu {
            address: format!("127.0.0.1:{}", free_port()),
            dir,
            child: Mutex::new(None),
        };
        broker.launch().unwrap_or_else(|e| panic!("{e}"));
        broker
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
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
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
