//! What the outbox table really looks like, read from the catalog, and whether
//! the configured column mapping fits it.

use tokio_postgres::Client;

use super::TableName;
use crate::config::{ColumnsConfig, MarkMode, OutboxConfig};
use crate::event::PayloadKind;

/// Why the outbox table cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("reading the catalog: {}", crate::postgres::describe(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("table {0} does not exist (run `outbox-relay migrate`, or set outbox.table)")]
    TableMissing(String),
    #[error("table {table} does not match the configuration: {}", .problems.join("; "))]
    Mismatch {
        table: String,
        problems: Vec<String>,
    },
}

/// The outbox table as found, with the facts the SQL depends on.
#[derive(Debug, Clone)]
pub struct OutboxSchema {
    pub table: TableName,
    /// Type of the id column as SQL (`bigint`, `uuid`, ...), to cast ids back.
    pub id_type: String,
    pub payload_kind: PayloadKind,
    /// Every column of the table with its type, for `check` to print.
    pub columns: Vec<(String, String)>,
}

impl OutboxSchema {
    /// Looks the table up and checks every configured column against it.
    pub async fn load(client: &Client, config: &OutboxConfig) -> Result<Self, SchemaError> {
        let table = TableName::parse(&config.table)
            .map_err(|e| SchemaError::TableMissing(format!("{} ({e})", config.table)))?;
        let rows = client
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, NULL) \
                 FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
                 ORDER BY a.attnum",
                &[&table.to_string()],
            )
            .await?;
        if rows.is_empty() {
            return Err(SchemaError::TableMissing(table.to_string()));
        }
        let columns: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let type_of = |name: &str| {
            columns
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.as_str())
        };

        let c = &config.columns;
        let mut problems = Vec::new();
        let mut require = |key: &str, name: &str| -> Option<String> {
            let found = type_of(name).map(str::to_owned);
            if found.is_none() {
                problems.push(format!(
                    "column \"{name}\" (outbox.columns.{key}) is missing"
                ));
            }
            found
        };
        let id_type = require("id", &c.id);
        require("aggregate_type", &c.aggregate_type);
        require("aggregate_id", &c.aggregate_id);
        require("event_type", &c.event_type);
        let payload_type = require("payload", &c.payload);
        let headers_type = ColumnsConfig::optional(&c.headers).and_then(|n| require("headers", n));
        let created_type =
            ColumnsConfig::optional(&c.created_at).and_then(|n| require("created_at", n));
        let sent_type = ColumnsConfig::optional(&c.sent_at).and_then(|n| require("sent_at", n));
        if !config.order_by.is_empty() {
            require("order_by", &config.order_by);
        }

        let payload_kind = match payload_type.as_deref() {
            Some("json" | "jsonb") => Some(PayloadKind::Json),
            Some("text" | "character varying") => Some(PayloadKind::Text),
            Some("bytea") => Some(PayloadKind::Binary),
            Some(other) => {
                problems.push(format!(
                    "payload column \"{}\" is {other}; it must be jsonb, json, text or bytea",
                    c.payload
                ));
                None
            }
            None => None,
        };
        if let Some(t) = headers_type.as_deref()
            && !matches!(t, "json" | "jsonb")
        {
            problems.push(format!(
                "headers column \"{}\" is {t}; it must be jsonb or json (or set outbox.columns.headers = \"\")",
                c.headers
            ));
        }
        if let Some(t) = created_type.as_deref()
            && !t.starts_with("timestamp")
            && t != "date"
        {
            problems.push(format!(
                "column \"{}\" (outbox.columns.created_at) is {t}; it must be a timestamp or a date",
                c.created_at
            ));
        }
        if let Some(t) = sent_type.as_deref()
            && !t.starts_with("timestamp")
        {
            problems.push(format!(
                "column \"{}\" (outbox.columns.sent_at) is {t}; it must be a timestamp",
                c.sent_at
            ));
        }
        if config.mark == MarkMode::Update && c.sent_at.is_empty() {
            problems.push("outbox.mark = \"update\" needs outbox.columns.sent_at".into());
        }

        match (id_type, payload_kind) {
            (Some(id_type), Some(payload_kind)) if problems.is_empty() => Ok(OutboxSchema {
                table,
                id_type,
                payload_kind,
                columns,
            }),
            _ => Err(SchemaError::Mismatch {
                table: table.to_string(),
                problems,
            }),
        }
    }
}
