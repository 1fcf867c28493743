#!/usr/bin/env bash
# The whole test suite: services up, formatting, lints, the deploy/ checks,
# unit and integration tests against the real PostgreSQL and RabbitMQ.
# `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh
# A fresh Kafka-protocol broker store for every run.
scripts/tansu.sh reset

# Reuse a target directory outside the clone, so a fresh clone on a machine
# that built before only rebuilds what changed.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
mkdir -p "$CARGO_TARGET_DIR"

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings
# deploy/: alerting rules, compose, Kubernetes and dashboard files (no Docker).
scripts/check_deploy.sh
# Test binaries run one after another; the disruptive ones (broker stop,
# Postgres restart) rely on that, and on one test per file.
cargo test --locked --all-targets -- --test-threads=1
# The benchmark harness is outside the default members: its lints and unit
# tests (the consumer checker), no benchmark run.
cargo clippy --locked -p outbox-bench --all-targets -- -D warnings
cargo test --locked -p outbox-bench
