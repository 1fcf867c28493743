//! A password in any form of the connection URL (here libpq's
//! `?password=` query parameter) never reaches `run`'s log or `check`'s
//! output: both show it masked.

mod support;

use std::time::Duration;

use support::relay::toml_str;
use support::setup::Setup;

const SECRET: &str = "s3cr3t-Pw";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn query_parameter_passwords_are_masked_in_run_and_check() {
    let mut setup = Setup::new(10).await;
    // Trust authentication: the password is sent, and not needed.
    let url = format!("{}?password={SECRET}&connect_timeout=10", setup.db.url);
    setup.config.set("postgres", "url", &toml_str(&url));

    let out = setup.config.output(&["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("$ outbox-relay check\n{text}");
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains(SECRET),
        "check printed the password:\n{text}"
    );
    assert!(text.contains("password=***"), "{text}");

    let mut relay = setup.start_relay().await;
    relay.sigterm(Duration::from_secs(10));
    let log = relay.log_text();
    assert!(!log.contains(SECRET), "run logged the password:\n{log}");
    let starting = log
        .lines()
        .find(|l| l.contains("starting"))
        .unwrap_or_default();
    assert!(starting.contains("password=***"), "{starting}");
}
