//! The maintenance commands say what is wrong with their arguments: a
//! malformed id or time is a usage error (exit 2) found before anything is
//! written, an empty range says so, and retrying a dead letter that does
//! not exist fails (exit 1).

mod support;

use support::setup::Setup;

/// Exit code, stdout and stderr of `outbox-relay ARGS`.
fn run(setup: &Setup, args: &[&str]) -> (Option<i32>, String, String) {
    let out = setup.config.output(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    println!("$ outbox-relay {}\n{stdout}{stderr}", args.join(" "));
    (out.status.code(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_usage_errors_and_missing_letters_fail() {
    let setup = Setup::new(10).await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, sent_at) \
         SELECT 'order', 'o-1', 'created', '{}', now() FROM generate_series(1, 3)",
    );

    let (code, _, err) = run(&setup, &["dead-letters", "retry", "99999"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no such dead letter: 99999"), "{err}");

    let (code, _, err) = run(&setup, &["replay", "--from-id", "abc"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--from-id `abc` is not a valid id") && err.contains("bigint"),
        "{err}"
    );

    for args in [
        &["replay", "--since", "yesterday-ish"][..],
        &["dead-letters", "list", "--since", "garbage"][..],
    ] {
        let (code, _, err) = run(&setup, args);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("is neither a duration"), "{err}");
        assert!(!err.contains("db error"), "{err}");
    }

    let (code, _, err) = run(&setup, &["replay", "--from-id", "20", "--to-id", "10"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("the range is empty"), "{err}");

    let (code, out, err) = run(&setup, &["replay", "--from-id", "100", "--to-id", "200"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("replayed 0 events: no sent event"), "{out}");

    // Nothing was requeued by the refused commands.
    assert_eq!(setup.db.unsent().await, 0);
}
