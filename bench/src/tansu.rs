//! A private Kafka-protocol broker per Kafka measurement: the tansu binary
//! of `scripts/tansu.sh`, on a free port with a fresh SQLite store that is
//! thrown away afterwards. tansu's store slows down as it grows, so a fresh
//! one gives the baseline and the relay the same broker, and the shared
//! broker the test suite uses never fills up with benchmark records.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// A running private broker; killed and its store deleted on drop.
pub struct PrivateTansu {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub address: String,
}

impl PrivateTansu {
    /// The tansu binary `scripts/tansu.sh install` builds.
    pub fn default_binary() -> PathBuf {
        let cache = std::env::var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
            });
        cache.join("outbox-relay/tools/bin/tansu")
    }

    /// Starts `bin` with a store in a new directory under `work`, and waits
    /// until it accepts connections.
    pub fn start(bin: &Path, work: &Path, name: &str) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let address = format!("127.0.0.1:{port}");
        let dir = work.join(format!("{name}-tansu"));
        std::fs::create_dir_all(&dir)?;
        let url = format!("tcp://{address}");
        // tansu reads sqlite://PATH relative to its working directory.
        let child = Command::new(bin)
            .current_dir(&dir)
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("tansu.log"))?)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let mut broker = PrivateTansu {
            child,
            dir,
            address,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&broker.address).is_err() {
            if let Some(status) = broker.child.try_wait()? {
                return Err(format!("tansu exited ({status})").into());
            }
            if Instant::now() > deadline {
                return Err("tansu did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }
}

impl Drop for PrivateTansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
