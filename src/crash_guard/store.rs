//! The crash guard's record in the database: one row per outbox, in
//! `<outbox schema>.outbox_relay_crash_guard`, created by `migrate`, or
//! by the relay when missing and it may (like `outbox_relay_slots`).

use tokio_postgres::Client;

use crate::config::Config;
use crate::outbox::{TableName, quote_ident};
use crate::postgres::ConnectError;

/// What one start of the relay wrote before publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The event the start was about to publish (the first of its batch).
    pub event_id: String,
    /// Whether it was about to publish that event alone.
    pub alone: bool,
    /// Consecutive starts that recorded this same event (alone, if `alone`).
    pub starts: u32,
}

/// Why reading or writing the record failed; the guard then stands aside.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("connecting: {0}")]
    Connect(#[from] ConnectError),
    #[error("{table}: {}", crate::postgres::describe(.error))]
    Query {
        table: String,
        #[source]
        error: tokio_postgres::Error,
    },
    #[error("outbox.table: {0}")]
    Name(String),
}

/// The record of one outbox, on a session opened when needed.
pub struct Store {
    config: Config,
    /// The outbox as SQL, the record's key.
    outbox: String,
    table: String,
    /// This start's mark on the rows it writes, so a clean exit deletes
    /// its own record and never a newer leader's.
    owner: String,
    client: Option<Client>,
}

impl Store {
    pub fn new(config: &Config) -> Result<Self, StoreError> {
        let outbox = TableName::parse(&config.outbox.table).map_err(StoreError::Name)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Store {
            config: config.clone(),
            table: table_name(&outbox),
            outbox: outbox.to_string(),
            owner: format!("{}-{nanos}", std::process::id()),
            client: None,
        })
    }

    /// The record the previous start left, if any.
    pub async fn read(&mut self) -> Result<Option<Record>, StoreError> {
        let sql = format!(
            "SELECT event_id, alone, starts FROM {} WHERE outbox = $1",
            self.table
        );
        let outbox = self.outbox.clone();
        let rows = self.query(&sql, &[&outbox]).await?;
        Ok(rows.first().map(|row| Record {
            event_id: row.get(0),
            alone: row.get(1),
            starts: u32::try_from(row.get::<_, i32>(2)).unwrap_or(0),
        }))
    }

    /// Replaces the outbox's record with `record`, marked as this start's.
    pub async fn write(&mut self, record: &Record) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} AS g (outbox, event_id, alone, starts, owner) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (outbox) DO UPDATE SET event_id = EXCLUDED.event_id, \
               alone = EXCLUDED.alone, starts = EXCLUDED.starts, owner = EXCLUDED.owner, \
               updated_at = now()",
            self.table
        );
        let starts = i32::try_from(record.starts).unwrap_or(i32::MAX);
        let (outbox, owner) = (self.outbox.clone(), self.owner.clone());
        self.query(
            &sql,
            &[&outbox, &record.event_id, &record.alone, &starts, &owner],
        )
        .await
        .map(drop)
    }

    /// Deletes the record if this start wrote it last: a clean exit.
    pub async fn clear(&mut self) -> Result<(), StoreError> {
        let sql = format!(
            "DELETE FROM {} WHERE outbox = $1 AND owner = $2",
            self.table
        );
        let (outbox, owner) = (self.outbox.clone(), self.owner.clone());
        self.query(&sql, &[&outbox, &owner]).await.map(drop)
    }

    /// Closes the session; the next query opens another.
    pub fn close(&mut self) {
        self.client = None;
    }

    async fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => self.open().await?,
        };
        match client.query(sql, params).await {
            Ok(rows) => {
                self.client = Some(client);
                Ok(rows)
            }
            Err(error) => Err(StoreError::Query {
                table: self.table.clone(),
                error,
            }),
        }
    }

    async fn open(&self) -> Result<Client, StoreError> {
        let client = crate::postgres::connect(&self.config.postgres, "crash guard", None).await?;
        ensure_table(&client, &self.table)
            .await
            .map_err(|error| StoreError::Query {
                table: self.table.clone(),
                error,
            })?;
        Ok(client)
    }
}

/// The record's table for the outbox `outbox`, as SQL.
pub fn table_name(outbox: &TableName) -> String {
    format!(
        "{}.outbox_relay_crash_guard",
        quote_ident(outbox.schema_or_public())
    )
}

/// Creates the record's table `table` unless it exists (`migrate` creates
/// it for a relay role that may not create tables in the schema: even
/// `CREATE TABLE IF NOT EXISTS` needs CREATE on it).
pub async fn ensure_table(
    client: &impl tokio_postgres::GenericClient,
    table: &str,
) -> Result<(), tokio_postgres::Error> {
    if crate::postgres::relation_exists(client, table).await? {
        return Ok(());
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (outbox text PRIMARY KEY, \
             event_id text NOT NULL, alone boolean NOT NULL, starts integer NOT NULL, \
             owner text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
}
