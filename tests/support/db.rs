//! A fresh database per test, dropped when the test ends.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use super::{server_env, sh, unique};

/// The server most tests share: the run's private PostgreSQL
/// (`OUTBOX_TEST_PG_URL`, `postgres://postgres@127.0.0.1:PORT`, trust auth
/// for postgres, wal_level=logical), without a database part.
pub fn server() -> String {
    server_env("OUTBOX_TEST_PG_URL")
}

/// A database created for one test.
pub struct TestDb {
    pub name: String,
    pub url: String,
    /// The server's URL without a database, for dropping it.
    server: String,
}

impl TestDb {
    /// A database on the shared server.
    pub fn new() -> Self {
        Self::on(&server())
    }

    /// A database on another server, e.g. a test's own [`super::cluster::TempCluster`].
    pub fn on(server: &str) -> Self {
        let name = unique("outbox_test");
        psql(server, &format!("CREATE DATABASE {name}"));
        TestDb {
            url: format!("{server}/{name}"),
            name,
            server: server.to_owned(),
        }
    }

    /// A new session; retries for a while, so it also serves after a restart.
    pub async fn client(&self) -> Client {
        let mut last = None;
        for _ in 0..100 {
            match tokio_postgres::connect(&self.url, NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    return client;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("connecting to {}: {last:?}", self.url);
    }

    /// The server's major version (13 for 13.23), from `server_version_num`.
    pub fn server_major(&self) -> u32 {
        let num: u32 = self
            .psql("SHOW server_version_num")
            .trim()
            .parse()
            .expect("server_version_num");
        num / 10000
    }

    /// Runs SQL through psql (synchronous; for setup).
    pub fn psql(&self, sql: &str) -> String {
        sh(
            "psql",
            &[
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                &self.url,
                "-c",
                sql,
            ],
        )
    }

    /// Rows of the default outbox table not yet marked sent.
    pub async fn unsent(&self) -> i64 {
        self.count("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            .await
    }

    /// A count query's result; -1 while the database is unreachable.
    pub async fn count(&self, sql: &str) -> i64 {
        match tokio_postgres::connect(&self.url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                match client.query_one(sql, &[]).await {
                    Ok(row) => row.get(0),
                    Err(_) => -1,
                }
            }
            Err(_) => -1,
        }
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Replication slots keep WAL and block DROP DATABASE: end their
        // sessions and drop them first.
        let slots = format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE database = '{0}' AND active_pid IS NOT NULL; \
             SELECT pg_sleep(0.2); \
             SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE database = '{0}'",
            self.name
        );
        for sql in [
            slots,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ] {
            let _ = std::process::Command::new("psql")
                .args(["-X", "-q", &format!("{}/postgres", self.server), "-c", &sql])
                .output();
        }
    }
}

/// Runs SQL as postgres on the shared server's `postgres` database.
pub fn psql_admin(sql: &str) {
    psql(&server(), sql);
}

fn psql(server: &str, sql: &str) {
    sh(
        "psql",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            &format!("{server}/postgres"),
            "-c",
            sql,
        ],
    );
}
