//! The daemon's `/status` page, rendered by headless Chromium: a leader
//! with events published and a dead letter whose reason is markup (shown
//! as text, never run), then a standby's page. The screenshot is saved
//! (its path is printed; `OUTBOX_TEST_SCREENSHOT_TO=docs/status-page.png`
//! also copies it there, for the README).
//!
//! Needs /usr/bin/chromium: `scripts/servers.sh run --browser -- ...`
//! installs it (`scripts/test.sh` does).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::eventually;
use support::rabbit::QueueCleanup;
use support::relay::http_get;
use support::setup::Setup;
use support::writers;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A reason straight from the data, as hostile as it gets.
const REASON: &str = r#"<script>alert("x")</script>&<b>"#;

/// Headless Chromium on `url` with `action` (`--dump-dom`,
/// `--screenshot=PATH`); its stdout.
fn chromium(url: &str, action: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package, or run the \
         test under `scripts/servers.sh run --browser -- ...`, which does"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new("timeout")
        .arg("120")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--window-size=1200,900")
        .arg(action)
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium {action} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's text as Chromium serialises its DOM, with runs of
/// whitespace squashed.
fn dom(port: u16) -> String {
    let dom = chromium(&format!("http://127.0.0.1:{port}/status"), "--dump-dom");
    dom.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_page_in_a_browser() {
    let mut setup = Setup::new(20).await;
    let _cleanup = QueueCleanup::of(&setup.queue);
    setup.config.set("leader", "takeover_interval", "\"500ms\"");
    setup.db.psql(&format!(
        "INSERT INTO outbox_dead_letters \
           (event_id, aggregate_type, aggregate_id, event_type, payload, reason, error, attempts, sink) \
         VALUES ('7', 'order', 'o-7', 'created', '\\x7b7d', {reason}, 'refused', 3, 'rabbitmq'), \
                ('8', 'order', 'o-8', 'created', '\\x7b7d', 'oversized', 'too big', 3, 'rabbitmq')",
        reason = sql_literal(REASON),
    ));
    let a = setup.start_relay().await;
    eventually(Duration::from_secs(10), "relay A leads", || async {
        a.metric("outbox_relay_leader").await == Some(1.0)
    })
    .await;
    let written = writers::write(&setup.db.url, 2, 60, 4, Duration::from_millis(2)).await;
    setup.settle("status page", &written).await;

    // The markup arrives escaped; the page has no script of any kind.
    let (code, body) = http_get(a.port, "/status").await.expect("GET /status");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&lt;b&gt;"),
        "the reason is escaped: {body}"
    );
    assert!(!body.contains("<script"), "no script on the page: {body}");
    assert!(!body.contains("<b>"), "{body}");
    assert!(body.contains("<meta http-equiv=\"refresh\""), "{body}");

    let text = dom(a.port);
    println!("leader page DOM: {text}");
    assert!(
        !text.contains("<script"),
        "the browser made no script element"
    );
    assert!(
        text.contains("&lt;script&gt;alert(\"x\")&lt;/script&gt;&amp;&lt;b&gt;"),
        "the reason is text in the DOM: {text}"
    );
    for part in [
        "outbox public.outbox: needs attention",
        "Needs attention",
        "2 dead letter(s) pending",
        ": leader, version",
        "held by pid",
        "120 row(s) marked sent in the last minute",
        "over 120 events since the relay started",
        "oversized",
        "connected",
        "not configured",
    ] {
        assert!(text.contains(part), "`{part}` on the page: {text}");
    }

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &format!("http://127.0.0.1:{}/status", a.port),
        &format!("--screenshot={}", shot.display()),
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG at {}", shot.display());
    println!("screenshot of /status: {}", shot.display());
    if let Ok(copy) = std::env::var("OUTBOX_TEST_SCREENSHOT_TO") {
        let copy = Path::new(env!("CARGO_MANIFEST_DIR")).join(copy);
        std::fs::copy(&shot, &copy).expect("copying the screenshot");
        println!("copied to {}", copy.display());
    }

    // A second relay's page: standby, not connected to the broker.
    setup.config.new_port();
    let b = setup.start_relay().await;
    let text = dom(b.port);
    println!("standby page DOM: {text}");
    for part in [
        ": standby, version",
        "not connected (standby)",
        "1 waiting",
        "none (a standby publishes nothing)",
    ] {
        assert!(
            text.contains(part),
            "`{part}` on the standby's page: {text}"
        );
    }
}

/// A SQL string literal.
fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
