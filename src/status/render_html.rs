//! The status as a small read-only HTML page for the daemon's `/status`:
//! no JavaScript, inline CSS, refreshed by the browser every
//! [`REFRESH_SECONDS`]. Every value is escaped: slot names, reasons,
//! hosts and errors come from data.

use std::fmt::Write;

use super::Status;
use super::view::{Tone, sections};

/// How often the page reloads itself.
pub const REFRESH_SECONDS: u32 = 10;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}\
header{padding:18px 32px;color:#fff}\
header.ok{background:#23824a}header.bad{background:#b3261e}\
header h1{margin:0;font-size:22px;font-weight:600}\
header p{margin:4px 0 0;opacity:.9;font-size:14px}\
main{padding:20px 32px;display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:18px;align-items:start}\
.attention{grid-column:1/-1;background:#fff4f2;border:1px solid #f1b8b0;border-radius:8px;padding:12px 20px}\
.attention h2{color:#b3261e}\
.attention li{margin:4px 0}\
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 20px}\
h2{font-size:15px;margin:4px 0 8px;text-transform:uppercase;letter-spacing:.05em;color:#4a5263}\
table{border-collapse:collapse;width:100%;table-layout:fixed}\
th{text-align:left;font-weight:500;color:#5b6375;width:30%;overflow-wrap:anywhere;padding:6px 12px 6px 0;vertical-align:top}\
td{padding:6px 0;overflow-wrap:anywhere}\
tr+tr th,tr+tr td{border-top:1px solid #eef0f3}\
td.good::before,td.bad::before{content:'';display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:8px}\
td.good::before{background:#23824a}td.bad::before{background:#b3261e}\
td.bad{color:#b3261e;font-weight:600}\
th.sub{padding-left:18px;font-weight:400}\
footer{padding:0 32px 20px;color:#6b7385;font-size:12px}";

/// The whole page.
pub fn html(status: &Status) -> String {
    let mut page = String::with_capacity(8192);
    let verdict = if status.ok { "OK" } else { "needs attention" };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>outbox-relay: {} {}</title><style>{STYLE}</style></head><body>\
         <header class=\"{}\"><h1>outbox {}: {verdict}</h1>\
         <p>{} source, sink {}</p></header><main>",
        escape(&status.outbox),
        verdict,
        if status.ok { "ok" } else { "bad" },
        escape(&status.outbox),
        escape(status.source_mode),
        escape(status.sink.kind),
    );
    if !status.attention.is_empty() {
        page.push_str("<div class=\"attention\"><h2>Needs attention</h2><ul>");
        for problem in &status.attention {
            let _ = write!(page, "<li>{}</li>", escape(problem));
        }
        page.push_str("</ul></div>");
    }
    for section in sections(status) {
        let _ = write!(page, "<section><h2>{}</h2><table>", escape(section.title));
        for line in section.lines {
            let label = line.label.trim_start();
            let sub = if label.len() < line.label.len() {
                " class=\"sub\""
            } else {
                ""
            };
            let class = match line.tone {
                Tone::Good => " class=\"good\"",
                Tone::Bad => " class=\"bad\"",
                Tone::Plain => "",
            };
            let _ = write!(
                page,
                "<tr><th{sub}>{}</th><td{class}>{}</td></tr>",
                escape(label),
                escape(&line.value)
            );
        }
        page.push_str("</table></section>");
    }
    let _ = writeln!(
        page,
        "</main><footer>Read at {} from Postgres and this relay's counters; \
         refreshes every {REFRESH_SECONDS}s. Also: <a href=\"/metrics\">/metrics</a>, \
         <a href=\"/readyz\">/readyz</a>; <code>outbox-relay status --json</code> for scripts.</footer>\
         </body></html>",
        super::view::utc_text(status.collected_at_unix)
    );
    page
}

/// `text` safe in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(escape("plain slot_1"), "plain slot_1");
    }
}
