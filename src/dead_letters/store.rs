//! Recording a dead letter, from the pipeline, on a session of its own.

use tokio_postgres::Client;

use super::{DeadLetterError, table_name};
use crate::config::Config;
use crate::event::OutboxEvent;
use crate::outbox::{OutboxSchema, quote_ident};

/// One event on its way to the dead-letter table.
#[derive(Debug)]
pub struct DeadLetter<'a> {
    pub event: &'a OutboxEvent,
    /// Short label: `oversized`, `unroutable`, `template`, ...
    pub reason: &'a str,
    /// The broker's or the relay's full message.
    pub error: String,
    pub attempts: u32,
    /// The `sink` label of the sink that refused it.
    pub sink: &'a str,
}

/// Writes dead letters; connects on first use and again after an error.
pub struct DeadLetterStore {
    config: Config,
    client: Option<(Client, String)>,
}

impl DeadLetterStore {
    pub fn new(config: &Config) -> Self {
        Self {
            config: config.clone(),
            client: None,
        }
    }

    /// Records `letter`. An event already dead-lettered and not yet retried
    /// (the relay died before marking it) gets its attempts added instead
    /// of a second row.
    pub async fn put(&mut self, letter: &DeadLetter<'_>) -> Result<(), DeadLetterError> {
        let (client, sql) = match self.client.take() {
            Some(open) if !open.0.is_closed() => open,
            _ => self.open().await?,
        };
        let event = letter.event;
        let headers = (!event.headers.is_empty()).then(|| {
            serde_json::Value::Object(event.headers.iter().cloned().collect()).to_string()
        });
        let created_micros = event.created_at.and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_micros()).ok())
        });
        let attempts = i32::try_from(letter.attempts).unwrap_or(i32::MAX);
        let result = client
            .execute(
                sql.as_str(),
                &[
                    &event.id,
                    &event.aggregate_type,
                    &event.aggregate_id,
                    &event.event_type,
                    &event.payload,
                    &headers,
                    &letter.reason,
                    &letter.error,
                    &attempts,
                    &letter.sink,
                    &created_micros,
                ],
            )
            .await;
        match result {
            Ok(_) => {
                self.client = Some((client, sql));
                Ok(())
            }
            Err(error) => Err(DeadLetterError::Query {
                table: self.table()?,
                error,
            }),
        }
    }

    fn table(&self) -> Result<String, DeadLetterError> {
        table_name(&self.config)
            .map(|t| t.to_string())
            .map_err(DeadLetterError::Config)
    }

    async fn open(&self) -> Result<(Client, String), DeadLetterError> {
        let client = crate::postgres::connect(&self.config.postgres, "dead-letters", None).await?;
        let schema = OutboxSchema::load(&client, &self.config.outbox).await?;
        let table = self.table()?;
        let id = quote_ident(&self.config.outbox.columns.id);
        // The row is read as it is now (still unsent: it is marked only
        // after this), so `retry` can put it back whole, every column kept.
        let sql = format!(
            "INSERT INTO {table} AS d (event_id, aggregate_type, aggregate_id, event_type, \
               payload, headers, reason, error, attempts, sink, event_created_at, row_data) \
             SELECT $1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, \
               to_timestamp($11::int8::float8 / 1e6), \
               (SELECT row_to_json(o) FROM {outbox} AS o WHERE o.{id} = $1::text::{id_type}) \
             ON CONFLICT (event_id) WHERE retried_at IS NULL DO UPDATE \
               SET attempts = d.attempts + EXCLUDED.attempts, reason = EXCLUDED.reason, \
                   error = EXCLUDED.error, failed_at = now()",
            outbox = schema.table,
            id_type = schema.id_type,
        );
        Ok((client, sql))
    }
}
