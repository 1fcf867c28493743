#!/usr/bin/env bash
# The relay end to end on this machine: services up, build, migrate, start a
# consumer and the relay, insert five events, watch them arrive, stop.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
mkdir -p "$CARGO_TARGET_DIR"
echo "quickstart: building (the first build takes a few minutes)"
cargo build --locked --release --bin outbox-relay --example consume
BIN="$CARGO_TARGET_DIR/release/outbox-relay"

work="$(mktemp -d)"
relay_pid=""
consumer_pid=""
cleanup() {
    [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
    [ -n "$consumer_pid" ] && kill "$consumer_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

DB=outbox_quickstart
PGOPTIONS="-c client_min_messages=warning" psql -XAtq -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
cat > "$work/relay.toml" <<TOML
[postgres]
url = "postgres://postgres@127.0.0.1:5432/$DB"

[sink.rabbitmq]
exchange = "outbox"
declare_exchange = true

[metrics]
listen = "127.0.0.1:9469"
TOML

echo "quickstart: outbox-relay migrate"
"$BIN" --config "$work/relay.toml" migrate
echo "quickstart: outbox-relay check"
"$BIN" --config "$work/relay.toml" check

"$CARGO_TARGET_DIR/release/examples/consume" --exchange outbox --count 5 > "$work/consumed.txt" &
consumer_pid=$!
sleep 1
"$BIN" --config "$work/relay.toml" run 2> "$work/relay.log" &
relay_pid=$!
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:9469/readyz >/dev/null 2>&1 && break
    sleep 0.1
done

echo "quickstart: inserting 5 events"
psql -XAtq -h 127.0.0.1 -U postgres -d "$DB" -c "
    INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers)
    SELECT 'order', 'order-' || i, 'created',
           jsonb_build_object('order_id', i, 'amount', i * 10),
           jsonb_build_object('tenant', 'demo')
    FROM generate_series(1, 5) i"

if ! timeout 30 tail --pid="$consumer_pid" -f /dev/null; then
    echo "quickstart: events did not arrive within 30s; relay log:" >&2
    cat "$work/relay.log" >&2
    exit 1
fi
consumer_pid=""
cat "$work/consumed.txt"

echo "quickstart: rows marked sent:"
psql -XAt -h 127.0.0.1 -U postgres -d "$DB" -c "SELECT id, aggregate_id, sent_at IS NOT NULL AS sent FROM outbox ORDER BY id"
echo "quickstart: relay metrics:"
curl -s http://127.0.0.1:9469/metrics | grep -E '^outbox_relay_(events_published_total|events_acknowledged_total|backlog_events)'
kill -TERM "$relay_pid"
wait "$relay_pid" && echo "quickstart: relay stopped cleanly (exit 0)"
relay_pid=""
