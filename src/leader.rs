//! One active relay per outbox. Replicas compete for a Postgres advisory
//! lock, keyed by the outbox table, held on a session of its own: the holder
//! publishes, the others wait on standby and take over when the holder's
//! session ends (the process died, or Postgres ended the session).
//!
//! A leader must stop before anyone else can start, even when it is cut off
//! from Postgres and cannot learn that it lost the lock. So the lock session
//! runs with `idle_session_timeout` = 2 x `leader.lease` (the server ends it,
//! releasing the lock, if the leader goes quiet that long), the leader
//! confirms its session every `lease / 3`, and it stops publishing once
//! `lease` has passed since the last confirmation it sent: always before
//! the server can have released the lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::Client;

use crate::config::Config;
use crate::metrics::{Component, metrics};
use crate::postgres::RefusalBackoff;
use crate::shutdown::Shutdown;

/// High half of the advisory lock key (the low half is the outbox table's
/// oid), so the lock cannot collide with an application's own keys by chance.
pub(crate) const LOCK_CLASS: i64 = 0x6f72_6c79; // "orly"

/// Competes for leadership of one outbox.
pub struct Election {
    config: Config,
    /// Whether a lock session was ever opened, to count reconnections.
    ever_connected: bool,
}

/// Leadership held: publishing is allowed while [`Leadership::is_held`].
/// Dropping it ends the lock session, which releases the lock.
pub struct Lease {
    leadership: Leadership,
    watchdog: Option<tokio::task::JoinHandle<()>>,
}

/// A cheap handle on a lease that the pipeline checks before each publish.
#[derive(Clone)]
pub struct Leadership {
    state: Option<Arc<LeaseState>>,
}

struct LeaseState {
    /// The lock session. Its connection closing (the server ended it)
    /// means the lock is gone: checked before every publish.
    client: Client,
    lease: Duration,
    /// When the newest confirmation that succeeded was sent.
    confirmed: Mutex<Instant>,
    /// Set when the session is known lost.
    lost: tokio::sync::watch::Sender<bool>,
}

impl Election {
    pub fn new(config: &Config) -> Self {
        Self {
            config: config.clone(),
            ever_connected: false,
        }
    }

    /// Waits until this relay holds the lock, or shutdown (`Ok(None)`).
    /// Connection errors are retried; they only delay the takeover. A
    /// refused login, database or privilege is retried at the slower
    /// [`RefusalBackoff`] pace and logged as an error. A server no retry
    /// can fix (an unsupported version) is returned as the error.
    pub async fn acquire(
        &mut self,
        shutdown: &Shutdown,
    ) -> Result<Option<Lease>, crate::postgres::ConnectError> {
        let leader = &self.config.leader;
        let mut announced = false;
        let mut client: Option<Client> = None;
        let mut refusals = RefusalBackoff::default();
        loop {
            let mut wait = leader.takeover_interval;
            if client.as_ref().is_none_or(Client::is_closed) {
                metrics().set_connected(Component::Election, false);
                client = match self.open().await {
                    Ok(c) => {
                        if self.ever_connected {
                            metrics().reconnects.with_label_values(&["election"]).inc();
                        }
                        self.ever_connected = true;
                        refusals.reset();
                        Some(c)
                    }
                    Err(e) if e.failure().is_fatal() => return Err(e),
                    Err(e) if e.failure().is_refusal() => {
                        // Reached, and told no: slower, and loud.
                        wait = refusals.next_delay();
                        tracing::error!(
                            error = %e,
                            "leader election: {}; retrying in {wait:?}",
                            e.failure().summary()
                        );
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: postgres not reachable; retrying");
                        None
                    }
                };
            }
            if let Some(c) = &client {
                metrics().set_connected(Component::Election, true);
                let attempt = self.try_lock(c).await;
                if !matches!(attempt, Err(ElectionError::TableMissing(_))) {
                    set_cannot_lead(None);
                }
                match attempt {
                    Ok(true) => {
                        tracing::info!(table = %self.config.outbox.table, "elected leader");
                        return Ok(client.map(|c| Lease::start(c, leader.lease)));
                    }
                    Ok(false) if !announced => {
                        announced = true;
                        tracing::info!(
                            table = %self.config.outbox.table,
                            "standby: another relay leads this outbox"
                        );
                    }
                    Ok(false) => {}
                    Err(e @ ElectionError::TableMissing(_)) => {
                        // Nobody can lead this outbox: /readyz says so.
                        if set_cannot_lead(Some(e.to_string())) {
                            tracing::warn!(error = %e, "standby: cannot take the lead until the outbox table exists");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "leader election: taking the lock failed; retrying");
                        client = None;
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.requested() => return Ok(None),
            }
        }
    }

    async fn open(&self) -> Result<Client, crate::postgres::ConnectError> {
        let client = crate::postgres::connect(&self.config.postgres, "leader", None).await?;
        let timeout_ms = (self.config.leader.lease * 2).as_millis();
        if let Err(e) = client
            .batch_execute(&format!("SET idle_session_timeout = {timeout_ms}"))
            .await
        {
            // Postgres before 14: a leader cut off from the database is then
            // found out only by TCP keepalives.
            tracing::warn!(error = %crate::postgres::describe(&e), "cannot set idle_session_timeout on the leader session");
        }
        Ok(client)
    }

    async fn try_lock(&self, client: &Client) -> Result<bool, ElectionError> {
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(($1::int8 << 32) | to_regclass($2)::oid::int8)",
                &[&LOCK_CLASS, &self.config.outbox.table],
            )
            .await?;
        let locked: Option<bool> = row.get(0);
        let locked =
            locked.ok_or_else(|| ElectionError::TableMissing(self.config.outbox.table.clone()))?;
        if locked {
            self.evict_stale_leader(client).await?;
        }
        Ok(locked)
    }

    /// Ends the sessions a previous leader may have left behind when it was
    /// cut off: its claim transaction (holding row locks on the outbox) and
    /// its replication connection (holding the slot). It has stopped
    /// publishing by now (see the module docs); its unmarked rows are
    /// claimed again.
    async fn evict_stale_leader(&self, client: &Client) -> Result<(), ElectionError> {
        let rows = client
            .query(
                "SELECT pg_terminate_backend(pid), pid FROM ( \
                   SELECT l.pid FROM pg_locks l \
                   WHERE l.relation = to_regclass($1) AND l.mode = 'RowShareLock' \
                     AND l.database = (SELECT oid FROM pg_database \
                                       WHERE datname = current_database()) \
                   UNION \
                   SELECT s.active_pid FROM pg_replication_slots s \
                   WHERE s.slot_name = $2 AND s.active_pid IS NOT NULL \
                 ) AS stale WHERE pid <> pg_backend_pid()",
                &[
                    &self.config.outbox.table,
                    &self.config.source.replication.slot,
                ],
            )
            .await?;
        let pids: Vec<i32> = rows.iter().map(|row| row.get(1)).collect();
        for pid in &pids {
            tracing::warn!(pid, "ending a session left by the previous leader");
        }
        // pg_terminate_backend only signals: wait until those sessions are
        // gone, or a claim would skip rows they still lock.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pids.is_empty() && Instant::now() < deadline {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                    &[&pids],
                )
                .await?;
            if row.get::<_, i64>(0) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// Why this relay cannot even try for the lease, if it cannot (the outbox
/// table is missing): `/readyz` reports it.
static CANNOT_LEAD: Mutex<Option<String>> = Mutex::new(None);

/// Why this relay cannot try for the lease now, if it cannot.
pub fn cannot_lead() -> Option<String> {
    CANNOT_LEAD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Records why the relay cannot try for the lease (`None`: it can).
/// Returns whether that changed.
fn set_cannot_lead(reason: Option<String>) -> bool {
    let mut current = CANNOT_LEAD.lock().unwrap_or_else(|e| e.into_inner());
    let changed = *current != reason;
    *current = reason;
    changed
}

/// Why taking the lock failed.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("{}", crate::postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("outbox table {0} does not exist")]
    TableMissing(String),
}

impl Lease {
    /// Leadership without an election (`leader.enabled = false`).
    pub fn unconditional() -> Self {
        Self {
            leadership: Leadership { state: None },
            watchdog: None,
        }
    }

    fn start(client: Client, lease: Duration) -> Self {
        let (lost, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(LeaseState {
            client,
            lease,
            confirmed: Mutex::new(Instant::now()),
            lost,
        });
        let watchdog = tokio::spawn(watch(state.clone()));
        Self {
            leadership: Leadership { state: Some(state) },
            watchdog: Some(watchdog),
        }
    }

    /// The handle the pipeline checks.
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// Resolves when the lease is lost (never without an election).
    pub async fn lost(&self) {
        let Some(state) = &self.leadership.state else {
            return std::future::pending().await;
        };
        let mut lost = state.lost.subscribe();
        loop {
            let Some(deadline) = state.deadline() else {
                return;
            };
            tokio::select! {
                changed = lost.changed() => if changed.is_err() || *lost.borrow() {
                    return;
                },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            // Drops the lock session with the task.
            watchdog.abort();
        }
    }
}

impl Leadership {
    /// True while this relay may publish.
    pub fn is_held(&self) -> bool {
        self.state.as_ref().is_none_or(|s| s.deadline().is_some())
    }
}

impl LeaseState {
    /// When the lease runs out, or `None` if it has.
    fn deadline(&self) -> Option<Instant> {
        if *self.lost.borrow() || self.client.is_closed() {
            return None;
        }
        let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = confirmed + self.lease;
        (Instant::now() < deadline).then_some(deadline)
    }
}

/// Confirms the lock session three times per lease until it fails, and
/// notices within [`CLOSED_POLL`] when the server closes it.
async fn watch(state: Arc<LeaseState>) {
    let period = state.lease / 3;
    let mut next_check = Instant::now() + period;
    loop {
        tokio::time::sleep(CLOSED_POLL.min(period)).await;
        if state.client.is_closed() {
            tracing::error!("the leader session was closed; stopping publishing");
            break;
        }
        if Instant::now() < next_check {
            continue;
        }
        next_check = Instant::now() + period;
        let sent = Instant::now();
        match tokio::time::timeout(period, state.client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => {
                *state.confirmed.lock().unwrap_or_else(|e| e.into_inner()) = sent;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %crate::postgres::describe(&e), "lost the leader session; stopping publishing");
                break;
            }
            Err(_) => {
                if state.deadline().is_none() {
                    tracing::error!(
                        "leader session unconfirmed for a whole lease; stopping publishing"
                    );
                    break;
                }
            }
        }
    }
    metrics().set_connected(Component::Election, false);
    state.lost.send_replace(true);
}

/// How often the watchdog looks whether the lock session was closed.
const CLOSED_POLL: Duration = Duration::from_millis(50);
