//! A throwaway PostgreSQL cluster on its own port, for what must not be
//! done to the shared server: other authentication methods, a wal_level
//! below logical, server settings, restarts. Built with the binaries of
//! `OUTBOX_TEST_PG_BIN` (default: the newest /usr/lib/postgresql/*/bin;
//! not `OUTBOX_RELAY_PG_BIN`, which the relay would take for a config key);
//! run as the `postgres` OS user when the tests run as root (initdb refuses
//! root), else as the current user.

use std::path::PathBuf;
use std::process::Command;

use super::{free_port, sh};

/// A running temporary cluster; stopped and deleted on drop.
pub struct TempCluster {
    pub port: u16,
    pub(super) dir: PathBuf,
    /// The server binaries it runs from.
    pub(super) bin: PathBuf,
}

/// The directory of PostgreSQL server binaries the clusters run from.
pub fn pg_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("OUTBOX_TEST_PG_BIN") {
        return PathBuf::from(dir);
    }
    let newest = sh(
        "sh",
        &["-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"],
    );
    PathBuf::from(newest.trim())
}

/// The bin directory of PostgreSQL `major` from the npm builds that
/// `scripts/postgres-versions.sh` installs (downloaded on first use, then
/// cached), for a test that needs one version whatever the run's is.
pub fn pg_bin_of_major(major: u32) -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres-versions.sh");
    let out = sh(script, &["install", &major.to_string()]);
    let dir = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{major} ")))
        .unwrap_or_else(|| panic!("no bin dir for PostgreSQL {major} in: {out}"));
    PathBuf::from(dir.trim())
}

pub(super) fn running_as_root() -> bool {
    sh("id", &["-u"]).trim() == "0"
}

/// A command that runs `program` as the cluster's OS user.
fn as_owner(program: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--", program]);
        // runuser keeps the working directory, which postgres may not read.
        command.current_dir("/");
        command
    } else {
        Command::new(program)
    }
}

fn run_as_owner(program: &str, args: &[&str]) -> String {
    super::checked(as_owner(program).args(args), program, args)
}

impl TempCluster {
    /// `settings` go into postgresql.conf; `hba` replaces pg_hba.conf (a
    /// trusted local socket line is always added first, for setup).
    pub fn start(settings: &[&str], hba: &[&str]) -> Self {
        Self::start_from(&pg_bin_dir(), settings, hba)
    }

    /// [`TempCluster::start`] with the server binaries in `bin` (another
    /// PostgreSQL version than the run's).
    pub fn start_from(bin: &std::path::Path, settings: &[&str], hba: &[&str]) -> Self {
        let bin = bin.to_path_buf();
        let tool = |name: &str| bin.join(name).display().to_string();
        let port = free_port();
        let dir = std::env::temp_dir().join(super::unique("outbox_test_cluster"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        if running_as_root() {
            sh("chown", &["postgres:postgres", &dir.display().to_string()]);
        }
        let data = dir.join("data").display().to_string();
        run_as_owner(
            &tool("initdb"),
            &["-D", &data, "-U", "postgres", "--auth=trust", "-N"],
        );
        // password_encryption: SCRAM hashes on every version (13 stored md5
        // by default, which the scram-sha-256 lines of pg_hba.conf refuse).
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n\
             password_encryption = 'scram-sha-256'\n",
            dir.display()
        );
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let append = |file: &str, text: &str| {
            let path = format!("{data}/{file}");
            let mut old = std::fs::read_to_string(&path).unwrap_or_default();
            if file == "pg_hba.conf" {
                old.clear();
            }
            old.push_str(text);
            std::fs::write(&path, old).expect("write config");
        };
        append("postgresql.conf", &conf);
        let mut hba_text = String::from("local all all trust\n");
        for line in hba {
            hba_text.push_str(line);
            hba_text.push('\n');
        }
        append("pg_hba.conf", &hba_text);
        let cluster = TempCluster { port, dir, bin };
        cluster.pg_ctl(&["-w", "-t", "60", "start"]);
        // Which server a failing test ran on (nextest shows this output).
        eprintln!(
            "test cluster: PostgreSQL {} on 127.0.0.1:{port} (from {})",
            cluster.psql("SHOW server_version").trim(),
            cluster.bin.display()
        );
        cluster
    }

    /// A cluster like the shared server, for a test that restarts it or
    /// changes its settings: wal_level=logical, postgres trusted on
    /// 127.0.0.1 (also for replication connections).
    pub fn logical() -> Self {
        Self::logical_from(&pg_bin_dir())
    }

    /// [`TempCluster::logical`] with the server binaries in `bin`.
    pub fn logical_from(bin: &std::path::Path) -> Self {
        Self::start_from(
            bin,
            &[
                "wal_level = logical",
                "max_replication_slots = 20",
                "max_wal_senders = 20",
            ],
            &["host all,replication postgres 127.0.0.1/32 trust"],
        )
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database: what
    /// [`super::db::TestDb::on`] takes (needs the trust line of
    /// [`TempCluster::logical`]).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// `postgresql://postgres@%2FDIR:PORT`: the cluster's socket, whose
    /// trusted `local` line admits the test's own plain sessions whatever
    /// the TCP lines demand (TLS only, certificates).
    pub fn socket_url(&self) -> String {
        let dir = self.dir.display().to_string().replace('/', "%2F");
        format!("postgresql://postgres@{dir}:{}", self.port)
    }

    /// Appends `settings` to postgresql.conf and reloads (a new server
    /// certificate, for one), waiting until the server has read them.
    pub fn reconfigure(&self, settings: &[&str]) {
        let path = self.dir.join("data/postgresql.conf");
        let mut conf = std::fs::read_to_string(&path).expect("postgresql.conf");
        for s in settings {
            conf.push_str(&format!("\n{s}\n"));
        }
        std::fs::write(&path, conf).expect("write postgresql.conf");
        self.pg_ctl(&["reload"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    /// Restarts the server (fast shutdown: sessions are ended), waiting
    /// until it accepts connections again.
    pub fn restart(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "restart"]);
    }

    /// Runs SQL as postgres over the trusted local socket.
    pub fn psql(&self, sql: &str) -> String {
        sh(
            "psql",
            &[
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        )
    }

    /// pg_ctl on this cluster's data directory, logging to its log file
    /// (without `-l` the server would hold our stdout pipe open).
    pub(super) fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let mut all = vec!["-D", &data, "-l", &log];
        all.extend_from_slice(args);
        run_as_owner(&self.bin.join("pg_ctl").display().to_string(), &all);
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = as_owner(&self.bin.join("pg_ctl").display().to_string())
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
