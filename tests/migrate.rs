//! `migrate` creates the table, index and trigger once and records it;
//! `check` fails before and passes after.

mod support;

use support::db::TestDb;
use support::relay::RelayConfig;

#[test]
fn migrate_is_idempotent_and_check_sees_the_table() {
    let db = TestDb::new();
    let config = RelayConfig::new(&db, "unused");
    let mut config = config;
    config.set("sink", "kind", "\"stdout\"");

    let before = config.command("check");
    let stdout = String::from_utf8_lossy(&before.stdout);
    assert_eq!(before.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("\"public\".\"outbox\" does not exist"),
        "{stdout}"
    );

    let first = config.command("migrate");
    assert!(first.status.success());
    assert!(String::from_utf8_lossy(&first.stdout).contains("0001 create_outbox: applied"));
    let second = config.command("migrate");
    assert!(second.status.success());
    let second = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.contains("0001 create_outbox: already applied"),
        "{second}"
    );
    assert!(
        second.contains("0002 notify_trigger: already applied"),
        "{second}"
    );

    assert_eq!(
        db.psql(
            "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) \
             FROM information_schema.columns WHERE table_name = 'outbox'"
        )
        .trim(),
        "id bigint, aggregate_type text, aggregate_id text, event_type text, payload jsonb, \
         headers jsonb, created_at timestamp with time zone, sent_at timestamp with time zone"
    );
    assert_eq!(
        db.psql("SELECT indexdef FROM pg_indexes WHERE indexname = 'outbox_unsent_idx'")
            .trim(),
        "CREATE INDEX outbox_unsent_idx ON public.outbox USING btree (id) WHERE (sent_at IS NULL)"
    );
    assert_eq!(
        db.psql("SELECT version || ' ' || name FROM outbox_relay_migrations ORDER BY version")
            .trim(),
        "1 create_outbox\n2 notify_trigger\n3 dead_letters"
    );
    assert_eq!(
        db.psql("SELECT to_regclass('public.outbox_dead_letters') IS NOT NULL")
            .trim(),
        "t"
    );
    assert_eq!(
        db.psql("SELECT count(*) FROM pg_trigger WHERE tgname = 'outbox_relay_notify'")
            .trim(),
        "1"
    );

    let after = config.command("check");
    let stdout = String::from_utf8_lossy(&after.stdout);
    assert!(after.status.success(), "{stdout}");
    assert!(stdout.contains("trigger installed"), "{stdout}");
}
