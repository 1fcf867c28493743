//! Postgres errors name their cause: a table dropped while polling stops the
//! relay with the server's message and SQLSTATE (it once said only
//! "claiming events: db error"), and the formatter every error goes through
//! keeps the server's detail and hint.

mod support;

use std::time::Duration;

use outbox_relay::postgres::describe;
use support::relay::{Relay, run_to_exit};
use support::setup::Setup;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_dropped_while_polling_stops_the_relay_naming_it() {
    let setup = Setup::new(10).await;
    let relay = Relay::start(&setup.config);
    let mut relay = relay;
    relay.wait_ready().await;
    setup.db.psql(
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         VALUES ('order', 'o-1', 'created', '{}')",
    );
    support::eventually(Duration::from_secs(30), "the row sent", || async {
        setup.db.unsent().await == 0
    })
    .await;
    setup.db.psql("DROP TABLE outbox CASCADE");
    let (code, log) = run_to_exit(relay).await;
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains(r#"relation \"public.outbox\" does not exist (42P01)"#)
            || log.contains(r#"relation "public.outbox" does not exist (42P01)"#),
        "{log}"
    );
    assert!(!log.contains("db error"), "{log}");
    for line in log.lines().filter(|l| l.contains("42P01")) {
        println!("{line}");
    }
    setup.queue.delete().await;
}

#[tokio::test]
async fn server_errors_keep_message_code_detail_and_hint() {
    let db = support::db::TestDb::new();
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await
        .expect("setup");
    let duplicate = client
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect_err("duplicate key");
    assert_eq!(
        describe(&duplicate).to_string(),
        "duplicate key value violates unique constraint \"t_pkey\" (23505); \
         detail: Key (id)=(1) already exists."
    );
    let misspelled = client
        .query("SELECT idd FROM t", &[])
        .await
        .expect_err("no such column");
    let text = describe(&misspelled).to_string();
    assert!(
        text.starts_with("column \"idd\" does not exist (42703); hint: Perhaps you meant"),
        "{text}"
    );
    let infinity = client
        .query(
            "SELECT (extract(epoch FROM 'infinity'::timestamptz) * 1000000)::int8",
            &[],
        )
        .await
        .expect_err("infinity to bigint");
    let text = describe(&infinity).to_string();
    assert!(
        text.ends_with("(0A000)") || text.ends_with("(22003)"),
        "{text}"
    );
    assert_ne!(text, "db error");
}
