#!/usr/bin/env bash
# The benchmark harness in one command: builds the relay and the harness
# (release), then measures every mode x sink against baselines taken in the
# same run, and writes bench/results/<date>-<commit>.md and .json.
#
#   bench/run.sh                      # the full default matrix (~10 minutes)
#   bench/run.sh --modes polling --sinks stdout --events 50000 --no-steady
#   bench/run.sh --help               # every option
#
# Needs PostgreSQL with wal_level=logical and trust auth, RabbitMQ (the
# --postgres and --amqp options; private ones: `scripts/servers.sh run --
# sh -c 'bench/run.sh --postgres "$OUTBOX_TEST_PG_URL" --amqp "$OUTBOX_TEST_AMQP_URL"'`),
# the tansu binary of scripts/tansu.sh, and pg_recvlogical.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
# Two builds, not one: built together, the harness's dependency features
# would leak into the relay; alone, the relay is the binary users deploy.
cargo build --quiet --locked --release
cargo build --quiet --locked --release -p outbox-bench
exec "$CARGO_TARGET_DIR/release/outbox-bench" "$@"
