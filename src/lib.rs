//! outbox-relay as a library: the pieces the `outbox-relay` binary wires
//! together, public so that integration tests and benchmarks can drive them
//! directly. The binary (`src/main.rs`) is the supported interface.

pub mod backlog;
pub mod check;
pub mod classify;
pub mod config;
pub mod crash_guard;
pub mod dead_letters;
pub mod event;
pub mod grants;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod migrate;
pub mod outbox;
pub mod pipeline;
pub mod postgres;
pub mod rate_limit;
pub mod replay;
pub mod retention;
pub mod shutdown;
pub mod since;
pub mod sink;
pub mod source;
pub mod status;
pub mod telemetry;
pub mod tls;
