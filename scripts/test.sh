#!/usr/bin/env bash
# The whole test suite: formatting, lints, the deploy/ checks, unit and
# integration tests against private PostgreSQL, RabbitMQ and tansu servers
# that scripts/servers.sh starts for this run and stops after it (the
# machine's own services are never touched). `.ci/run` runs exactly this.
# Arguments go to `cargo nextest run` (a filter, `--no-fail-fast`, ...).
#
# Then the PostgreSQL version matrix (scripts/postgres-matrix.sh): the
# suite ran on the default server (the machine's newest
# /usr/lib/postgresql/*/bin, or OUTBOX_TEST_PG_BIN); the version-sensitive
# tests (nextest profile pg-matrix) run again on each other major of 13 to
# 18. OUTBOX_TEST_PG_MATRIX picks the majors ("14 17"); empty skips the
# matrix. With arguments (a filter) the matrix runs only when
# OUTBOX_TEST_PG_MATRIX is set. It does not run when the suite failed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Inside `scripts/servers.sh run` already: use its servers (no matrix).
if [ -z "${OUTBOX_TEST_PG_URL:-}" ]; then
    scripts/servers.sh run --kafka --browser -- "$0" "$@" || exit $?
    if [ -n "${OUTBOX_TEST_PG_MATRIX+set}" ]; then
        matrix="$OUTBOX_TEST_PG_MATRIX"
    elif [ $# -gt 0 ]; then
        matrix=""
    else
        default_bin="${OUTBOX_TEST_PG_BIN:-${OUTBOX_RELAY_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}}"
        default_major="$("$default_bin/postgres" -V | awk '{print $3}' | cut -d. -f1)"
        matrix=""
        for major in 13 14 15 16 17 18; do
            [ "$major" = "$default_major" ] || matrix="$matrix $major"
        done
    fi
    if [ -z "${matrix// /}" ]; then
        echo "test: PostgreSQL version matrix skipped (OUTBOX_TEST_PG_MATRIX)"
        exit 0
    fi
    # shellcheck disable=SC2086 # a list of majors
    exec scripts/postgres-matrix.sh $matrix
fi

# Reuse a target directory outside the clone, so a fresh clone on a machine
# that built before only rebuilds what changed.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
mkdir -p "$CARGO_TARGET_DIR"

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings
# deploy/: alerting rules, compose, Kubernetes and dashboard files (no Docker).
scripts/check_deploy.sh
# Test binaries and tests run in parallel, each test in its own process;
# .config/nextest.toml says which few are kept apart and why.
cargo nextest run --locked --all-targets "$@"
# nextest does not run doc tests.
cargo test --locked --doc
# The benchmark harness is outside the default members: its lints and unit
# tests (the consumer checker), no benchmark run.
cargo clippy --locked -p outbox-bench --all-targets -- -D warnings
cargo test --locked -p outbox-bench
