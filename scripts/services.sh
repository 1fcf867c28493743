#!/usr/bin/env bash
# Makes sure the services the relay and its tests talk to are installed and
# running on this (Debian) machine: PostgreSQL with wal_level=logical and
# trust auth for postgres on 127.0.0.1, and RabbitMQ with guest/guest.
# Idempotent: prints one line per thing it had to do, nothing else.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
say() { echo "services: $*"; }

apt_updated=""
install_pkg() {
    if ! dpkg -s "$1" >/dev/null 2>&1; then
        if [ -z "$apt_updated" ]; then
            $SUDO apt-get update -qq
            apt_updated=1
        fi
        say "installing $1"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
    fi
}

# From /, so a private working directory (a mktemp clone) is no bother.
as_postgres() { (cd / && $SUDO runuser -u postgres -- "$@"); }

install_pkg curl

# --- PostgreSQL --------------------------------------------------------------
install_pkg postgresql
PG_VERSION="$(ls /etc/postgresql | sort -n | tail -1)"
pg_online() { pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" {print $4}' | grep -q online; }
if ! pg_online; then
    say "starting PostgreSQL $PG_VERSION"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start
fi

restart=""
if [ "$(as_postgres psql -XAtc 'SHOW wal_level')" != "logical" ]; then
    say "setting wal_level = logical"
    as_postgres psql -Xqc "ALTER SYSTEM SET wal_level = logical"
    restart=1
fi
for setting in max_replication_slots max_wal_senders; do
    if [ "$(as_postgres psql -XAtc "SHOW $setting")" -lt 10 ]; then
        say "setting $setting = 10"
        as_postgres psql -Xqc "ALTER SYSTEM SET $setting = 10"
        restart=1
    fi
done
if ! psql -XAtq -h 127.0.0.1 -U postgres -d postgres -w -c 'SELECT 1' >/dev/null 2>&1; then
    hba="$(as_postgres psql -XAtc 'SHOW hba_file')"
    say "allowing trust auth for postgres from 127.0.0.1 in $hba (a test machine)"
    $SUDO sed -i '1i host all postgres 127.0.0.1/32 trust\nhost all postgres ::1/128 trust' "$hba"
    as_postgres psql -XAtqc 'SELECT pg_reload_conf()' >/dev/null
fi
if [ -n "$restart" ]; then
    say "restarting PostgreSQL $PG_VERSION"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main restart
fi
for _ in $(seq 50); do
    psql -XAtq -h 127.0.0.1 -U postgres -d postgres -w -c 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.2
done
psql -XAtq -h 127.0.0.1 -U postgres -d postgres -w -c 'SELECT 1' >/dev/null

# --- RabbitMQ ----------------------------------------------------------------
install_pkg rabbitmq-server
if ! $SUDO rabbitmqctl -q status >/dev/null 2>&1; then
    say "starting RabbitMQ"
    $SUDO rabbitmq-server -detached
fi
$SUDO timeout 120 rabbitmqctl -q await_startup >/dev/null
if ! $SUDO rabbitmqctl -q list_users 2>/dev/null | grep -q '^guest'; then
    say "adding RabbitMQ user guest"
    $SUDO rabbitmqctl -q add_user guest guest
    $SUDO rabbitmqctl -q set_user_tags guest administrator
    $SUDO rabbitmqctl -q set_permissions -p / guest '.*' '.*' '.*'
fi

# --- Kafka-protocol broker --------------------------------------------------
"$(dirname "$0")/tansu.sh" start
