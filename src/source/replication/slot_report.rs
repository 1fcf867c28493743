//! What `check` says about the replication slot: whether it exists, is a
//! failover slot, and whether each standby of a multi-host connection
//! string keeps a synchronised copy, i.e. whether a promotion would keep it.

use tokio_postgres::Client;

use super::slot::version_name;
use crate::config::{Config, FailoverSlot, LostSlot};
use crate::postgres;

/// One line of the report: whether it is fine, its name, what was found.
pub type Line = (bool, &'static str, String);

/// The `replication slot` and `failover` lines, read on `primary` (the
/// session `check` opened) and on every other server of the string.
pub async fn lines(config: &Config, primary: &Client) -> Vec<Line> {
    let settings = &config.source.replication;
    let mut out = Vec::new();
    let version = match server_version(primary).await {
        Ok(v) => v,
        Err(e) => {
            out.push((false, "replication slot", e));
            return out;
        }
    };
    let failover_slots = version >= 170_000;
    if settings.failover == FailoverSlot::On && !failover_slots {
        out.push((
            false,
            "replication slot",
            format!(
                "source.replication.failover = true needs PostgreSQL 17 or newer; this server is {}",
                version_name(version)
            ),
        ));
        return out;
    }
    let wants = match settings.failover {
        FailoverSlot::Auto => failover_slots,
        FailoverSlot::On => true,
        FailoverSlot::Off => false,
    };
    let columns = if failover_slots { "failover" } else { "false" };
    let slot = primary
        .query_opt(
            &format!(
                "SELECT wal_status, {columns}, \
                 (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 \
                 FROM pg_replication_slots WHERE slot_name = $1"
            ),
            &[&settings.slot],
        )
        .await;
    let name = &settings.slot;
    let is_failover = match slot {
        Err(e) => {
            out.push((
                false,
                "replication slot",
                postgres::describe(&e).to_string(),
            ));
            return out;
        }
        Ok(None) => {
            out.push((
                true,
                "replication slot",
                format!(
                    "`{name}` does not exist yet; the first start creates it{}",
                    if wants { " as a failover slot" } else { "" }
                ),
            ));
            wants
        }
        Ok(Some(row)) => {
            let wal_status: Option<String> = row.get(0);
            let is_failover: bool = row.get(1);
            let lag: Option<i64> = row.get(2);
            let lost = wal_status.as_deref() == Some("lost");
            let change = match (is_failover, wants) {
                (false, true) => "; the next start makes it a failover slot",
                (true, false) => "; the next start makes it a plain slot (failover = false)",
                _ => "",
            };
            out.push((
                !lost,
                "replication slot",
                format!(
                    "`{name}` wal_status {}, {} bytes behind, {}{change}",
                    wal_status.as_deref().unwrap_or("unknown"),
                    lag.unwrap_or(0),
                    if is_failover {
                        "failover slot"
                    } else {
                        "not a failover slot"
                    },
                ),
            ));
            wants
        }
    };
    out.extend(standbys(config, primary, version, is_failover).await);
    out
}

async fn server_version(client: &Client) -> Result<i32, String> {
    postgres::version::server_version_num(client)
        .await
        .map_err(|e| postgres::describe(&e).to_string())
}

/// The `failover` lines: what a promotion would do to the slot.
async fn standbys(config: &Config, primary: &Client, version: i32, failover: bool) -> Vec<Line> {
    let settings = &config.source.replication;
    let after_promotion = match settings.on_lost_slot {
        LostSlot::Recover => {
            "a promoted standby has no slot: the relay creates it and publishes every unsent row (on_lost_slot = \"recover\")"
        }
        LostSlot::Stop => {
            "a promoted standby has no slot: the relay stops and asks for `outbox-relay recover-slot` (on_lost_slot = \"stop\")"
        }
    };
    if !failover {
        let why = if version < 170_000 {
            format!(
                "no failover slots before PostgreSQL 17 (server {})",
                version_name(version)
            )
        } else {
            "the slot is not a failover slot (failover = false)".to_owned()
        };
        return vec![(true, "failover", format!("{why}; {after_promotion}"))];
    }
    let mut out = Vec::new();
    let waits_for = primary
        .query_one("SELECT current_setting('synchronized_standby_slots')", &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_default();
    out.push(if waits_for.is_empty() {
        (
            true,
            "failover",
            "synchronized_standby_slots is empty on the primary: the relay may receive \
             changes a standby has not, so a promoted standby's copy can be behind (some \
             events published again) or a transaction the relay published may be gone"
                .to_owned(),
        )
    } else {
        (
            true,
            "failover",
            format!("the primary sends changes only after the standby slots `{waits_for}` have them (synchronized_standby_slots)"),
        )
    });
    let sessions = match postgres::connect_each(&config.postgres, "check").await {
        Ok(sessions) => sessions,
        Err(e) => {
            out.push((false, "standby", e.to_string()));
            return out;
        }
    };
    let mut standbys = 0;
    for (at, session) in sessions {
        let Ok(client) = session else { continue };
        let in_recovery = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !in_recovery {
            continue;
        }
        standbys += 1;
        let copy = client
            .query_opt(
                "SELECT synced, confirmed_flush_lsn::text FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&settings.slot],
            )
            .await;
        out.push(match copy {
            Ok(Some(row)) if row.get::<_, bool>(0) => (
                true,
                "standby",
                format!(
                    "{at} has the slot synchronised (at {}): a promotion keeps it",
                    row.get::<_, Option<String>>(1).unwrap_or_default()
                ),
            ),
            Ok(_) => (
                false,
                "standby",
                format!(
                    "{at} has no synchronised copy of `{}` (set sync_replication_slots = on, \
                     hot_standby_feedback = on, primary_slot_name and a dbname in primary_conninfo \
                     on the standby); {after_promotion}",
                    settings.slot
                ),
            ),
            Err(e) => (
                false,
                "standby",
                format!("{at}: {}", postgres::describe(&e)),
            ),
        });
    }
    if standbys == 0 {
        out.push((
            true,
            "standby",
            "no standby among the servers of postgres.url: list it (host=primary,standby) to have check see its copy of the slot".into(),
        ));
    }
    out
}
