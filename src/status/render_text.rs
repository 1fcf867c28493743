//! The status as text for a terminal: a verdict, what needs attention,
//! then each section's lines with their labels aligned.

use super::Status;
use super::view::sections;

/// The status as lines of text (ending with a newline).
pub fn text(status: &Status) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "outbox {} ({}): {}  [{}]\n",
        one_line(&status.outbox),
        status.source_mode,
        if status.ok { "OK" } else { "NEEDS ATTENTION" },
        super::view::utc_text(status.collected_at_unix)
    ));
    for problem in &status.attention {
        out.push_str(&format!("  ! {}\n", one_line(problem)));
    }
    let sections = sections(status);
    let width = sections
        .iter()
        .flat_map(|s| &s.lines)
        .map(|l| l.label.chars().count())
        .max()
        .unwrap_or(0);
    for section in sections {
        out.push_str(&format!("\n{}\n", section.title));
        for line in section.lines {
            out.push_str(&format!(
                "  {:width$}  {}\n",
                one_line(&line.label),
                one_line(&line.value)
            ));
        }
    }
    out
}

/// Control characters from data (a reason with a newline) would break
/// the layout or drive the terminal: shown as spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
