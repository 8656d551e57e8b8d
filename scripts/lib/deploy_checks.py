"""Offline checks of the deployment artefacts:

- `helm lint --strict` of helm/festival (Helm compiled into the helm-python-sdk wheel);
- rendering with default values and with values-production.yaml, each validated by
  `kubernetes-validate --strict`;
- every service in services/ has a Deployment with grpc readiness and liveness probes,
  a migration Job running its `migrate` subcommand, a Service, an HPA, a PDB and a
  NetworkPolicy; the gateway has its Deployment and Ingress;
- rendered with production settings (FESTIVAL_ENV=production: the default values and
  values-production.yaml), every service's Deployment and migration Job pass the
  services' own production start-up checks as far as a render can tell: NATS over TLS
  (tls:// or NATS__REQUIRE_TLS) with the service's own user and password from a Secret
  (no two services share one), a CA file only where one is mounted, Redis and database
  URLs from Secrets (or, written inline, with a password / sslmode=verify-full); the
  gateway's Redis URL likewise;
- compose.yaml: every container has a health check, every service and the gateway are
  present and wait for healthy dependencies, services get their database and NATS;
- every crate in services/ is wired in by name everywhere a service is listed by hand:
  the root Cargo.toml's workspace members, the chart's `services:` in values.yaml, the
  gateway's default upstreams (gateway/src/config.rs) and a section of docs/API.md
  (plain file reads, run before the slow Helm checks).

usage: deploy_checks.py   (from the repository root)
"""

import fnmatch
import glob
import os
import re
import subprocess
import sys
import tempfile
import tomllib

import helm_python
import yaml

CHART = "helm/festival"


def fail(msg):
    print(f"DEPLOY CHECK FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def services():
    return sorted(d for d in os.listdir("services") if os.path.isfile(os.path.join("services", d, "Cargo.toml")))


def gateway_upstreams():
    """The upstream names of the gateway's default configuration (gateway/src/config.rs)."""
    source = open("gateway/src/config.rs").read()
    block = re.search(r"upstreams:\s*BTreeMap::from\(\[(.*?)\]\)", source, re.S)
    if not block:
        fail("gateway/src/config.rs: no default upstreams (`upstreams: BTreeMap::from([...])`) to check services against")
    return set(re.findall(r'\(\s*"([\w-]+)"\.to_owned\(\)', block.group(1)))


def check_wiring():
    """Every crate in services/ is named where a service is listed by hand (compose.yaml is
    covered by check_compose). Reports every gap of every service at once."""
    with open("Cargo.toml", "rb") as f:
        members = tomllib.load(f).get("workspace", {}).get("members", [])
    with open(f"{CHART}/values.yaml") as f:
        chart = (yaml.safe_load(f) or {}).get("services") or {}
    upstreams = gateway_upstreams()
    api_doc = open("docs/API.md").read()
    gaps = []
    for svc in services():
        missing = []
        if not any(fnmatch.fnmatchcase(f"services/{svc}", m.rstrip("/")) for m in members):
            missing.append("Cargo.toml [workspace] members")
        if svc not in chart:
            missing.append(f"{CHART}/values.yaml `services:`")
        if svc not in upstreams:
            missing.append("the gateway's default upstreams in gateway/src/config.rs")
        if not re.search(rf"^## .*`festival\.{re.escape(svc)}\.v1\.\w+`", api_doc, re.M):
            missing.append(f"docs/API.md (a section headed `## <Name> (festival.{svc}.v1.<Name>Service)`)")
        if missing:
            gaps.append(f"services/{svc} is missing from: " + "; ".join(missing))
    if gaps:
        fail("a service is not wired in (see docs/NEW_SERVICE.md):\n  " + "\n  ".join(gaps))


def lint():
    result = helm_python.lint(CHART, strict=True)
    problems = result.get("errors", []) + [m for m in result.get("messages", []) if m.get("severity", 0) >= 2]
    if problems:
        fail(f"helm lint --strict: {problems}")


def render(values_file):
    values = {}
    if values_file:
        with open(values_file) as f:
            values = yaml.safe_load(f)
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(values, name="festival", namespace="festival", is_install=True)
    docs = []
    for text in rendered.values():
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump_all(docs, f)
        path = f.name
    check = subprocess.run(["kubernetes-validate", "--strict", path], capture_output=True, text=True, env=os.environ)
    if check.returncode != 0:
        fail(f"kubernetes-validate --strict ({values_file or 'default values'}):\n{check.stdout}{check.stderr}")
    os.unlink(path)
    return docs


def find(docs, kind, name):
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def check_chart(docs, label):
    for svc in services():
        name = f"festival-{svc}"
        dep = find(docs, "Deployment", name)
        if not dep:
            fail(f"{label}: no Deployment for services/{svc}")
        container = dep["spec"]["template"]["spec"]["containers"][0]
        for probe in ("readinessProbe", "livenessProbe"):
            if "grpc" not in container.get(probe, {}):
                fail(f"{label}: {name} {probe} is not a grpc.health.v1 probe")
        job = find(docs, "Job", f"{name}-migrate")
        if not job:
            fail(f"{label}: no migration Job for services/{svc}")
        migrate = job["spec"]["template"]["spec"]["containers"][0]
        if migrate.get("args") != ["migrate"] or "pre-upgrade" not in job["metadata"]["annotations"].get("helm.sh/hook", ""):
            fail(f"{label}: {name}-migrate must run `migrate` before install and upgrade")
        for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"):
            if not find(docs, kind, name):
                fail(f"{label}: no {kind} for {name}")
        if container["securityContext"].get("allowPrivilegeEscalation") is not False:
            fail(f"{label}: {name} may escalate privileges")
    gateway = find(docs, "Deployment", "festival-gateway")
    if not gateway or not find(docs, "Ingress", "festival-gateway"):
        fail(f"{label}: the gateway needs a Deployment and an Ingress")
    env = {e["name"]: e.get("value") for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    for svc in services():
        if f"GATEWAY__UPSTREAMS__{svc.upper()}" not in env:
            fail(f"{label}: the gateway has no upstream for {svc}")
    # Behind the ingress, a gateway that trusts no hop sees one client: the ingress.
    if int(env.get("GATEWAY__RATE_LIMIT__TRUSTED_PROXY_HOPS") or "0") < 1:
        fail(f"{label}: the gateway is behind an Ingress but GATEWAY__RATE_LIMIT__TRUSTED_PROXY_HOPS trusts no hop")


def effective(env, prefix, key):
    """The entry that sets `key` for a component: `<PREFIX>__KEY` wins over `FESTIVAL__KEY`."""
    return env.get(f"{prefix}__{key}") or env.get(f"FESTIVAL__{key}")


def secret_ref(entry):
    ref = (entry or {}).get("valueFrom", {}).get("secretKeyRef")
    return (ref["name"], ref["key"]) if ref else None


def check_redis_url(label, who, entry):
    """Redis in production: the URL comes from a Secret or carries a password; no rediss://
    (this release's Redis client has no TLS: a TLS sidecar does it, docs/DEPLOYMENT.md)."""
    if entry is None:
        fail(f"{label}: {who} has no Redis URL (sharedSecretEnv FESTIVAL__REDIS__URL)")
    if secret_ref(entry):
        return
    url = entry.get("value", "")
    if url.startswith(("rediss://", "valkeys://")):
        fail(f"{label}: {who}'s Redis URL is rediss://, which this release cannot connect to (use a TLS sidecar)")
    if not re.match(r"^[a-z+]+://[^/@]*:[^/@]+@", url):
        fail(f"{label}: {who}'s Redis URL {url!r} has no password; production refuses it (put it in a Secret)")


def check_transport(docs, label):
    """Production renders give every service what its production start-up checks demand
    (libs/platform/src/config.rs, CommonConfig::validate): otherwise the pods would refuse
    to start. Per service: NATS over TLS, its own NATS user and password from a Secret,
    Redis with a password, the database URL from a Secret (or inline with sslmode)."""
    nats_secrets = {}
    for svc in services():
        prefix = svc.upper()
        name = f"festival-{svc}"
        for kind, obj in (("Deployment", name), ("Job", f"{name}-migrate")):
            doc = find(docs, kind, obj)
            pod = doc["spec"]["template"]["spec"]
            container = pod["containers"][0]
            env = {e["name"]: e for e in container.get("env", [])}
            if (env.get("FESTIVAL_ENV") or {}).get("value") != "production":
                return False
            where = f"{kind} {obj}"
            url = effective(env, prefix, "NATS__URL")
            require_tls = (effective(env, prefix, "NATS__REQUIRE_TLS") or {}).get("value", "").lower() == "true"
            if not url:
                fail(f"{label}: {where} has no NATS URL (FESTIVAL__NATS__URL)")
            if not require_tls and not (url.get("value") or "").startswith("tls://"):
                fail(f"{label}: {where}: NATS URL {url.get('value')!r} is not tls:// and {prefix}__NATS__REQUIRE_TLS "
                     f"is not true; production refuses it")
            user, password = env.get(f"{prefix}__NATS__USER"), env.get(f"{prefix}__NATS__PASSWORD")
            if not user or not secret_ref(password):
                fail(f"{label}: {where} has no NATS credentials of its own ({prefix}__NATS__USER and "
                     f"{prefix}__NATS__PASSWORD from a Secret: services.{svc}.nats.credentialsSecret)")
            nats_secrets.setdefault(secret_ref(password), set()).add(svc)
            ca = effective(env, prefix, "NATS__CA_FILE")
            if ca:
                mounts = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])]
                if not any(ca.get("value", "").startswith(m) for m in mounts):
                    fail(f"{label}: {where}: NATS CA file {ca.get('value')!r} is not on a mounted volume")
            check_redis_url(label, where, effective(env, prefix, "REDIS__URL"))
            db = env.get(f"{prefix}__DATABASE__URL")
            if not secret_ref(db):
                value = (db or {}).get("value", "")
                if not re.search(r"[?&]ssl-?mode=(require|verify-ca|verify-full)(&|$)", value, re.I):
                    fail(f"{label}: {where}: the database URL is neither a Secret nor has sslmode=verify-full")
    shared = {ref: svcs for ref, svcs in nats_secrets.items() if len(svcs) > 1}
    if shared:
        fail(f"{label}: services share NATS credentials (each needs its own user for its permissions): {shared}")
    gateway = find(docs, "Deployment", "festival-gateway")
    env = {e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    check_redis_url(label, "the gateway", effective(env, "GATEWAY", "REDIS__URL"))
    return True


def check_compose():
    with open("compose.yaml") as f:
        compose = yaml.safe_load(f)
    containers = compose["services"]
    for name, spec in containers.items():
        if "healthcheck" not in spec:
            fail(f"compose.yaml: {name} has no healthcheck")
        for dep, cond in (spec.get("depends_on") or {}).items():
            if dep not in containers or cond.get("condition") != "service_healthy":
                fail(f"compose.yaml: {name} must wait for a healthy {dep}")
    for svc in services() + ["gateway"]:
        if svc not in containers:
            fail(f"compose.yaml: no container for {svc}")
    for svc in services():
        env = containers[svc].get("environment", {})
        for key in (f"{svc.upper()}__DATABASE__URL", "FESTIVAL__NATS__URL", f"{svc.upper()}__GRPC__LISTEN"):
            if key not in env:
                fail(f"compose.yaml: {svc} lacks {key}")
        if containers[svc]["healthcheck"]["test"][-1] != "health":
            fail(f"compose.yaml: {svc} must use its `health` subcommand")
    for infra in ("postgres", "redis", "nats", "otel-collector", "jaeger", "prometheus"):
        if infra not in containers:
            fail(f"compose.yaml: no {infra}")


def check_api_doc():
    """Every REST route of every service's proto appears in docs/API.md."""
    doc = open("docs/API.md").read()
    rule = re.compile(r'rpc (\w+)\([^)]*\) returns \([^)]*\) \{\s*option \(google\.api\.http\) = \{(\w+): "([^"]+)"')
    missing, count = [], 0
    for proto in sorted(glob.glob("proto/festival/*/v1/*.proto")):
        if "/testing/" in proto:
            continue
        for rpc, method, path in rule.findall(open(proto).read()):
            count += 1
            if f"| {method.upper()} `{path}` | {rpc} |" not in doc:
                missing.append(f"{method.upper()} {path} ({rpc})")
    if missing:
        fail("docs/API.md does not list: " + ", ".join(missing))
    return count


def main():
    check_wiring()
    check_compose()
    lint()
    default = render(None)
    check_chart(default, "default values")
    production = render(f"{CHART}/values-production.yaml")
    check_chart(production, "production values")
    if not check_transport(production, "production values"):
        fail("production values: FESTIVAL_ENV is not production")
    secured = ["production values"] + (["default values"] if check_transport(default, "default values") else [])
    routes = check_api_doc()
    print(f"deploy checks: services {services()} wired into Cargo.toml, values.yaml, compose.yaml, the gateway's upstreams "
          f"and docs/API.md; helm lint --strict clean; {len(default)} + {len(production)} manifests valid (kubernetes-validate --strict); "
          f"each with grpc probes and a migration job; {' and '.join(secured)}: every service has its own NATS "
          f"credentials, NATS over TLS, Redis and database URLs from Secrets; compose.yaml healthy-dependency graph OK; "
          f"all {routes} REST routes listed in docs/API.md")


if __name__ == "__main__":
    main()
