#!/usr/bin/env bash
# Replication mode, one large transaction, stdout sink, a fresh database:
#  (a) a normal drain: time from COMMIT until every row is marked;
#  (b) a second transaction of the same size, SIGKILL once about half of it
#      is published, restart: time from restart until every row is marked,
#      and how many of its events were published twice.
# Usage: scripts/measure-replication-restart.sh BINARY MARK [ROWS] [MAX_WAIT_S]
# MARK is update or delete (completion is read from the table). Needs psql and
# a PostgreSQL with wal_level=logical and trust auth for postgres, named by
# OUTBOX_TEST_PG_URL (postgres://postgres@127.0.0.1:PORT, no database); without
# it the script runs itself under scripts/servers.sh, on a private server.
# Touches nothing else.
set -euo pipefail
if [ -z "${OUTBOX_TEST_PG_URL:-}" ]; then
    exec "$(dirname "$0")/servers.sh" run -- "$0" "$@"
fi
bin=$(realpath "$1")
mark=$2
rows=${3:-200000}
max_wait=${4:-900}
server=$OUTBOX_TEST_PG_URL
db=measure_replication_$$_${mark}
dir=$(mktemp -d /tmp/measure-replication.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pid=

sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$server/$db" -c "$1"; }
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    psql -X -q "$server/postgres" -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '$db' AND active_pid IS NOT NULL" >/dev/null 2>&1 || true
    sleep 0.5
    psql -X -q "$server/postgres" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$db'" >/dev/null 2>&1 || true
    psql -X -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

psql -X -q "$server/postgres" -c "CREATE DATABASE $db"
cat > "$dir/relay.toml" <<TOML
[postgres]
url = "$server/$db"
[source]
mode = "replication"
[source.replication]
slot = "$db"
publication = "$db"
[outbox]
mark = "$mark"
[sink]
kind = "stdout"
[metrics]
listen = "127.0.0.1:$port"
[log]
level = "info"
TOML
"$bin" --config "$dir/relay.toml" migrate >/dev/null

start() {
    "$bin" --config "$dir/relay.toml" run >"$dir/out-$1.jsonl" 2>"$dir/log-$1.txt" &
    pid=$!
}
wait_for() { # seconds, shell condition
    local end=$(( $(date +%s) + $1 )); shift
    until eval "$@"; do
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.2
    done
}
pending() { # rows with id > $1 not yet marked
    if [ "$mark" = delete ]; then sql "SELECT count(*) FROM outbox WHERE id > $1"
    else sql "SELECT count(*) FROM outbox WHERE id > $1 AND sent_at IS NULL"; fi
}
insert() {
    sql "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload) \
         SELECT 'order', 'a' || (g % 100), 'created', jsonb_build_object('seq', g) \
         FROM generate_series(1, $rows) AS g"
}
lines() { cat "$dir"/out-*.jsonl 2>/dev/null | wc -l; }

start 0
wait_for 60 'grep -q "replication started" "$dir/log-0.txt"'

# (a) a normal drain
t=$(now); insert; insert_s=$(since "$t")
t=$(now)
wait_for "$max_wait" '[ "$(pending 0)" = 0 ]'
drain_s=$(since "$t")
echo "mark=$mark rows=$rows insert ${insert_s}s; (a) drain from commit to all marked: ${drain_s}s"

# (b) SIGKILL at about half of a second transaction, restart
base=$(sql "SELECT coalesce(max(id), 0) FROM outbox")
[ "$mark" = delete ] && base=$rows
before=$(lines)
insert
wait_for "$max_wait" '[ $(( $(lines) - before )) -ge $(( rows / 2 )) ]'
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
at_kill=$(( $(lines) - before ))
t=$(now); start 1
if wait_for "$max_wait" '[ "$(pending "$base")" = 0 ]'; then
    restart_s=$(since "$t"); left=0
else
    restart_s="> $max_wait"; left=$(pending "$base")
fi
kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
ids=$(cat "$dir"/out-*.jsonl | grep -o '"event_id":"[0-9]*"' | tr -dc '0-9\n' | awk -v b="$base" '$1 > b')
published=$(echo "$ids" | grep -c . || true)
unique=$(echo "$ids" | sort -u | grep -c . || true)
echo "mark=$mark (b) killed after $at_kill lines; restart to all marked: ${restart_s}s; still pending: $left; published $published, unique $unique of $rows, duplicates $(( published - unique ))"
echo "logs in $dir"
