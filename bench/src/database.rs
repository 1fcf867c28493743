//! A fresh database per measurement, as the tests use: created, migrated by
//! the relay binary, filled, read back for the checks, and dropped with its
//! replication slots afterwards.

use std::process::Command;

use tokio_postgres::{Client, NoTls};

use crate::workload::{AGGREGATE_TYPE, EVENT_TYPE, HEADERS_JSON, aggregate_sql, payload_sql};
use crate::{BoxError, Result};

/// The publication the harness creates (the relay's default name;
/// publications belong to one database, so it cannot collide).
pub const PUBLICATION: &str = "outbox_relay";

/// One benchmark database on the server; dropped (slots first) on `Drop`.
pub struct BenchDb {
    pub name: String,
    /// URL of this database, for the relay and the baselines.
    pub url: String,
    /// The replication slot of this database: slots are cluster-wide, so
    /// it is named after the database, never the relay's default.
    pub slot: String,
    server: String,
    client: Client,
}

/// One row's timing: commit (≈ `created_at`, set by `clock_timestamp()` in
/// the writer's transaction) and ack (`sent_at`, set by the relay's mark),
/// both µs since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub struct RowTimes {
    pub id: u64,
    pub created: i64,
    pub sent: Option<i64>,
}

impl BenchDb {
    /// Creates database `name` on `server` (a URL without database).
    pub async fn create(server: &str, name: &str) -> Result<Self> {
        let admin = connect(&format!("{server}/postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let url = format!("{server}/{name}");
        let client = connect(&url).await?;
        Ok(BenchDb {
            name: name.to_owned(),
            url,
            slot: name.to_owned(),
            server: server.to_owned(),
            client,
        })
    }

    /// A session of its own (writers and baselines run several).
    pub async fn session(&self) -> Result<Client> {
        connect(&self.url).await
    }

    /// The publication and slot the relay streams from, made before rows
    /// are written, so a backlog is streamed and not caught up by polling.
    pub async fn create_slot(&self) -> Result<()> {
        // Two statements, two transactions: a slot cannot be created in
        // a transaction that has written.
        self.client
            .batch_execute(&format!(
                "CREATE PUBLICATION {PUBLICATION} FOR TABLE outbox WITH (publish = 'insert')"
            ))
            .await?;
        self.client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&self.slot],
            )
            .await?;
        Ok(())
    }

    /// Inserts `events` events, `per_txn` per transaction, then vacuums and
    /// analyzes the table, so every run starts from the same state.
    pub async fn preload(&self, events: u64, per_txn: u64) -> Result<()> {
        let per_txn = per_txn.max(1);
        let batches = events.div_ceil(per_txn);
        let sql = format!(
            "DO $$ BEGIN
               FOR b IN 0..{last} LOOP
                 INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers)
                 SELECT '{AGGREGATE_TYPE}', {aggregate}, '{EVENT_TYPE}', {payload}, '{HEADERS_JSON}'
                 FROM generate_series(b::int8 * {per_txn} + 1, least((b::int8 + 1) * {per_txn}, {events})) i;
                 COMMIT;
               END LOOP;
             END $$",
            last = batches.saturating_sub(1),
            aggregate = aggregate_sql("i"),
            payload = payload_sql("i"),
        );
        self.client.batch_execute(&sql).await?;
        self.client.batch_execute("VACUUM ANALYZE outbox").await?;
        Ok(())
    }

    /// The server's current WAL position, as `pg_recvlogical --endpos` takes it.
    pub async fn current_lsn(&self) -> Result<String> {
        let row = self
            .client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Rows not yet marked sent.
    pub async fn unsent(&self) -> Result<i64> {
        let row = self
            .client
            .query_one("SELECT count(*) FROM outbox WHERE sent_at IS NULL", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Every event id in the outbox, ascending.
    pub async fn written_ids(&self) -> Result<Vec<u64>> {
        let rows = self
            .client
            .query("SELECT id FROM outbox ORDER BY id", &[])
            .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                u64::try_from(id).map_err(BoxError::from)
            })
            .collect()
    }

    /// Commit and ack times of every row, ascending by id.
    pub async fn row_times(&self) -> Result<Vec<RowTimes>> {
        let rows = self
            .client
            .query(
                "SELECT id, (extract(epoch FROM created_at) * 1000000)::int8, \
                        (extract(epoch FROM sent_at) * 1000000)::int8 \
                 FROM outbox ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                Ok(RowTimes {
                    id: u64::try_from(id)?,
                    created: row.try_get(1)?,
                    sent: row.try_get(2)?,
                })
            })
            .collect()
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        // Slots keep WAL and block DROP DATABASE: end their sessions and
        // drop them first (DROP DATABASE must run on its own).
        let slots = format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE database = '{0}' AND active_pid IS NOT NULL; \
             SELECT pg_sleep(0.2); \
             SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE database = '{0}'",
            self.name
        );
        let admin = format!("{}/postgres", self.server);
        for sql in [
            slots,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ] {
            let _ = Command::new("psql")
                .args(["-X", "-q", "-At", &admin, "-c", &sql])
                .output();
        }
    }
}

/// A session to `url`, its connection driven by a task.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}
