//! Events the broker can never take, moved aside so they do not block the
//! events behind them, and never dropped: each is recorded in a table (made
//! by `migrate`) with its reason, attempt count, time and the outbox row as
//! it was, from which `dead-letters retry` puts it back in the stream.

mod list;
mod retry;
mod store;

pub use list::{ListFilter, list};
pub use retry::{RetryOutcome, RetryTarget, retry};
pub use store::{DeadLetter, DeadLetterStore};

use crate::config::Config;
use crate::outbox::{SchemaError, TableName};
use crate::postgres::ConnectError;

/// The dead-letter table: configured, or `<outbox>_dead_letters` beside the
/// outbox.
pub fn table_name(config: &Config) -> Result<TableName, String> {
    if !config.dead_letters.table.is_empty() {
        return TableName::parse(&config.dead_letters.table);
    }
    let outbox = TableName::parse(&config.outbox.table)?;
    Ok(TableName {
        schema: outbox.schema,
        name: format!("{}_dead_letters", outbox.name),
    })
}

/// Why recording or reading dead letters failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("connecting: {0}")]
    Connect(#[from] ConnectError),
    #[error("outbox table: {0}")]
    Schema(#[from] SchemaError),
    #[error("{0}")]
    Config(String),
    /// A command-line argument that cannot mean anything (exit status 2).
    #[error("{0}")]
    Usage(String),
    #[error("dead-letter table {table}: {}{}", crate::postgres::describe(.error), hint(.error))]
    Query {
        table: String,
        #[source]
        error: tokio_postgres::Error,
    },
}

impl DeadLetterError {
    /// What the pipeline does about it; see [`crate::classify`].
    pub fn disposition(&self) -> crate::classify::Disposition {
        use crate::classify::{Disposition, postgres};
        match self {
            DeadLetterError::Connect(_) => Disposition::Retry,
            DeadLetterError::Schema(SchemaError::Query(e)) => postgres::classify(e),
            DeadLetterError::Schema(_) | DeadLetterError::Config(_) | DeadLetterError::Usage(_) => {
                Disposition::Stop
            }
            DeadLetterError::Query { error, .. } => postgres::classify(error),
        }
    }
}

impl DeadLetterError {
    /// Whether the command line was wrong, rather than the database.
    pub fn is_usage(&self) -> bool {
        matches!(self, DeadLetterError::Usage(_))
    }
}

fn hint(error: &tokio_postgres::Error) -> &'static str {
    if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
        " (run `outbox-relay migrate` to create it)"
    } else {
        ""
    }
}
