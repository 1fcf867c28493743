//! Log setup: human-readable lines on a terminal, JSON when configured; both
//! on stderr so stdout stays free for the stdout sink.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the level.
pub fn init(config: &LogConfig) {
    // lapin logs every returned (unroutable) message at warn, payload
    // included; the relay reports those itself, once per batch.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{},lapin=error", config.level)))
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match config.format {
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
