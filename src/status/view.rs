//! A status as labelled lines in sections, shared by the text and the HTML
//! renderings so that both say the same thing in the same words. Values
//! here are plain text (they may come from data: slot names, reasons,
//! hosts); each renderer escapes them as its format needs.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Retention, Role, Status, duration_text};

/// How a line should catch the eye.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    Good,
    Bad,
    Plain,
}

/// One labelled line.
pub(super) struct Line {
    pub label: String,
    pub value: String,
    pub tone: Tone,
}

/// A titled group of lines.
pub(super) struct Section {
    pub title: &'static str,
    pub lines: Vec<Line>,
}

fn line(label: impl Into<String>, value: impl Into<String>, tone: Tone) -> Line {
    Line {
        label: label.into(),
        value: value.into(),
        tone,
    }
}

const UNREADABLE: &str = "unknown (Postgres unreadable)";

pub(super) fn sections(s: &Status) -> Vec<Section> {
    let relay_unreachable = "unknown (relay unreachable)";
    let mut out = Vec::new();

    let mut relay = Vec::new();
    relay.push(match (&s.relay.error, s.relay.role) {
        (Some(error), _) => line(
            "relay",
            format!("{}: unreachable ({error})", s.relay.address),
            Tone::Bad,
        ),
        (None, role) => line(
            "relay",
            format!(
                "{}: {}{}",
                s.relay.address,
                match role {
                    Some(Role::Leader) => "leader",
                    Some(Role::Standby) => "standby",
                    None => "reachable",
                },
                s.relay
                    .version
                    .as_ref()
                    .map(|v| format!(", version {v}"))
                    .unwrap_or_default()
            ),
            Tone::Good,
        ),
    });
    if !s.relay.connections.is_empty() {
        let text: Vec<String> = s
            .relay
            .connections
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    c.component,
                    if c.connected { "up" } else { "down" }
                )
            })
            .collect();
        relay.push(line("connections", text.join(", "), Tone::Plain));
    }
    relay.push(match &s.leader {
        None => line("leader lock", UNREADABLE, Tone::Bad),
        Some(l) if !l.election => line(
            "leader lock",
            "no election (leader.enabled = false)",
            Tone::Plain,
        ),
        Some(l) => match &l.holder {
            None => line("leader lock", "nobody holds it", Tone::Bad),
            Some(h) => {
                let at = match (&h.client_addr, h.client_port) {
                    (Some(addr), Some(port)) if port > 0 => format!("{addr}:{port}"),
                    (Some(addr), _) => addr.clone(),
                    (None, Some(-1)) => "a local socket".into(),
                    (None, _) => "an address hidden from this role".into(),
                };
                line(
                    "leader lock",
                    format!(
                        "held by pid {} at {at}{}",
                        h.pid,
                        h.backend_start
                            .as_ref()
                            .map(|t| format!(", since {t}"))
                            .unwrap_or_default()
                    ),
                    Tone::Good,
                )
            }
        },
    });
    if let Some(l) = s.leader.as_ref().filter(|l| l.election) {
        relay.push(line(
            "standbys",
            format!("{} waiting", l.standbys),
            Tone::Plain,
        ));
    }
    out.push(Section {
        title: "Relay",
        lines: relay,
    });

    let mut flow = Vec::new();
    match &s.backlog {
        None => flow.push(line("unsent rows", UNREADABLE, Tone::Bad)),
        Some(b) => {
            flow.push(line("unsent rows", b.unsent.to_string(), Tone::Plain));
            let (text, tone) = match b.oldest_unsent_age_seconds {
                None if b.unsent == 0 => ("-".to_owned(), Tone::Good),
                None => ("unknown (no created_at column)".to_owned(), Tone::Plain),
                Some(age) if age > s.max_unsent_age_seconds => (
                    format!(
                        "{} (over {})",
                        duration_text(age),
                        duration_text(s.max_unsent_age_seconds)
                    ),
                    Tone::Bad,
                ),
                Some(age) => (duration_text(age), Tone::Good),
            };
            flow.push(line("oldest unsent", text, tone));
        }
    }
    let t = &s.throughput;
    flow.push(line(
        "throughput",
        match (t.source, t.events, t.events_per_second) {
            ("sent_at", Some(n), _) => format!("{n} row(s) marked sent in the last minute"),
            (_, Some(_), Some(rate)) => format!(
                "{rate:.1} events/s (relay counter over {:.1}s)",
                t.window_seconds
            ),
            _ => relay_unreachable.to_owned(),
        },
        Tone::Plain,
    ));
    flow.push(match &s.lag {
        None => line("lag", relay_unreachable, Tone::Plain),
        Some(_) if s.relay.role == Some(Role::Standby) => {
            line("lag", "none (a standby publishes nothing)", Tone::Plain)
        }
        Some(lag) if lag.observations == 0 => {
            line("lag", "no events published since start", Tone::Plain)
        }
        Some(lag) => {
            let q = |v: Option<f64>| v.map_or("-".to_owned(), duration_text);
            line(
                "lag",
                format!(
                    "p50 {}, p90 {}, p99 {} (over {} events since the relay started)",
                    q(lag.p50_seconds),
                    q(lag.p90_seconds),
                    q(lag.p99_seconds),
                    lag.observations
                ),
                Tone::Plain,
            )
        }
    });
    out.push(Section {
        title: "Outbox",
        lines: flow,
    });

    if s.source_mode == "replication" {
        let mut slot = Vec::new();
        match &s.slot {
            None => slot.push(line("slot", UNREADABLE, Tone::Bad)),
            Some(sl) if !sl.exists => slot.push(line(
                "slot",
                format!("{}: does not exist", sl.name),
                Tone::Bad,
            )),
            Some(sl) => {
                let lost = sl.wal_status.as_deref() == Some("lost");
                let active = sl.active == Some(true);
                slot.push(line(
                    "slot",
                    format!(
                        "{}: {}",
                        sl.name,
                        if active { "active" } else { "inactive" }
                    ),
                    if active { Tone::Good } else { Tone::Bad },
                ));
                slot.push(line(
                    "wal status",
                    sl.wal_status.clone().unwrap_or_else(|| "-".into()),
                    if lost { Tone::Bad } else { Tone::Plain },
                ));
                slot.push(line(
                    "lag",
                    sl.lag_bytes.map_or("-".into(), bytes_text),
                    Tone::Plain,
                ));
                slot.push(line(
                    "failover",
                    match sl.failover {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "n/a (before PostgreSQL 17)",
                    },
                    Tone::Plain,
                ));
            }
        }
        out.push(Section {
            title: "Replication slot",
            lines: slot,
        });
    }

    let mut letters = Vec::new();
    match &s.dead_letters {
        None => letters.push(line("pending", UNREADABLE, Tone::Bad)),
        Some(d) => {
            letters.push(line(
                "pending",
                d.pending.to_string(),
                if d.pending > 0 { Tone::Bad } else { Tone::Good },
            ));
            for r in &d.by_reason {
                letters.push(line(
                    format!("  {}", r.reason),
                    r.count.to_string(),
                    Tone::Plain,
                ));
            }
        }
    }
    out.push(Section {
        title: "Dead letters",
        lines: letters,
    });

    let retention = match &s.retention {
        Retention::NotConfigured => line("retention", "not configured", Tone::Plain),
        Retention::Reported {
            deleted_rows_total,
            oldest_sent_age_seconds,
            last_pass_unix_seconds,
        } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            line(
                "retention",
                format!(
                    "{} rows deleted; oldest sent row {}; last pass {}",
                    deleted_rows_total.map_or("-".into(), |n| format!("{n:.0}")),
                    oldest_sent_age_seconds.map_or("-".into(), duration_text),
                    last_pass_unix_seconds.map_or("never".into(), |t| format!(
                        "{} ago",
                        duration_text((now - t).max(0.0))
                    )),
                ),
                Tone::Plain,
            )
        }
    };
    let sink = &s.sink;
    let (state, tone) = match (sink.connected, sink.blocked, s.relay.role) {
        (Some(true), Some(true), _) => ("connected, blocked by the broker", Tone::Bad),
        (Some(true), _, _) => ("connected", Tone::Good),
        (Some(false), _, _) => ("disconnected", Tone::Bad),
        (None, _, Some(Role::Standby)) => ("not connected (standby)", Tone::Plain),
        (None, _, _) => (relay_unreachable, Tone::Plain),
    };
    out.push(Section {
        title: "Sink and retention",
        lines: vec![
            line("sink", format!("{}: {state}", sink.kind), tone),
            line("target", sink.target.clone(), Tone::Plain),
            retention,
        ],
    });
    out
}

/// `2024-05-01 12:00:00 UTC`-style text of a Unix time.
pub(super) fn utc_text(unix_seconds: u64) -> String {
    let Ok(t) = i64::try_from(unix_seconds)
        .map_err(|_| ())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).map_err(|_| ()))
    else {
        return unix_seconds.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `1.5 MiB`-style text of a byte count.
fn bytes_text(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unix_times_read_as_utc() {
        assert_eq!(super::utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc_text(1_714_564_800), "2024-05-01 12:00:00 UTC");
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(super::bytes_text(512), "512 B");
        assert_eq!(super::bytes_text(1536), "1.5 KiB");
        assert_eq!(super::bytes_text(3 * 1024 * 1024), "3.0 MiB");
    }
}
