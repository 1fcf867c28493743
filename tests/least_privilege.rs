//! The relay runs from a least-privilege role: `migrate --grant-to` run by
//! the tables' owner (a role without SUPERUSER that owns the database) gives
//! the relay's role what it needs, the relay (never a superuser) delivers
//! every row in polling mode (mark = "update" and "delete") and replication
//! mode, and `check` names exactly the grant that was revoked, with the
//! statement that fixes it, which is then run to prove it does. Roles log in
//! with SCRAM passwords on the shared server.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use support::db::{TestDb, server};
use support::relay::{Relay, RelayConfig, check_line, run_to_exit, toml_str};
use support::{eventually, sh, unique};

/// The owner and relay roles of one test; dropped after the test's
/// database (declare it first, so it is dropped last).
struct Roles {
    owner: String,
    relay: String,
}

impl Roles {
    /// Two login roles with SCRAM passwords; the relay's gets `relay_options`
    /// (`REPLICATION`), which only a superuser may give, so postgres does.
    fn new(relay_options: &str) -> Self {
        let roles = Roles {
            owner: unique("lp_owner"),
            relay: unique("lp_relay"),
        };
        admin(&format!(
            "CREATE ROLE {} LOGIN PASSWORD 'owner-pw'; \
             CREATE ROLE {} LOGIN {relay_options} PASSWORD 'relay-pw'",
            roles.owner, roles.relay
        ));
        roles
    }

    /// A database owned by the owner role, which PUBLIC may not connect
    /// to: every privilege the relay has comes from a grant.
    fn database(&self) -> TestDb {
        let db = TestDb::new();
        admin(&format!(
            "ALTER DATABASE {0} OWNER TO {1}; REVOKE ALL ON DATABASE {0} FROM PUBLIC",
            db.name, self.owner
        ));
        db
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-X",
                "-q",
                &format!("{}/postgres", server()),
                "-c",
                &format!("DROP ROLE IF EXISTS {}, {}", self.owner, self.relay),
            ])
            .output();
    }
}

/// Runs SQL as postgres on the shared server.
fn admin(sql: &str) {
    support::db::psql_admin(sql);
}

/// `postgres://ROLE:PASSWORD@host:port/db` for the test database.
fn login(db: &TestDb, role: &str, password: &str) -> String {
    let hostport = server()
        .rsplit_once('@')
        .map(|(_, h)| h.to_owned())
        .expect("server url has a host");
    format!("postgres://{role}:{password}@{hostport}/{}", db.name)
}

/// Runs SQL through psql at `url`.
fn psql(url: &str, sql: &str) -> String {
    sh(
        "psql",
        &["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
    )
}

/// The config for one role: stdout sink, the outbox in schema `app`.
fn config(url: &str, extra: &[(&str, &str, &str)]) -> RelayConfig {
    let mut config = RelayConfig::for_url(url, "unused");
    config
        .set("sink", "kind", "\"stdout\"")
        .set("outbox", "table", "\"app.outbox\"")
        .set("log", "level", "\"info\"");
    for (section, key, value) in extra {
        config.set(section, key, value);
    }
    config
}

/// `migrate --grant-to relay` as the owner; its stdout.
fn migrate_and_grant(owner: &RelayConfig, relay: &str) -> String {
    let text = owner.run_ok(&["migrate", "--grant-to", relay]);
    assert!(
        !text.contains("not granted"),
        "migrate could not grant everything:\n{text}"
    );
    text
}

/// Neither role may be a superuser (nor the relay's own tables owned by it).
fn assert_not_superusers(db: &TestDb, roles: &Roles) {
    let supers = db.psql(&format!(
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('{}', '{}') AND rolsuper",
        roles.owner, roles.relay
    ));
    assert_eq!(supers.trim(), "0", "a test role is a superuser");
}

/// Inserts `n` events as the owner.
fn insert(owner_url: &str, n: usize, from: usize) {
    psql(
        owner_url,
        &format!(
            "INSERT INTO app.outbox (aggregate_type, aggregate_id, event_type, payload) \
             SELECT 'order', 'o' || i, 'created', jsonb_build_object('n', i) \
             FROM generate_series({from}, {}) i",
            from + n - 1
        ),
    );
}

/// Unsent rows of the test's outbox.
const UNSENT: &str = "SELECT count(*) FROM app.outbox WHERE sent_at IS NULL";

/// The event ids the stdout sink wrote: (lines, distinct ids).
fn delivered(stdout: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(stdout).expect("stdout");
    let ids: Vec<String> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            v["event_id"].as_str().expect("event_id").to_owned()
        })
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    (ids.len(), distinct.len())
}

/// Starts the relay from `relay`, runs `while_running` once it is ready,
/// waits until `remaining` (a count query) is 0, stops it cleanly, and
/// returns what the stdout sink wrote (lines, distinct ids) and its log.
async fn relay_until_done(
    db: &TestDb,
    relay: &RelayConfig,
    remaining: &str,
    while_running: impl FnOnce(),
) -> (usize, usize, String) {
    let (mut running, stdout) = Relay::start_capturing_stdout(relay);
    running.wait_ready().await;
    while_running();
    eventually(Duration::from_secs(30), "every row handled", || async {
        db.count(remaining).await == 0
    })
    .await;
    let status = running.sigterm(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{}", running.log_text());
    let (lines, distinct) = delivered(&stdout);
    (lines, distinct, running.log_text())
}

/// `check` as the relay: whether it passed and its FAIL lines.
fn check_fails(relay: &RelayConfig) -> (bool, Vec<String>, String) {
    let (ok, text) = relay.check();
    let fails = text
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_owned)
        .collect();
    (ok, fails, text)
}

/// Revokes with `revoke` (run at `url`), asserts `check` fails with
/// exactly `expected` as its only FAIL line, then runs the statement the
/// line gives (the parenthesised GRANT or ALTER ROLE, up to `;` for the
/// REPLICATION attribute) at `fix_url` and asserts `check` passes again.
fn revoke_and_expect(relay: &RelayConfig, url: &str, revoke: &str, expected: &str, fix_url: &str) {
    psql(url, revoke);
    let (ok, fails, text) = check_fails(relay);
    println!("after `{revoke}`:\n{}", fails.join("\n"));
    assert!(!ok, "check passed after `{revoke}`:\n{text}");
    assert_eq!(
        fails,
        vec![expected.to_owned()],
        "after `{revoke}`:\n{text}"
    );
    let start = [" (GRANT ", " (ALTER ROLE "]
        .iter()
        .find_map(|p| expected.rfind(p))
        .expect("a fix in parentheses");
    let fix = expected[start + 2..]
        .trim_end_matches(')')
        .split(';')
        .next()
        .expect("a statement");
    psql(fix_url, fix);
    let (ok, fails, text) = check_fails(relay);
    assert!(ok && fails.is_empty(), "after `{fix}`:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_update_from_a_minimal_role() {
    let roles = Roles::new("");
    let db = roles.database();
    let owner_url = login(&db, &roles.owner, "owner-pw");
    let relay_url = login(&db, &roles.relay, "relay-pw");
    let owner = config(&owner_url, &[]);
    let relay = config(&relay_url, &[]);
    let r = &roles.relay;

    let granted = migrate_and_grant(&owner, r);
    assert!(
        granted.contains(&format!(
            "grants: granted: GRANT UPDATE (sent_at) ON app.outbox TO {r}"
        )),
        "{granted}"
    );
    assert_not_superusers(&db, &roles);
    let (ok, text) = relay.check();
    assert!(ok, "{text}");
    let line = check_line(&text, "grants");
    assert!(
        line.starts_with(&format!(
            "ok   grants: {r} has what polling (mark = \"update\") needs: "
        )),
        "{line}"
    );
    println!("{line}");

    const N: usize = 200;
    insert(&owner_url, N, 1);
    let (lines, distinct, log) = relay_until_done(&db, &relay, UNSENT, || {}).await;
    println!("polling, mark = update: {lines} lines, {distinct} distinct ids of {N}");
    assert_eq!((lines, distinct), (N, N));
    for unwanted in ["missing privilege", "crash guard off", "record is unusable"] {
        assert!(!log.contains(unwanted), "`{unwanted}` in:\n{log}");
    }

    // Each revoked grant is named alone, and the printed statement fixes it.
    let cases = [
        (
            format!("REVOKE UPDATE ON app.outbox FROM {r}"),
            format!(
                "FAIL grants: {r} lacks UPDATE (sent_at) on app.outbox, needed to lock the rows \
                 it claims (FOR UPDATE) and mark them sent (GRANT UPDATE (sent_at) ON app.outbox \
                 TO {r})"
            ),
        ),
        (
            format!("REVOKE SELECT ON app.outbox FROM {r}"),
            format!(
                "FAIL grants: {r} lacks SELECT on app.outbox, needed to read events (the \
                 dead-letter copy reads the whole row) (GRANT SELECT ON app.outbox TO {r})"
            ),
        ),
        (
            format!("REVOKE INSERT ON app.outbox_dead_letters FROM {r}"),
            format!(
                "FAIL grants: {r} lacks INSERT on app.outbox_dead_letters, needed to record \
                 events the broker can never take (GRANT INSERT ON app.outbox_dead_letters TO {r})"
            ),
        ),
        (
            format!("REVOKE USAGE ON SEQUENCE app.outbox_dead_letters_id_seq FROM {r}"),
            format!(
                "FAIL grants: {r} lacks USAGE on sequence app.outbox_dead_letters_id_seq, needed \
                 to number dead letters (GRANT USAGE ON SEQUENCE app.outbox_dead_letters_id_seq \
                 TO {r})"
            ),
        ),
        (
            format!("REVOKE DELETE ON app.outbox_relay_crash_guard FROM {r}"),
            format!(
                "FAIL grants: {r} lacks DELETE on app.outbox_relay_crash_guard, needed to keep \
                 the crash guard's record (dead_letters.max_crashes) (GRANT DELETE ON \
                 app.outbox_relay_crash_guard TO {r})"
            ),
        ),
    ];
    for (revoke, expected) in &cases {
        revoke_and_expect(&relay, &owner_url, revoke, expected, &owner_url);
    }
    // USAGE on the schema hides the tables too, but is named on its own.
    psql(&owner_url, &format!("REVOKE USAGE ON SCHEMA app FROM {r}"));
    let (ok, _, text) = check_fails(&relay);
    assert!(!ok);
    assert!(
        text.contains(&format!(
            "FAIL grants: {r} lacks USAGE on schema app, needed to reach the outbox and the \
             relay's tables (GRANT USAGE ON SCHEMA app TO {r})"
        )),
        "{text}"
    );
    psql(&owner_url, &format!("GRANT USAGE ON SCHEMA app TO {r}"));

    // At run time: the missing grant is logged at start, and the statement
    // it stops the relay on names the table, with the server's message.
    psql(&owner_url, &format!("REVOKE UPDATE ON app.outbox FROM {r}"));
    insert(&owner_url, 1, N + 1);
    let (code, log) = run_to_exit(Relay::start(&relay)).await;
    println!("run without UPDATE: exit {code:?}");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "missing privilege: {r} lacks UPDATE (sent_at) on app.outbox"
        )),
        "{log}"
    );
    assert!(
        log.contains("permission denied for table outbox (42501)"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_delete_from_a_minimal_role() {
    let roles = Roles::new("");
    let db = roles.database();
    let owner_url = login(&db, &roles.owner, "owner-pw");
    let relay_url = login(&db, &roles.relay, "relay-pw");
    let mark = [("outbox", "mark", "\"delete\"")];
    let owner = config(&owner_url, &mark);
    let relay = config(&relay_url, &mark);
    let r = &roles.relay;

    let granted = migrate_and_grant(&owner, r);
    for grant in [
        format!("GRANT UPDATE (id) ON app.outbox TO {r}"),
        format!("GRANT DELETE ON app.outbox TO {r}"),
    ] {
        assert!(granted.contains(&grant), "{grant} in:\n{granted}");
    }
    assert!(!granted.contains("UPDATE (sent_at)"), "{granted}");
    assert_not_superusers(&db, &roles);
    let (ok, text) = relay.check();
    assert!(ok, "{text}");

    const N: usize = 150;
    insert(&owner_url, N, 1);
    let (lines, distinct, log) =
        relay_until_done(&db, &relay, "SELECT count(*) FROM app.outbox", || {}).await;
    println!("polling, mark = delete: {lines} lines, {distinct} distinct ids of {N}");
    assert_eq!((lines, distinct), (N, N));
    assert!(!log.contains("missing privilege"));

    let cases = [
        (
            format!("REVOKE DELETE ON app.outbox FROM {r}"),
            format!(
                "FAIL grants: {r} lacks DELETE on app.outbox, needed to delete rows once the \
                 broker confirmed them (GRANT DELETE ON app.outbox TO {r})"
            ),
        ),
        (
            format!("REVOKE UPDATE ON app.outbox FROM {r}"),
            format!(
                "FAIL grants: {r} lacks UPDATE on any column of app.outbox, needed to lock the \
                 rows it claims (FOR UPDATE needs UPDATE on a column; none is updated) (GRANT \
                 UPDATE (id) ON app.outbox TO {r})"
            ),
        ),
        (
            format!("REVOKE UPDATE ON app.outbox_dead_letters FROM {r}"),
            format!(
                "FAIL grants: {r} lacks UPDATE on app.outbox_dead_letters, needed to record \
                 events the broker can never take (GRANT UPDATE ON app.outbox_dead_letters TO {r})"
            ),
        ),
    ];
    for (revoke, expected) in &cases {
        revoke_and_expect(&relay, &owner_url, revoke, expected, &owner_url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_from_a_minimal_role() {
    let roles = Roles::new("REPLICATION");
    let db = roles.database();
    let owner_url = login(&db, &roles.owner, "owner-pw");
    let relay_url = login(&db, &roles.relay, "relay-pw");
    let slot = unique("lp_slot");
    let slot_toml = toml_str(&slot);
    let settings = [
        ("source", "mode", "\"replication\""),
        ("source.replication", "slot", slot_toml.as_str()),
    ];
    let owner = config(&owner_url, &settings);
    let relay = config(&relay_url, &settings);
    let r = &roles.relay;

    let granted = migrate_and_grant(&owner, r);
    for part in [
        "replication_slots: \"app\".\"outbox_relay_slots\" ready".to_owned(),
        "publication: `outbox_relay` created for \"app\".\"outbox\" (inserts)".to_owned(),
        format!("granted: GRANT UPDATE ON app.outbox_relay_slots TO {r}"),
    ] {
        assert!(granted.contains(&part), "{part} in:\n{granted}");
    }
    assert_not_superusers(&db, &roles);
    let (ok, text) = relay.check();
    assert!(ok, "{text}");
    println!("{}", check_line(&text, "grants"));
    assert_eq!(
        check_line(&text, "publication"),
        "ok   publication: `outbox_relay` publishes app.outbox"
    );

    // Rows before the slot exists (the catch-up pass), then streamed ones.
    const BEFORE: usize = 60;
    const AFTER: usize = 140;
    insert(&owner_url, BEFORE, 1);
    let (lines, distinct, log) = relay_until_done(&db, &relay, UNSENT, || {
        insert(&owner_url, AFTER, BEFORE + 1)
    })
    .await;
    println!(
        "replication: {lines} lines, {distinct} distinct ids of {}",
        BEFORE + AFTER
    );
    assert_eq!((lines, distinct), (BEFORE + AFTER, BEFORE + AFTER));
    assert!(!log.contains("missing privilege"));
    // The relay made neither its tables nor the publication.
    let owners = db.psql(
        "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'app'",
    );
    assert_eq!(owners.trim(), roles.owner);
    let publication_owner = db.psql(
        "SELECT pg_get_userbyid(pubowner) FROM pg_publication WHERE pubname = 'outbox_relay'",
    );
    assert_eq!(publication_owner.trim(), roles.owner);

    let admin_url = format!("{}/{}", server(), db.name);
    revoke_and_expect(
        &relay,
        &admin_url,
        &format!("ALTER ROLE {r} NOREPLICATION"),
        &format!(
            "FAIL grants: {r} lacks the REPLICATION attribute, needed to create and stream from \
             the replication slot (ALTER ROLE {r} REPLICATION; on RDS and Aurora: GRANT \
             rds_replication TO {r})"
        ),
        &admin_url,
    );
    revoke_and_expect(
        &relay,
        &owner_url,
        &format!("REVOKE UPDATE ON app.outbox_relay_slots FROM {r}"),
        &format!(
            "FAIL grants: {r} lacks UPDATE on app.outbox_relay_slots, needed to record its \
             confirmed position (GRANT UPDATE ON app.outbox_relay_slots TO {r})"
        ),
        &owner_url,
    );

    // Without the publication, which the relay may not create: check says
    // so, and run stops naming the server's refusal and the fix.
    psql(&owner_url, "DROP PUBLICATION outbox_relay");
    let (ok, fails, text) = check_fails(&relay);
    assert!(!ok, "{text}");
    assert_eq!(
        fails,
        vec![
            "FAIL publication: `outbox_relay` does not exist and the relay may not create it \
             (CREATE PUBLICATION needs ownership of app.outbox and CREATE on the database): run \
             `outbox-relay migrate` as the owner of app.outbox"
                .to_owned()
        ],
        "{text}"
    );
    let (code, log) = run_to_exit(Relay::start(&relay)).await;
    println!("run without the publication: exit {code:?}");
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("publication `outbox_relay` does not exist and creating it failed: ")
            && log.contains("(42501)")
            && log.contains("run `outbox-relay migrate` as its owner"),
        "{log}"
    );
}
