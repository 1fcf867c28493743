//! `outbox-relay dead-letters list`: the dead-letter table as a text table.

use super::{DeadLetterError, table_name};
use crate::config::Config;

/// Which letters to show.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this reason (`oversized`, `unroutable`, ...).
    pub reason: Option<String>,
    /// Only this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only letters recorded at or after this time (see [`crate::since`]).
    pub since: Option<String>,
    /// Also letters already retried.
    pub include_retried: bool,
    /// At most this many, newest last.
    pub limit: i64,
}

const HEADINGS: [&str; 9] = [
    "ID",
    "EVENT",
    "AGGREGATE",
    "TYPE",
    "REASON",
    "ATTEMPTS",
    "FAILED AT",
    "RETRIED",
    "ERROR",
];

/// Longest error text shown; the table holds all of it.
const ERROR_WIDTH: usize = 80;

/// The letters matching `filter`, as aligned text lines (a heading first).
pub async fn list(config: &Config, filter: &ListFilter) -> Result<Vec<String>, DeadLetterError> {
    let since = filter
        .since
        .as_deref()
        .map(crate::since::since_timestamp)
        .transpose()
        .map_err(DeadLetterError::Usage)?;
    let table = table_name(config).map_err(DeadLetterError::Config)?;
    let query = |error| DeadLetterError::Query {
        table: table.to_string(),
        error,
    };
    let client = crate::postgres::connect(&config.postgres, "dead-letters list", None).await?;
    let rows = client
        .query(
            &format!(
                "SELECT * FROM (SELECT id::text, event_id, aggregate_type || '/' || aggregate_id, \
                   event_type, reason, attempts::text, \
                   to_char(failed_at, 'YYYY-MM-DD HH24:MI:SSOF'), \
                   coalesce(to_char(retried_at, 'YYYY-MM-DD HH24:MI:SSOF'), '-'), error, id AS n \
                 FROM {table} \
                 WHERE ($1::text IS NULL OR reason = $1) \
                   AND ($2::text IS NULL OR aggregate_type = $2) \
                   AND ($3::text IS NULL OR failed_at >= $3::timestamptz) \
                   AND ($4 OR retried_at IS NULL) \
                 ORDER BY id DESC LIMIT $5) AS recent ORDER BY n"
            ),
            &[
                &filter.reason,
                &filter.aggregate_type,
                &since,
                &filter.include_retried,
                &filter.limit,
            ],
        )
        .await
        .map_err(query)?;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            (0..HEADINGS.len())
                .map(|i| {
                    let text: String = row.get(i);
                    let text = text.replace(['\n', '\t'], " ");
                    if i == HEADINGS.len() - 1 && text.chars().count() > ERROR_WIDTH {
                        let cut: String = text.chars().take(ERROR_WIDTH - 3).collect();
                        format!("{cut}...")
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect();
    let mut lines = align(&cells);
    lines.push(format!("{} dead letter(s) in {table}", rows.len()));
    Ok(lines)
}

/// Pads each column to its widest cell.
fn align(rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = HEADINGS.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![line(HEADINGS.to_vec())];
    lines.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    lines
}
