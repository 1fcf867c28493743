"""Parses and cross-checks the files under deploy/ (called by check_deploy.sh).

Every YAML document and JSON file must parse; the compose file, the
Kubernetes example and the Grafana dashboard must hang together (mounted
files exist, probes point at /healthz and /readyz, every panel has a
query). Writes the dashboard's queries, with Grafana's variables filled in,
as a Prometheus rules file, so promtool can check their syntax.

    python3 scripts/check_deploy.py DEPLOY_DIR DASHBOARD_RULES_OUT
"""

import json
import pathlib
import re
import sys

import yaml

problems = []
dashboard_rules = []


def problem(path, text):
    problems.append(f"{path}: {text}")


def load_yaml(path):
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as e:
        problem(path, f"does not parse: {e}")
        return []


def check_compose(path, doc):
    services = doc.get("services", {})
    for name in ["postgres", "rabbitmq", "kafka", "prometheus", "grafana", "loadgen"]:
        if name not in services:
            problem(path, f"no service `{name}`")
    relays = [n for n, s in services.items() if s.get("command") == ["run"]]
    if not relays:
        problem(path, "no relay service (command: [run])")
    if "wal_level=logical" not in " ".join(services.get("postgres", {}).get("command", [])):
        problem(path, "postgres does not run with wal_level=logical")
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problem(path, f"service `{name}` has neither image nor build")
        for dep in service.get("depends_on", []):
            if dep not in services:
                problem(path, f"service `{name}` depends on unknown service `{dep}`")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith(".") and not (path.parent / source).exists():
                problem(path, f"service `{name}` mounts missing {source}")
        for secret in service.get("secrets", []):
            secret_name = secret if isinstance(secret, str) else secret.get("source", "")
            if secret_name not in doc.get("secrets", {}):
                problem(path, f"service `{name}` uses undeclared secret `{secret_name}`")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/")) and source not in doc.get("volumes", {}):
                problem(path, f"service `{name}` mounts undeclared volume `{source}`")
        build = service.get("build")
        if build:
            context = path.parent / build["context"]
            if not (context / build["dockerfile"]).is_file():
                problem(path, f"service `{name}` builds from a missing Dockerfile")


def check_compose_secrets(path, doc):
    for name, secret in doc.get("secrets", {}).items():
        if not (path.parent / secret.get("file", "")).is_file():
            problem(path, f"secret `{name}` has no file {secret.get('file')}")


def check_kubernetes(path, docs):
    kinds = {d.get("kind"): d for d in docs}
    for kind in ["ConfigMap", "Deployment"]:
        if kind not in kinds:
            problem(path, f"no {kind}")
    deployment = kinds.get("Deployment")
    if not deployment:
        return
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    containers = spec["containers"]
    if len(containers) < 2:
        problem(path, "the relay is not beside an application container")
    relay = next((c for c in containers if "outbox-relay" in c["image"]), None)
    if relay is None:
        problem(path, "no outbox-relay container")
        return
    ports = {p["name"]: p["containerPort"] for p in relay.get("ports", [])}
    for probe, route in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
        get = relay.get(probe, {}).get("httpGet", {})
        if get.get("path") != route or get.get("port") not in ports:
            problem(path, f"{probe} is not an httpGet of {route} on a relay port")
    notes = pod["metadata"].get("annotations", {})
    if notes.get("prometheus.io/scrape") != "true" or notes.get("prometheus.io/path") != "/metrics":
        problem(path, "no prometheus.io scrape annotations for /metrics")
    if str(notes.get("prometheus.io/port")) not in {str(p) for p in ports.values()}:
        problem(path, "prometheus.io/port is not the relay's port")
    resources = relay.get("resources", {})
    if not resources.get("requests") or not resources.get("limits"):
        problem(path, "the relay has no resource requests and limits")
    config_maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret"}
    mounts = {}
    for volume in spec.get("volumes", []):
        name = volume.get("configMap", {}).get("name")
        if name and name not in config_maps:
            problem(path, f"volume uses unknown ConfigMap {name}")
        secret = volume.get("secret", {}).get("secretName")
        if secret and secret not in secrets:
            problem(path, f"volume uses unknown Secret {secret}")
        if secret in secrets:
            mounts[volume["name"]] = secrets[secret].get("stringData", {})
    check_secret_files(path, relay, mounts, config_maps)


def check_secret_files(path, relay, mounts, config_maps):
    """Every file under a mounted Secret that the relay's config names is a
    key of that Secret; no password sits in a URL of the config."""
    files = set()
    for mount in relay.get("volumeMounts", []):
        for key in mounts.get(mount["name"], {}):
            files.add(f"{mount['mountPath']}/{key}")
    for config_map in config_maps.values():
        text = config_map.get("data", {}).get("config.toml", "")
        for named in re.findall(r"/run/secrets/[\w.-]+/[\w.-]+", text):
            if named not in files:
                problem(path, f"config names {named}, which no mounted Secret holds")
        for url in re.findall(r'url = "([^"]*)"', text):
            if re.match(r"^\w+://[^/@]*:[^/@]*@", url):
                problem(path, f"a password in the config's URL {url.split('@')[-1]}")


def check_dashboard(path):
    try:
        dashboard = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        problem(path, f"does not parse: {e}")
        return
    panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
    if not panels:
        problem(path, "no panels")
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)):
        problem(path, "panel ids are not unique")
    for panel in panels:
        targets = panel.get("targets", [])
        if not targets:
            problem(path, f"panel `{panel.get('title')}` has no query")
        for target in targets:
            expr = grafana_to_promql(target["expr"])
            record = f"dashboard:{path.stem.replace('-', '_')}_{panel['id']}_{target['refId']}"
            dashboard_rules.append({"record": record, "expr": expr})


def grafana_to_promql(expr):
    """A dashboard query with Grafana's variables replaced by values."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def main():
    deploy = pathlib.Path(sys.argv[1])
    rules_out = pathlib.Path(sys.argv[2])
    for path in sorted(deploy.rglob("*.y*ml")):
        docs = load_yaml(path)
        if path.name == "docker-compose.yml" and docs:
            check_compose(path, docs[0])
            check_compose_secrets(path, docs[0])
        if path.parent.name == "kubernetes":
            check_kubernetes(path, docs)
    for path in sorted(deploy.rglob("*.json")):
        if path.parent.name == "dashboards":
            check_dashboard(path)
        else:
            try:
                json.loads(path.read_text())
            except json.JSONDecodeError as e:
                problem(path, f"does not parse: {e}")
    group = {"name": "dashboards", "rules": dashboard_rules}
    rules_out.write_text(yaml.safe_dump({"groups": [group]}))
    for p in problems:
        print(f"check_deploy: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


main()
