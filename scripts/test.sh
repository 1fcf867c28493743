#!/usr/bin/env bash
# The whole test suite: formatting, lints, the deploy/ checks, unit and
# integration tests against private PostgreSQL, RabbitMQ and tansu servers
# that scripts/servers.sh starts for this run and stops after it (the
# machine's own services are never touched). `.ci/run` runs exactly this.
# Arguments go to `cargo nextest run` (a filter, `--no-fail-fast`, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

# Inside `scripts/servers.sh run` already: use its servers.
if [ -z "${OUTBOX_TEST_PG_URL:-}" ]; then
    exec scripts/servers.sh run --kafka -- "$0" "$@"
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
