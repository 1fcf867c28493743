-- Wakes a listening relay as soon as rows are inserted. One NOTIFY per
-- statement (Postgres folds identical notifications of one transaction), so
-- bulk inserts cost one notification, not one per row.
CREATE OR REPLACE FUNCTION {{schema}}.outbox_relay_notify() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS outbox_relay_notify ON {{table}};
CREATE TRIGGER outbox_relay_notify AFTER INSERT ON {{table}}
    FOR EACH STATEMENT EXECUTE FUNCTION {{schema}}.outbox_relay_notify({{channel}});
