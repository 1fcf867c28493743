#!/usr/bin/env bash
# The PostgreSQL version matrix: for each major given (default 13 14 16 17
# 18), private servers of that version (scripts/servers.sh with the npm
# build that scripts/postgres-versions.sh installs) and the nextest profile
# `pg-matrix` against them: the tests whose SQL, catalog reads or
# replication protocol can differ between versions (.config/nextest.toml
# lists them). Prints a pass/fail line with the time for each version and
# exits non-zero if any failed. scripts/test.sh runs it after the whole
# suite; it reuses the test binaries that run built.
#
#   scripts/postgres-matrix.sh [MAJOR...] [-- NEXTEST_ARGS...]
#
# The Kafka broker is not started: no test of the profile uses Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."

majors=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    majors+=("$1")
    shift
done
[ "${1:-}" = -- ] && shift
[ ${#majors[@]} -gt 0 ] || majors=(13 14 16 17 18)

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/target}"
# The servers of the run that called us (if any) are not this version's.
unset OUTBOX_TEST_PG_URL OUTBOX_TEST_AMQP_URL OUTBOX_TEST_KAFKA_BROKERS OUTBOX_TEST_SERVERS_DIR
unset OUTBOX_TEST_KAFKA OUTBOX_RELAY_PG_BIN

scripts/postgres-versions.sh install "${majors[@]}" >/dev/null

summary=()
failed=0
start_all=$SECONDS
for major in "${majors[@]}"; do
    bin="$(scripts/postgres-versions.sh bin "$major")"
    echo "pg-matrix: PostgreSQL $major ($("$bin/postgres" -V | awk '{print $3}'), $bin)"
    start=$SECONDS
    status=0
    OUTBOX_TEST_PG_BIN="$bin" scripts/servers.sh run -- \
        cargo nextest run --locked --profile pg-matrix "$@" || status=$?
    took=$((SECONDS - start))
    if [ "$status" -eq 0 ]; then
        summary+=("$(printf 'pg-matrix: PostgreSQL %-3s pass  %3dm%02ds' "$major" $((took / 60)) $((took % 60)))")
    else
        failed=$((failed + 1))
        summary+=("$(printf 'pg-matrix: PostgreSQL %-3s FAIL  %3dm%02ds (exit %d)' "$major" $((took / 60)) $((took % 60)) "$status")")
    fi
done
total=$((SECONDS - start_all))
echo
printf '%s\n' "${summary[@]}"
printf 'pg-matrix: %d of %d versions failed; %dm%02ds in all\n' "$failed" "${#majors[@]}" $((total / 60)) $((total % 60))
[ "$failed" -eq 0 ]
