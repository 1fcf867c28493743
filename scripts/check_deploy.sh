#!/usr/bin/env bash
# Checks the deployment assets under deploy/ without Docker: the alerting
# rules (promtool check + their unit tests), the Prometheus config, every
# YAML and JSON file, the compose file and Kubernetes example hanging
# together, and the dashboard's queries (scripts/check_deploy.py). Whether
# the metrics they name exist is tests/deploy_metrics.rs's job.
#
# promtool comes from Debian's prometheus package, unpacked (not installed,
# so no Prometheus server is started) into the cache beside tansu; PyYAML
# from python3-yaml if the python3 on PATH lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
say() { echo "check_deploy: $*"; }

TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/outbox-relay/tools/bin"

apt_updated=""
apt_update() {
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
}

promtool_path() {
    if command -v promtool >/dev/null 2>&1; then
        command -v promtool
        return
    fi
    if [ ! -x "$TOOLS/promtool" ]; then
        say "unpacking promtool from Debian's prometheus package into $TOOLS" >&2
        local tmp
        tmp="$(mktemp -d)"
        # apt-get download needs a directory the _apt user may write to.
        chmod 0777 "$tmp"
        if ! (cd "$tmp" && apt-get download -qq prometheus 2>/dev/null); then
            apt_update
            (cd "$tmp" && apt-get download -qq prometheus)
        fi
        mkdir -p "$TOOLS"
        dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -O ./usr/bin/promtool >"$TOOLS/promtool.part"
        chmod 0755 "$TOOLS/promtool.part"
        mv "$TOOLS/promtool.part" "$TOOLS/promtool"
        rm -rf "$tmp"
    fi
    echo "$TOOLS/promtool"
}

python_path() {
    local py
    for py in python3 /usr/bin/python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import yaml' 2>/dev/null; then
            echo "$py"
            return
        fi
    done
    say "installing python3-yaml" >&2
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        python3 python3-yaml >/dev/null
    echo /usr/bin/python3
}

PROMTOOL="$(promtool_path)"
PYTHON="$(python_path)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$PROMTOOL" check rules deploy/prometheus/alerts.yml >/dev/null
"$PROMTOOL" test rules deploy/prometheus/alerts.test.yml >/dev/null
"$PROMTOOL" check config deploy/prometheus/prometheus.yml >/dev/null
"$PYTHON" scripts/check_deploy.py deploy "$work/dashboard-rules.yml"
"$PROMTOOL" check rules "$work/dashboard-rules.yml" >/dev/null
say "alerts, their tests, prometheus.yml, compose, kubernetes and dashboard ok"
