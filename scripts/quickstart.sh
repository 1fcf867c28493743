#!/usr/bin/env bash
# The relay end to end on this machine: private PostgreSQL and RabbitMQ
# servers up (scripts/servers.sh; the machine's own are not touched), build,
# migrate, start a consumer and the relay, insert five events, watch them
# arrive, stop; the servers stop with it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${OUTBOX_TEST_PG_URL:-}" ]; then
    exec scripts/servers.sh run -- "$0" "$@"
fi
PG="$OUTBOX_TEST_PG_URL"
AMQP="$OUTBOX_TEST_AMQP_URL"
METRICS_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
mkdir -p "$CARGO_TARGET_DIR"
echo "quickstart: building the relay (release; the first build takes about 4 minutes on 2 cores, cargo shows its progress)"
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
psql -XAtq "$PG/postgres" -c "CREATE DATABASE $DB"
cat > "$work/relay.toml" <<TOML
[postgres]
url = "$PG/$DB"

[sink.rabbitmq]
url = "$AMQP"
exchange = "outbox"
declare_exchange = true

[metrics]
listen = "127.0.0.1:$METRICS_PORT"
TOML

echo "quickstart: outbox-relay migrate"
"$BIN" --config "$work/relay.toml" migrate
echo "quickstart: outbox-relay check"
"$BIN" --config "$work/relay.toml" check

"$CARGO_TARGET_DIR/release/examples/consume" --url "$AMQP" --exchange outbox --count 5 > "$work/consumed.txt" &
consumer_pid=$!
sleep 1
"$BIN" --config "$work/relay.toml" run 2> "$work/relay.log" &
relay_pid=$!
for _ in $(seq 100); do
    curl -sf http://127.0.0.1:$METRICS_PORT/readyz >/dev/null 2>&1 && break
    sleep 0.1
done

echo "quickstart: inserting 5 events"
psql -XAtq "$PG/$DB" -c "
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
psql -XAt "$PG/$DB" -c "SELECT id, aggregate_id, sent_at IS NOT NULL AS sent FROM outbox ORDER BY id"
echo "quickstart: relay metrics:"
curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep -E '^outbox_relay_(events_published_total|events_acknowledged_total|backlog_events)'
kill -TERM "$relay_pid"
wait "$relay_pid" && echo "quickstart: relay stopped cleanly (exit 0)"
relay_pid=""
cat <<EOF
quickstart: done; the private servers stop now.
quickstart: the binary is $BIN
quickstart: install it with \`cargo install --path .\` or copy it anywhere (it needs glibc and OpenSSL 3, Debian's libssl3).
quickstart: to run it against your own database, write a relay.toml such as
    [postgres]
    url = "postgres://app:PASSWORD@db.example:5432/orders"
    [sink.rabbitmq]
    url = "amqp://user:PASSWORD@rabbit.example:5672/%2f"
    exchange = "outbox"
quickstart: then: $BIN --config relay.toml migrate && $BIN --config relay.toml run
EOF
