#!/usr/bin/env bash
# Drain rate of a preloaded backlog: N outbox rows (~300-byte JSON payloads,
# 1000 aggregates) are inserted, the relay is started, and the time until
# every row is marked sent gives rows/s. One line of output per run.
#
#   bench/drain.sh stdout|rabbitmq|kafka [ROWS]
#
# Any OUTBOX_RELAY_* variable reaches the relay, e.g.
#   OUTBOX_RELAY_SOURCE__MODE=replication bench/drain.sh stdout
#
# A first step towards the benchmark harness; brokers bound the end-to-end
# figures on small machines, so compare sinks within one run only.
set -euo pipefail
cd "$(dirname "$0")/.."

SINK="${1:?usage: bench/drain.sh stdout|rabbitmq|kafka [ROWS]}"
ROWS="${2:-100000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
cargo build --quiet --locked --release --bin outbox-relay --example consume
BIN="$CARGO_TARGET_DIR/release/outbox-relay"
DB=outbox_bench
TAG="bench_$(date +%s)_$$"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
PSQL=(psql -XAtq -h 127.0.0.1 -U postgres)

# Slots of an earlier run would keep WAL and block DROP DATABASE.
PGOPTIONS="-c client_min_messages=warning" "${PSQL[@]}" -d postgres \
    -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$DB'" \
    -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
cat >"$work/relay.toml" <<TOML
[postgres]
url = "postgres://postgres@127.0.0.1:5432/$DB"
[source.polling]
batch_size = 1000
[sink]
kind = "$SINK"
[sink.rabbitmq]
exchange = "$TAG"
declare_exchange = true
[sink.kafka]
topic = "$TAG"
[metrics]
listen = "127.0.0.1:0"
[log]
level = "warn"
TOML
"$BIN" --config "$work/relay.toml" migrate >/dev/null
if [ "${OUTBOX_RELAY_SOURCE__MODE:-polling}" = replication ]; then
    # Slot first, so the backlog is streamed rather than caught up by polling.
    "${PSQL[@]}" -d "$DB" -c "CREATE PUBLICATION outbox_relay FOR TABLE outbox WITH (publish = 'insert')" \
        -c "SELECT pg_create_logical_replication_slot('outbox_relay', 'pgoutput')" >/dev/null
fi
"${PSQL[@]}" -d "$DB" -c "
    INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, headers)
    SELECT 'order', 'agg-' || (i % 1000), 'created',
           jsonb_build_object('seq', i, 'customer', 'c-' || (i % 977),
                              'note', repeat('x', 220)),
           '{\"tenant\": \"bench\"}'
    FROM generate_series(1, $ROWS) i" -c "VACUUM ANALYZE outbox"

case "$SINK" in
rabbitmq)
    # A consumer, so the exchange routes somewhere.
    "$CARGO_TARGET_DIR/release/examples/consume" --exchange "$TAG" --count "$ROWS" --quiet true &
    pids+=($!)
    sleep 1
    ;;
kafka)
    "${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/tools/bin/tansu" topic create "$TAG" --partitions 3 >/dev/null
    ;;
esac

start=$(date +%s.%N)
"$BIN" --config "$work/relay.toml" run >/dev/null 2>"$work/relay.log" &
relay=$!
pids+=($relay)
while [ "$("${PSQL[@]}" -d "$DB" -c 'SELECT count(*) FROM outbox WHERE sent_at IS NULL')" != "0" ]; do
    kill -0 "$relay" 2>/dev/null || { cat "$work/relay.log" >&2; exit 1; }
    sleep 0.2
done
end=$(date +%s.%N)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$relay/status")
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$relay/stat")
kill -TERM "$relay"
wait "$relay" || true
"${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$DB'" >/dev/null
awk -v s="$SINK" -v n="$ROWS" -v a="$start" -v b="$end" -v r="$rss_kb" -v c="$cpu_ticks" -v hz="$(getconf CLK_TCK)" \
    -v m="${OUTBOX_RELAY_SOURCE__MODE:-polling}" \
    'BEGIN { t = b - a; printf "mode=%s sink=%s rows=%d seconds=%.2f rows_per_s=%.0f peak_rss_mb=%.1f cpu_s_per_1k=%.3f\n", m, s, n, t, n / t, r / 1024, (c / hz) / (n / 1000) }'
