//! The replication baseline: `pg_recvlogical` streaming the same backlog
//! from a pgoutput slot with the relay's options (proto_version 1, the same
//! publication, messages on) to /dev/null, up to the WAL position after the
//! inserts. pgoutput rather than test_decoding, so Postgres does exactly the
//! decoding work it does for the relay.

use std::process::Command;
use std::time::Instant;

use super::Baseline;
use crate::Result;
use crate::database::{BenchDb, PUBLICATION};

/// Streams everything in `db`'s slot up to now; `events` rows are in it.
pub async fn pg_recvlogical(db: &BenchDb, events: u64) -> Result<Baseline> {
    let end = db.current_lsn().await?;
    let (url, slot) = (db.url.clone(), db.slot.clone());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("pg_recvlogical")
            .args(["-d", &url, "--slot", &slot, "--start", "--endpos", &end])
            .args(["--no-loop", "-f", "/dev/null"])
            .args(["-o", "proto_version=1"])
            .args(["-o", &format!("publication_names={PUBLICATION}")])
            .args(["-o", "messages=true"])
            .output()
    })
    .await??;
    let elapsed = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "pg_recvlogical failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(Baseline::new(
        "pg_recvlogical",
        events,
        elapsed,
        "pg_recvlogical --start --endpos <LSN after the inserts> -f /dev/null, pgoutput proto_version 1".into(),
    ))
}
