//! outbox-relay as a library: the pieces the `outbox-relay` binary wires
//! together, public so that integration tests and benchmarks can drive them
//! directly. The binary (`src/main.rs`) is the supported interface.

pub mod backlog;
pub mod check;
pub mod config;
pub mod event;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod outbox;
pub mod pipeline;
pub mod postgres;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod telemetry;
pub mod tls;
