//! `[retention]`: how long sent rows, retried dead letters and streamed
//! rows stay, and how gently the leader deletes them.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Settings of the retention task (see [`crate::retention`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Rows marked sent longer ago than this are deleted (`mark =
    /// "update"`); `None` ("" or "0") keeps them for ever.
    #[serde(deserialize_with = "window")]
    pub sent_after: Option<Duration>,
    /// Dead letters retried longer ago than this are deleted.
    #[serde(deserialize_with = "window")]
    pub dead_letters_retried_after: Option<Duration>,
    /// With replication and `mark = "none"`: rows created longer ago than
    /// this and before the slot's confirmed position are deleted.
    #[serde(deserialize_with = "window")]
    pub streamed_after: Option<Duration>,
    /// Detach and drop a partition of a partitioned outbox whose rows are
    /// all sent before the window and whose range has ended, instead of
    /// deleting its rows one batch at a time.
    pub drop_partitions: bool,
    /// Rows per DELETE statement.
    pub batch_size: i64,
    /// Pause between two DELETE statements, so claims never wait behind
    /// retention for long.
    #[serde(deserialize_with = "super::duration::deserialize")]
    pub pause: Duration,
    /// How often a pass starts.
    #[serde(deserialize_with = "super::duration::deserialize")]
    pub interval: Duration,
    /// `statement_timeout` of each retention statement.
    #[serde(deserialize_with = "super::duration::deserialize")]
    pub statement_timeout: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sent_after: None,
            dead_letters_retried_after: None,
            streamed_after: None,
            drop_partitions: false,
            batch_size: 1_000,
            pause: Duration::from_millis(50),
            interval: Duration::from_secs(60),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

impl RetentionConfig {
    /// Whether any window is set.
    pub fn enabled(&self) -> bool {
        self.sent_after.is_some()
            || self.dead_letters_retried_after.is_some()
            || self.streamed_after.is_some()
    }
}

/// A retention window: a duration, or "" / "0" for none.
fn window<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    let text = text.trim();
    if text.is_empty() || text == "0" {
        return Ok(None);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); write e.g. \"7d\", \"12h\", or \"\" to keep rows for ever"
        ))),
    }
}
