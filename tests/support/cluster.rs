//! A throwaway PostgreSQL cluster on its own port, for what must not be
//! done to the shared server: other authentication methods, a wal_level
//! below logical. Built with the machine's initdb, run as `postgres`.

use std::path::PathBuf;
use std::process::Command;

use super::sh;

/// A running temporary cluster; stopped and deleted on drop.
pub struct TempCluster {
    pub port: u16,
    dir: PathBuf,
}

fn bin(name: &str) -> String {
    let version = sh("sh", &["-c", "ls /usr/lib/postgresql | sort -n | tail -1"]);
    format!("/usr/lib/postgresql/{}/bin/{name}", version.trim())
}

fn as_postgres(args: &[&str]) -> String {
    let mut all = vec!["-u", "postgres", "--"];
    all.extend_from_slice(args);
    sh("runuser", &all)
}

impl TempCluster {
    /// `settings` go into postgresql.conf; `hba` replaces pg_hba.conf (a
    /// trusted local socket line is always added first, for setup).
    pub fn start(settings: &[&str], hba: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let dir = std::env::temp_dir().join(super::unique("outbox_test_cluster"));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        sh("chown", &["postgres:postgres", &dir.display().to_string()]);
        let data = dir.join("data").display().to_string();
        as_postgres(&[
            &bin("initdb"),
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-N",
        ]);
        let mut conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
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
        as_postgres(&[
            &bin("pg_ctl"),
            "-D",
            &data,
            "-l",
            &format!("{}/log", dir.display()),
            "-w",
            "start",
        ]);
        TempCluster { port, dir }
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
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &bin("pg_ctl"),
                "-D",
                &data,
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
