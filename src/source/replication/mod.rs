//! The logical replication source: a replication connection streaming the
//! outbox table's inserts (and table-less logical messages) through the
//! built-in `pgoutput` plugin.

pub mod connection;
pub mod mapping;
pub mod pgoutput;
pub mod publication;
pub mod slot;
pub mod slot_report;
mod source;

pub use source::ReplicationSource;
