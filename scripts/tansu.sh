#!/usr/bin/env bash
# The Kafka-protocol broker for tests and the quick start: tansu (Apache
# Kafka compatible, SQLite storage), built once from crates.io and cached
# outside the clone, listening on 127.0.0.1:9092.
#
#   scripts/tansu.sh install | start | stop | kill | reset | status
#
# `kill` stops it with SIGKILL, as a crash would (tests use it for outages).
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay"
TOOLS="$CACHE/tools"
STATE="$CACHE/tansu"
BIN="$TOOLS/bin/tansu"
PIDFILE="$STATE/tansu.pid"
VERSION=0.6.0
ADDR=127.0.0.1
PORT=9092

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/$ADDR/$PORT") 2>/dev/null; }

case "${1:-}" in
install)
    if [ ! -x "$BIN" ]; then
        echo "tansu: building tansu $VERSION from crates.io (10-40 minutes on 2 cores, once)"
        mkdir -p "$TOOLS"
        # Its own target dir: tansu's build must not evict the relay's.
        CARGO_TARGET_DIR="$CACHE/tansu-build" cargo install tansu --version "$VERSION" \
            --locked --features libsql --root "$TOOLS" --quiet
        rm -rf "$CACHE/tansu-build"
    fi
    ;;
start)
    "$0" install
    if running; then exit 0; fi
    mkdir -p "$STATE"
    echo "tansu: starting on $ADDR:$PORT (data in $STATE)"
    # tansu reads sqlite://PATH relative to its working directory.
    (
        cd "$STATE"
        exec nohup "$BIN" broker \
            --listener-url "tcp://$ADDR:$PORT" \
            --advertised-listener-url "tcp://$ADDR:$PORT" \
            --storage-engine "sqlite://tansu.db" \
            >>"$STATE/tansu.log" 2>&1
    ) &
    echo $! >"$PIDFILE"
    for _ in $(seq 100); do
        port_open && exit 0
        sleep 0.1
    done
    echo "tansu: not listening after 10s; see $STATE/tansu.log" >&2
    exit 1
    ;;
stop)
    if running; then
        pid="$(cat "$PIDFILE")"
        kill "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    ;;
kill)
    if running; then
        pid="$(cat "$PIDFILE")"
        kill -9 "$pid"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
    rm -f "$PIDFILE"
    ;;
reset)
    # Throw away all topics: the SQLite store slows down as it grows, and
    # tests need none of an earlier run's data.
    "$0" kill
    rm -rf "$STATE"
    "$0" start
    ;;
status)
    running && echo "running (pid $(cat "$PIDFILE"))" || { echo "stopped"; exit 1; }
    ;;
*)
    echo "usage: $0 install | start | stop | kill | reset | status" >&2
    exit 2
    ;;
esac
