//! A primary and a streaming physical standby, two private clusters on
//! their own ports, for failover tests: the standby is a cold copy of the
//! primary's data directory (no pg_basebackup: the npm builds of other
//! majors have none, and Debian's 15 cannot back up 16+), replicating
//! synchronously so that every commit a writer saw acknowledged is on it.
//! With failover slots (17+) the standby also keeps synchronised copies
//! of the primary's failover slots and the primary sends logical changes
//! only once the standby has them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cluster::{TempCluster, pg_bin_dir, running_as_root};
use super::{free_port, sh, unique};

/// The physical slot the standby streams from.
const STANDBY_SLOT: &str = "standby_slot";

/// The server binaries of PostgreSQL `major`: `OUTBOX_TEST_PG_BIN_<major>`,
/// else the run's own binaries if they are that major, else the npm build
/// `scripts/postgres-versions.sh` installs (on first use).
pub fn pg_bin_of(major: u32) -> PathBuf {
    if let Ok(dir) = std::env::var(format!("OUTBOX_TEST_PG_BIN_{major}")) {
        return PathBuf::from(dir);
    }
    let default = pg_bin_dir();
    if server_major(&default) == Some(major) {
        return default;
    }
    super::cluster::pg_bin_of_major(major)
}

/// The major version of the `postgres` in `bin`.
fn server_major(bin: &Path) -> Option<u32> {
    let output = std::process::Command::new(bin.join("postgres"))
        .arg("-V")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(2)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// A primary with one synchronous streaming standby.
pub struct Pair {
    pub primary: TempCluster,
    pub standby: TempCluster,
    pub major: u32,
}

impl Pair {
    /// Starts both from the binaries of `major`; from 17 on, with
    /// `sync_replication_slots` on the standby and
    /// `synchronized_standby_slots` on the primary.
    pub fn start(major: u32) -> Pair {
        let bin = pg_bin_of(major);
        let failover_slots = major >= 17;
        let mut settings = vec![
            "wal_level = logical",
            "max_replication_slots = 20",
            "max_wal_senders = 20",
            "hot_standby = on",
            "synchronous_standby_names = 'standby'",
            "synchronous_commit = on",
            "wal_keep_size = '512MB'",
        ];
        let waits_for = format!("synchronized_standby_slots = '{STANDBY_SLOT}'");
        if failover_slots {
            settings.push(&waits_for);
        }
        let hba = ["host all,replication postgres 127.0.0.1/32 trust"];
        let primary = TempCluster::start_from(&bin, &settings, &hba);
        primary.psql(&format!(
            "SELECT pg_create_physical_replication_slot('{STANDBY_SLOT}', true)"
        ));
        primary.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);

        let port = free_port();
        let dir = std::env::temp_dir().join(unique("outbox_test_standby"));
        std::fs::create_dir_all(&dir).expect("standby dir");
        let data = dir.join("data");
        sh(
            "cp",
            &[
                "-a",
                &primary.dir.join("data").display().to_string(),
                &data.display().to_string(),
            ],
        );
        // The copy's own physical slot would hold WAL on the promoted server.
        let _ = std::fs::remove_dir_all(data.join("pg_replslot").join(STANDBY_SLOT));
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str(&format!(
            "\nport = {port}\nunix_socket_directories = '{}'\n\
             synchronous_standby_names = ''\n\
             primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name=standby dbname=postgres'\n\
             primary_slot_name = '{STANDBY_SLOT}'\nhot_standby_feedback = on\n",
            dir.display(),
            primary.port
        ));
        if failover_slots {
            // After a promotion the new primary has no standby to wait for.
            conf.push_str("synchronized_standby_slots = ''\nsync_replication_slots = on\n");
        }
        std::fs::write(data.join("postgresql.conf"), conf).expect("write conf");
        std::fs::write(data.join("standby.signal"), "").expect("standby.signal");
        if running_as_root() {
            sh(
                "chown",
                &["-R", "postgres:postgres", &dir.display().to_string()],
            );
        }
        let standby = TempCluster::adopt(port, dir, &bin);
        primary.pg_ctl(&["-w", "-t", "60", "start"]);
        standby.pg_ctl(&["-w", "-t", "60", "start"]);
        let pair = Pair {
            primary,
            standby,
            major,
        };
        pair.wait_streaming();
        pair
    }

    /// `postgres://postgres@127.0.0.1:P,127.0.0.1:S/<db>?target_session_attrs=read-write`:
    /// the multi-host URL writers and the relay use, so both find whichever
    /// is primary.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
            self.primary.port, self.standby.port
        )
    }

    /// Waits until the standby streams synchronously from the primary.
    fn wait_streaming(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.primary.psql(
                "SELECT state || '/' || sync_state FROM pg_stat_replication \
                 WHERE application_name = 'standby'",
            );
            if state.trim() == "streaming/sync" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not stream from the primary within 60 s (state {state:?})"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the standby has a synchronised copy of `slot` (17+).
    pub fn wait_slot_synced(&self, slot: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let synced = self.standby.psql(&format!(
                "SELECT synced AND NOT temporary FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ));
            if synced.trim() == "t" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby has no synchronised copy of `{slot}` after {timeout:?} ({synced:?})"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// SIGKILL to the primary's postmaster and every process it started,
    /// as a crashed host would leave it. It is not started again (that
    /// would be a second primary).
    pub fn kill_primary(&self) {
        self.primary.kill();
    }

    /// A clean switchover: the primary shuts down (fast), which sends the
    /// standby all WAL first.
    pub fn stop_primary(&self) {
        self.primary
            .pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
    }

    /// Commits stop waiting for the standby (asynchronous replication), so
    /// the primary goes on alone while the standby is stopped.
    pub fn make_async(&self) {
        self.primary
            .psql("ALTER SYSTEM SET synchronous_standby_names = ''");
        self.primary.psql("SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Stops the standby (fast): what the primary writes meanwhile never
    /// reaches it.
    pub fn stop_standby(&self) {
        self.standby
            .pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
    }

    /// Starts the stopped standby again (its primary may be gone).
    pub fn start_standby(&self) {
        self.standby.pg_ctl(&["-w", "-t", "60", "start"]);
    }

    /// Promotes the standby, waiting until it accepts writes.
    pub fn promote(&self) {
        self.standby.pg_ctl(&["-w", "-t", "60", "promote"]);
    }
}

impl TempCluster {
    /// A cluster whose data directory `dir/data` is already made (a copy).
    pub(super) fn adopt(port: u16, dir: PathBuf, bin: &Path) -> Self {
        TempCluster {
            port,
            dir,
            bin: bin.to_path_buf(),
        }
    }

    /// SIGKILL to the postmaster and its children.
    pub fn kill(&self) {
        let pid_file = self.dir.join("data/postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            return;
        };
        let Some(pid) = text.lines().next().map(str::trim) else {
            return;
        };
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", pid])
            .status();
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
        // Gone once its port no longer answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
