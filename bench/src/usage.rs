//! Resource use of a process from `/proc`: peak resident memory (`VmHWM`)
//! and CPU time (user + system), read just before the relay is stopped.

use serde::Serialize;

use crate::Result;

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ; 100 on
/// every Linux architecture the relay targets).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process's peak memory and CPU time so far.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub peak_rss_mb: f64,
    pub cpu_seconds: f64,
}

impl Usage {
    /// Reads both for process `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let hwm_kb: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .ok_or("no VmHWM in /proc/PID/status")?
            .parse()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Ok(Usage {
            peak_rss_mb: hwm_kb / 1024.0,
            cpu_seconds: cpu_ticks(&stat)? / TICKS_PER_SECOND,
        })
    }

    /// CPU seconds per 1000 events.
    pub fn cpu_per_1k(&self, events: u64) -> f64 {
        if events == 0 {
            return 0.0;
        }
        self.cpu_seconds / (events as f64 / 1000.0)
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line. The command
/// name (field 2) may contain spaces, so fields are counted after its `)`.
fn cpu_ticks(stat: &str) -> Result<f64> {
    let after_name = stat.rfind(')').map(|i| &stat[i + 1..]).ok_or("bad stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, index 11.
    let utime: f64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: f64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok(utime + stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_utime_and_stime_after_the_name() {
        let stat = "42 (outbox relay) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 3 0";
        assert_eq!(super::cpu_ticks(stat).ok(), Some(280.0));
    }

    #[test]
    fn reads_this_process() {
        let usage = super::Usage::of(std::process::id()).expect("own /proc");
        assert!(usage.peak_rss_mb > 0.0);
    }
}
