//! Keeps one event from crash-looping the relay. A panic while publishing is
//! caught by the pipeline; this is for deaths nothing in the process can
//! catch (an abort, an OOM kill, a segfault in a C library): without it,
//! every restart would claim the same event and die on it again, for ever.
//!
//! The rule (see `docs/crash-guard.md`): at each start, before the first
//! publish, the first event of the first batch is recorded in the database.
//! A clean exit deletes the record, so a record found at the next start
//! means that start died. If it died on the same event the new start claims
//! first, the new start publishes one event at a time, recording each before
//! publishing it, for one batch's worth of events: the next death is then
//! pinned to one event. An event that `dead_letters.max_crashes` starts in a
//! row died on, publishing it alone, is dead-lettered (`crashed`) without
//! being published again. In normal running nothing is written: one write
//! per start, one per event only while pinning.

mod hook;
mod store;

pub use store::{ensure_table, table_name};

pub use hook::{
    ABORT_ON_HEADER, PANIC_ON_HEADER, in_flight, inject_faults, install_panic_hook, panic_message,
    published, publishing,
};
use store::{Record, Store};

use crate::config::Config;
use crate::event::OutboxEvent;

/// The dead-letter reason of an event the relay kept dying on.
pub const CRASHED: &str = "crashed";

/// What to do with a claimed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish it as claimed.
    Publish,
    /// Publish only its first event (release the rest); further batches are
    /// claimed one event at a time ([`CrashGuard::limit`]).
    FirstAlone,
    /// The process died `deaths` times publishing its first event alone:
    /// dead-letter that event without publishing it.
    Crashed { deaths: u32 },
}

/// One start's crash guard, owned by the pipeline.
pub struct CrashGuard {
    store: Option<Store>,
    max_crashes: u32,
    batch_size: usize,
    state: State,
    /// The record the previous start left.
    previous: Option<Record>,
    /// The record this start wrote last.
    written: Option<Record>,
}

enum State {
    /// Before the first batch.
    Unchecked,
    /// One event at a time, each recorded: `left` more to record.
    Pinning { left: usize },
    /// Nothing more to do until the clean exit.
    Done,
}

impl CrashGuard {
    /// The guard of `config`'s outbox; off when `dead_letters.max_crashes`
    /// is 0.
    pub fn new(config: &Config) -> Self {
        let store = match (config.dead_letters.max_crashes, Store::new(config)) {
            (0, _) => None,
            (_, Ok(store)) => Some(store),
            (_, Err(e)) => {
                tracing::warn!(error = %e, "crash guard off");
                None
            }
        };
        CrashGuard {
            store,
            max_crashes: config.dead_letters.max_crashes,
            batch_size: config.source.batch_size(),
            state: State::Unchecked,
            previous: None,
            written: None,
        }
    }

    /// A guard that does nothing (for a pass that must not touch the record).
    pub fn off() -> Self {
        CrashGuard {
            store: None,
            max_crashes: 0,
            batch_size: 1,
            state: State::Done,
            previous: None,
            written: None,
        }
    }

    /// `dead_letters.max_crashes`.
    pub fn max_crashes(&self) -> u32 {
        self.max_crashes
    }

    /// The claim limit: 1 while pinning, else `limit`.
    pub fn limit(&self, limit: usize) -> usize {
        match self.state {
            State::Pinning { .. } => 1,
            _ => limit,
        }
    }

    /// Decides about a claimed, non-empty batch, before it is published.
    /// A database error turns the guard off for this start (logged): it
    /// must never be what stops the relay.
    pub async fn check(&mut self, events: &[OutboxEvent]) -> Verdict {
        if events.is_empty() {
            return Verdict::Publish;
        }
        match self.decide(events).await {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::warn!(error = %e, "crash guard: the record is unusable; off until restart");
                self.state = State::Done;
                self.store = None;
                Verdict::Publish
            }
        }
    }

    async fn decide(&mut self, events: &[OutboxEvent]) -> Result<Verdict, store::StoreError> {
        let (first, len) = (&events[0], events.len());
        let Some(store) = self.store.as_mut() else {
            return Ok(Verdict::Publish);
        };
        match self.state {
            State::Done => Ok(Verdict::Publish),
            State::Unchecked => {
                self.previous = store.read().await?;
                // The event the previous start was on is still unsent (a
                // source that re-streams a transaction may put events it
                // already published before it).
                match &self.previous {
                    Some(previous) if events.iter().any(|e| e.id == previous.event_id) => {
                        tracing::warn!(
                            event_id = %previous.event_id,
                            starts = previous.starts,
                            "the previous start died while publishing {} event {}; \
                             publishing one event at a time to find the event it died on",
                            if previous.alone { "the lone" } else { "from" },
                            previous.event_id
                        );
                        self.state = State::Pinning {
                            left: self.batch_size.max(1),
                        };
                        self.pin(first, len).await
                    }
                    _ => {
                        let record = Record {
                            event_id: first.id.clone(),
                            alone: false,
                            starts: 1,
                        };
                        store.write(&record).await?;
                        self.written = Some(record);
                        self.state = State::Done;
                        store.close();
                        Ok(Verdict::Publish)
                    }
                }
            }
            State::Pinning { .. } => self.pin(first, len).await,
        }
    }

    /// Pinning: records `first` as published alone (once per event), or
    /// finds it already died on too often.
    async fn pin(&mut self, first: &OutboxEvent, len: usize) -> Result<Verdict, store::StoreError> {
        let Some(store) = self.store.as_mut() else {
            return Ok(Verdict::Publish);
        };
        let State::Pinning { left } = self.state else {
            return Ok(Verdict::Publish);
        };
        let verdict = if len > 1 {
            Verdict::FirstAlone
        } else {
            Verdict::Publish
        };
        // A retry of the event already recorded (a broker error): same start.
        if let Some(written) = &self.written
            && written.event_id == first.id
        {
            return Ok(verdict);
        }
        let deaths = match &self.previous {
            Some(p) if p.alone && p.event_id == first.id => p.starts,
            _ => 0,
        };
        if deaths >= self.max_crashes {
            tracing::error!(
                event_id = %first.id,
                deaths,
                "the relay died {deaths} time(s) in a row publishing event {} alone; \
                 dead-lettering it unpublished",
                first.id
            );
            return Ok(Verdict::Crashed { deaths });
        }
        let record = Record {
            event_id: first.id.clone(),
            alone: true,
            starts: deaths + 1,
        };
        store.write(&record).await?;
        if deaths > 0 {
            tracing::warn!(
                event_id = %first.id,
                deaths,
                max_crashes = self.max_crashes,
                "publishing event {} alone; the relay died on it {deaths} time(s) before",
                first.id
            );
        } else {
            tracing::info!(event_id = %first.id, "crash guard: publishing event {} alone", first.id);
        }
        self.written = Some(record);
        self.state = if left <= 1 {
            State::Done
        } else {
            State::Pinning { left: left - 1 }
        };
        if let State::Done = self.state {
            store.close();
        }
        Ok(verdict)
    }

    /// A clean exit: deletes this start's record, so the next start does
    /// not count this one as a death.
    pub async fn finish(&mut self) {
        if self.written.is_none() {
            return;
        }
        if let Some(store) = self.store.as_mut() {
            if let Err(e) = store.clear().await {
                tracing::warn!(error = %e, "crash guard: clearing the record failed; the next start will publish its first batch one event at a time");
            }
            store.close();
        }
        self.written = None;
    }
}
