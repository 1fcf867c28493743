//! The outbox table: its name, its columns as found in the database, and the
//! SQL the relay runs against it. Shared by the polling source, the backlog
//! gauges, `migrate` and `check`.

mod claim;
mod headers;
mod mark;
mod name;
pub mod requeue;
mod schema;
mod sql;

pub use headers::parse_headers;
pub use mark::mark_when_visible;
pub use name::{TableName, quote_ident, quote_literal};
pub use schema::{OutboxSchema, SchemaError};
pub use sql::{OutboxSql, from_unix_micros};
