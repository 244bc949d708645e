"""deploy/kubernetes, offline: every document validated against the Kubernetes API schemas
(scripts/k8s-validate.mjs, npm kubernetes-models), then cross-checked against the code:
routes, the configuration table, the Dockerfile, docker-compose.yml, the bench results.

The cross-checks are functions from a build (the documents of one kustomization, as the
validator parsed them) to a list of problems, so that the same functions that pass on
the real manifests are shown to fail on deliberately broken copies of them.
"""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import yaml

from harness import REPO, SERVICE_BIN
from test_config_docs import config_table
from test_openapi import ROUTES_C, parse_routes

DEPLOY = REPO / "deploy" / "kubernetes"
OVERLAY = DEPLOY / "overlays" / "prometheus-operator"
BUILDS = [DEPLOY, OVERLAY]
VALIDATOR = REPO / "scripts" / "k8s-validate.mjs"
APP = "gopulse-messages"  # the Deployment, its container, Service, ConfigMap and Secret
TOKEN_SECRET = "gopulse-messages-api-token"  # mounted; API_TOKEN_FILE points into it
PGBOUNCER = "pgbouncer"
# Paths the manifests name before the code routes them, and the issue that adds each.
# Once one is routed the check fails, so that it leaves this list (and the manifests'
# comments that say it is missing).
PENDING_PATHS: dict[str, str] = {}
# Values of a Secret template: empty, or a visible placeholder.
PLACEHOLDER = "CHANGE_ME"
Problems = list[str]


# ---------------------------------------------------------------- loading


def node_ready() -> str | None:
    """Why the validator cannot run, or None."""
    if not (REPO / "node_modules" / "kubernetes-models").is_dir():
        return ("node_modules/kubernetes-models is missing: run `make docs-deps` (npm ci "
                "of the versions pinned in package-lock.json)")
    if shutil.which("node") is None:
        return "node is not installed (packages.txt gives the Node.js that npm needs)"
    return None


def run_validator(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(VALIDATOR), *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=120)


def build_key(path: Path | str) -> str:
    """How the validator names a build: its path relative to the repository."""
    return "<stdin>" if str(path) == "-" else (os.path.relpath(path, REPO) or ".")


def load_builds(paths: list[Path], stdin: str | None = None
                ) -> dict[str, tuple[list[dict], list[str]]]:
    """build_key(path) -> (documents as {source, object}, validator problems) for each path,
    from one run of the validator."""
    p = run_validator("--dump", *map(str, paths), stdin=stdin)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        raise AssertionError(f"k8s-validate.mjs failed ({p.returncode}):\n{p.stderr}")
    out = json.loads(p.stdout)
    builds: dict[str, tuple[list[dict], list[str]]] = {build_key(x): ([], []) for x in paths}
    for d in out["documents"]:
        builds[d["build"]][0].append(d)
    for prob in out["problems"]:
        builds[prob["build"]][1].append(prob["text"])
    return builds


def load_build(path: Path | str, stdin: str | None = None) -> tuple[list[dict], list[str]]:
    """(documents as {source, object}, validator problems) of one build."""
    return load_builds([Path(path) if path != "-" else path], stdin)[build_key(path)]


def duration_s(text: str) -> float:
    """The binary's duration syntax ("5s", "1m30s", "250ms", a bare number of seconds)."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


class Build:
    """The documents of one build, with the lookups the checks need."""

    def __init__(self, documents: list[dict]):
        self.docs = [d["object"] for d in documents]
        self.sources = [d["source"] for d in documents]

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def get(self, kind: str, name: str) -> dict | None:
        for d in self.all(kind):
            if d.get("metadata", {}).get("name") == name:
                return d
        return None

    def need(self, kind: str, name: str) -> dict:
        d = self.get(kind, name)
        if d is None:
            raise LookupError(f"no {kind} {name} in the build")
        return d

    def pod(self, deployment: str) -> dict:
        return self.need("Deployment", deployment)["spec"]["template"]

    def container(self, deployment: str, name: str) -> dict:
        for c in self.pod(deployment)["spec"].get("containers", []):
            if c.get("name") == name:
                return c
        raise LookupError(f"Deployment {deployment} has no container {name}")

    def secret_values(self, name: str) -> dict[str, str] | None:
        s = self.get("Secret", name)
        if s is None:
            return None
        out = {k: base64.b64decode(re.sub(r"\s", "", v)).decode()
               for k, v in (s.get("data") or {}).items()}
        out.update(s.get("stringData") or {})
        return out

    def env(self, deployment: str, container: str
            ) -> tuple[dict[str, str], dict[str, str], Problems]:
        """(name -> value, name -> where it comes from, problems) of a container's
        environment: envFrom (ConfigMaps, Secrets of the build) then env, as the kubelet
        builds it. A reference to an object outside the build is a problem."""
        c = self.container(deployment, container)
        values: dict[str, str] = {}
        origin: dict[str, str] = {}
        problems: Problems = []
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                ref = src["configMapRef"]["name"]
                cm = self.get("ConfigMap", ref)
                if cm is None:
                    problems.append(f"envFrom: no ConfigMap {ref} in the build")
                    continue
                items = cm.get("data") or {}
                kind = "ConfigMap"
            elif "secretRef" in src:
                ref = src["secretRef"]["name"]
                items = self.secret_values(ref)
                if items is None:
                    problems.append(f"envFrom: no Secret {ref} in the build")
                    continue
                kind = "Secret"
            else:
                problems.append(f"envFrom: neither configMapRef nor secretRef: {src}")
                continue
            for k, v in items.items():
                values[src.get("prefix", "") + k] = v
                origin[src.get("prefix", "") + k] = f"{kind} {ref}"
        for e in c.get("env", []):
            if "value" in e:
                values[e["name"]] = e["value"]
                origin[e["name"]] = "env"
            else:
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    vals = self.secret_values(r["name"]) or {}
                    if r["key"] not in vals:
                        problems.append(f"env {e['name']}: no key {r['key']} in Secret "
                                        f"{r['name']}")
                    values[e["name"]] = vals.get(r["key"], "")
                    origin[e["name"]] = f"Secret {r['name']}"
                elif "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    cm = self.get("ConfigMap", r["name"]) or {}
                    if r["key"] not in (cm.get("data") or {}):
                        problems.append(f"env {e['name']}: no key {r['key']} in ConfigMap "
                                        f"{r['name']}")
                    values[e["name"]] = (cm.get("data") or {}).get(r["key"], "")
                    origin[e["name"]] = f"ConfigMap {r['name']}"
                else:
                    problems.append(f"env {e['name']}: neither a value nor a ConfigMap or "
                                    f"Secret key")
        return values, origin, problems


def named_port(container: dict, port: Any) -> int | None:
    """A probe's or Service's port (a number or a container port's name) as a number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def effective_security(pod_spec: dict, container: dict) -> dict:
    """The container's securityContext over the pod's (the container's wins)."""
    out = {k: v for k, v in (pod_spec.get("securityContext") or {}).items()
           if k in ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile")}
    out.update(container.get("securityContext") or {})
    return out


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---------------------------------------------------------------- what the code says


class Code:
    """Facts from the code that the manifests must agree with (read once)."""

    def __init__(self):
        self.table = {r["name"]: r for r in config_table()}
        self.routes = parse_routes(ROUTES_C.read_text())
        dockerfile = (REPO / "Dockerfile").read_text()
        self.uid = int(re.search(r"--uid (\d+)", dockerfile).group(1))
        self.gid = int(re.search(r"--gid (\d+)", dockerfile).group(1))
        self.user = re.search(r"^USER (\S+)", dockerfile, re.M).group(1)
        self.expose = [int(p) for p in re.findall(r"^EXPOSE (\d+)", dockerfile, re.M)]
        self.version = re.search(r"^ARG VERSION=(\S+)", dockerfile, re.M).group(1)
        compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
        self.compose_images = {s.get("image") for s in compose["services"].values()
                               if "build" in s}

    def routed(self, path: str, method: str = "GET") -> bool:
        for route, methods in self.routes:
            hit = (path.startswith(route[:-1]) if route.endswith("*") else path == route)
            if hit and method in methods:
                return True
        return False

    def default(self, name: str) -> str:
        return self.table[name]["default"]

    def setting_s(self, env: dict[str, str], name: str) -> float:
        """A duration setting as the service would take it: env, else the default."""
        return duration_s(env.get(name) or self.default(name))


# ---------------------------------------------------------------- the cross-checks


def check_probes(b: Build, code: Code) -> Problems:
    out: Problems = []
    c = b.container(APP, APP)
    want = {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}
    for probe, path in want.items():
        get = (c.get(probe) or {}).get("httpGet")
        if not get:
            out.append(f"{probe}: missing, or not an httpGet")
            continue
        if get.get("path") != path:
            out.append(f"{probe}: path {get.get('path')} (want {path})")
        if not code.routed(get.get("path", "")):
            out.append(f"{probe}: GET {get.get('path')} is not in the router table "
                       f"({ROUTES_C.relative_to(REPO)})")
        if named_port(c, get.get("port")) != int(code.default("PORT")):
            out.append(f"{probe}: port {get.get('port')} is not the service's port")
    return out


def check_port(b: Build, code: Code) -> Problems:
    out: Problems = []
    c = b.container(APP, APP)
    env, _, _ = b.env(APP, APP)
    port = int(env.get("PORT") or code.default("PORT"))
    if port != int(code.default("PORT")):
        out.append(f"PORT is set to {port}: keep the default {code.default('PORT')}")
    ports = c.get("ports", [])
    if [p.get("containerPort") for p in ports] != [port]:
        out.append(f"container ports {ports}: want one, {port}")
    if port not in code.expose:
        out.append(f"port {port} is not the Dockerfile's EXPOSE {code.expose}")
    svc = b.need("Service", APP)
    for p in svc["spec"]["ports"]:
        if named_port(c, p.get("targetPort", p.get("port"))) != port:
            out.append(f"Service {APP} port {p}: targetPort is not the container's {port}")
    return out


def check_env(b: Build, code: Code) -> Problems:
    env, origin, out = b.env(APP, APP)
    for name in env:
        row = code.table.get(name)
        if row is None:
            out.append(f"{name} ({origin[name]}) is not in the configuration table "
                       f"(src/config.c)")
        elif row["image"]:
            out.append(f"{name} ({origin[name]}): the image sets it (Dockerfile ENV)")
    # The ones whose default cannot work in a cluster (they name localhost) must be set.
    required = [n for n, r in code.table.items() if "localhost" in r["default"]]
    if not required:
        out.append("no setting defaults to localhost: the check of required ones is stale")
    for name in required + ["SHUTDOWN_DELAY"]:
        if not env.get(name):
            out.append(f"{name} is not set (its default, {code.default(name)!r}, does not "
                       f"work in a cluster)")
    return out


def check_secrets(b: Build, code: Code) -> Problems:
    out: Problems = []
    env, origin, _ = b.env(APP, APP)
    for s in b.all("Secret"):
        name = s["metadata"]["name"]
        for k, v in (b.secret_values(name) or {}).items():
            if v and PLACEHOLDER not in v:
                out.append(f"Secret {name} {k}: a value that is not a placeholder "
                           f"(empty or {PLACEHOLDER})")
    secret_rows = [n for n, r in code.table.items() if r["secret"] or r["kind"] == "dsn"]
    for name in secret_rows:
        via_file = f"{name}_FILE"
        if name in env:
            if not origin[name].startswith("Secret "):
                out.append(f"{name} comes from {origin[name]}: a secret belongs in a Secret")
        elif env.get(via_file):
            path = env[via_file]
            pod = b.pod(APP)["spec"]
            mounts = b.container(APP, APP).get("volumeMounts", [])
            secret_vols = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
            if not any(m["name"] in secret_vols and path.startswith(m["mountPath"].rstrip("/")
                                                                    + "/")
                       for m in mounts):
                out.append(f"{via_file}={path} is not in a mounted Secret volume")
        else:
            out.append(f"{name} (a secret of the configuration table) is not in the Secret "
                       f"template" + (f" (nor {via_file})" if via_file in code.table else ""))
    return out


def check_shutdown(b: Build, code: Code) -> Problems:
    out: Problems = []
    env, _, _ = b.env(APP, APP)
    delay = code.setting_s(env, "SHUTDOWN_DELAY")
    timeout = code.setting_s(env, "SHUTDOWN_TIMEOUT")
    grace = b.pod(APP)["spec"].get("terminationGracePeriodSeconds", 30)
    if not grace > delay + timeout:
        out.append(f"terminationGracePeriodSeconds {grace} is not above SHUTDOWN_DELAY "
                   f"{delay:g} s + SHUTDOWN_TIMEOUT {timeout:g} s")
    if delay <= 0:
        out.append("SHUTDOWN_DELAY is 0: the listener would close while load balancers "
                   "still route here")
    ready = b.container(APP, APP).get("readinessProbe") or {}
    notice = ready.get("periodSeconds", 10) * ready.get("failureThreshold", 3)
    if notice > delay:
        out.append(f"the readiness probe notices a 503 only after {notice} s, beyond "
                   f"SHUTDOWN_DELAY ({delay:g} s)")
    return out


def check_security(b: Build, code: Code) -> Problems:
    out: Problems = []
    for d in b.all("Deployment"):
        pod = d["spec"]["template"]["spec"]
        name = d["metadata"]["name"]
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(key):
                out.append(f"{name}: {key}")
        if pod.get("automountServiceAccountToken") is not False:
            out.append(f"{name}: automountServiceAccountToken is not false")
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            sc = effective_security(pod, c)
            where = f"{name}/{c['name']}"
            want = {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False}
            for k, v in want.items():
                if sc.get(k) is not v:
                    out.append(f"{where}: {k} is {sc.get(k)!r} (want {v!r})")
            if sc.get("privileged"):
                out.append(f"{where}: privileged")
            if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
                out.append(f"{where}: capabilities.drop is not [ALL]")
            if (sc.get("capabilities") or {}).get("add"):
                out.append(f"{where}: capabilities added")
            if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                out.append(f"{where}: seccompProfile is not RuntimeDefault")
            if not isinstance(sc.get("runAsUser"), int) or sc["runAsUser"] == 0:
                out.append(f"{where}: runAsUser is not a non-zero uid")
    sc = effective_security(b.pod(APP)["spec"], b.container(APP, APP))
    if (sc.get("runAsUser"), sc.get("runAsGroup")) != (code.uid, code.gid):
        out.append(f"{APP}: runAsUser/runAsGroup {sc.get('runAsUser')}/{sc.get('runAsGroup')}"
                   f" are not the Dockerfile's {code.uid}/{code.gid}")
    if code.user != f"{code.uid}:{code.gid}":
        out.append(f"the Dockerfile's USER {code.user} is not {code.uid}:{code.gid}")
    return out


def check_image(b: Build, code: Code) -> Problems:
    out: Problems = []
    image = b.container(APP, APP).get("image", "")
    m = re.fullmatch(r"(?:(.+)/)?([^/:@]+):([^/:@]+)", image)
    if not m:
        out.append(f"{APP} image {image!r}: want name:tag (tags only, no digest)")
        return out
    names = {re.sub(r":[^/]*$", "", i).rsplit("/", 1)[-1] for i in code.compose_images}
    if names != {m.group(2)}:
        out.append(f"{APP} image name {m.group(2)!r} is not what docker-compose.yml builds "
                   f"({sorted(code.compose_images)})")
    if m.group(3) != code.version:
        out.append(f"{APP} image tag {m.group(3)!r} is not the Dockerfile's VERSION "
                   f"{code.version!r}")
    for d in b.all("Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            tag = re.search(r":([^/:@]+)$", c.get("image", ""))
            if not tag or tag.group(1) == "latest" or "@" in c.get("image", ""):
                out.append(f"{d['metadata']['name']}/{c['name']} image {c.get('image')!r} is "
                           f"not pinned by a tag")
            if c.get("imagePullPolicy") != "IfNotPresent":
                out.append(f"{d['metadata']['name']}/{c['name']}: imagePullPolicy is not "
                           f"IfNotPresent")
    return out


def check_rollout(b: Build, code: Code) -> Problems:
    out: Problems = []
    for name in (APP, PGBOUNCER):
        d = b.need("Deployment", name)
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if not selects(d["spec"]["selector"].get("matchLabels", {}), labels):
            out.append(f"Deployment {name}: its selector does not select its pods")
        strategy = d["spec"].get("strategy", {})
        if (strategy.get("type") != "RollingUpdate"
                or strategy.get("rollingUpdate", {}).get("maxUnavailable") != 0):
            out.append(f"Deployment {name}: not RollingUpdate with maxUnavailable 0")
        pdbs = [p for p in b.all("PodDisruptionBudget")
                if selects(p["spec"].get("selector", {}).get("matchLabels", {}), labels)]
        if [p["spec"].get("minAvailable") for p in pdbs] != [1]:
            out.append(f"Deployment {name}: want one PodDisruptionBudget with minAvailable 1")
        if not any(selects(s["spec"].get("selector", {}), labels) for s in b.all("Service")):
            out.append(f"Deployment {name}: no Service selects its pods")
        if d["spec"].get("replicas", 1) < 2:
            out.append(f"Deployment {name}: fewer than 2 replicas (with minAvailable 1, a "
                       f"node drain would stop it)")
    if b.need("Deployment", APP)["spec"].get("replicas") != 2:
        out.append(f"Deployment {APP}: want 2 replicas")
    return out


def bench_figures(text: str) -> dict[str, float]:
    """RSS figures (MiB) of a bench/results table."""
    rows = {}
    for label, key in (("RSS idle, MiB", "idle"), ("RSS with 1,000 webhook requests", "inflight"),
                       ("RSS after the 100,000 drain", "after_drain")):
        m = re.search(r"^\| " + re.escape(label) + r"[^|]*\| ([\d.]+)", text, re.M)
        if m:
            rows[key] = float(m.group(1))
    return rows


def mib(quantity: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi)?", str(quantity))
    if not m:
        raise ValueError(f"memory quantity {quantity!r}")
    return float(m.group(1)) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 2**20}[m.group(2)]


def cpu(quantity: Any) -> float:
    q = str(quantity)
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def check_resources(b: Build, code: Code, deployment_text: str | None = None) -> Problems:
    out: Problems = []
    for d in b.all("Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            r = c.get("resources") or {}
            where = f"{d['metadata']['name']}/{c['name']}"
            for kind in ("requests", "limits"):
                for res in ("cpu", "memory"):
                    if res not in (r.get(kind) or {}):
                        out.append(f"{where}: no {res} in resources.{kind}")
            if out:
                continue
            if mib(r["requests"]["memory"]) > mib(r["limits"]["memory"]):
                out.append(f"{where}: memory request above its limit")
            if cpu(r["requests"]["cpu"]) > cpu(r["limits"]["cpu"]):
                out.append(f"{where}: cpu request above its limit")
    if out:
        return out
    # Sized from make bench: the comment cites the results file and its figures, and the
    # numbers hold what was measured.
    text = deployment_text if deployment_text is not None else \
        (DEPLOY / "base" / "deployment.yaml").read_text()
    cited = re.search(r"bench/results/([\w.-]+\.md)", text)
    if not cited or not (REPO / "bench" / "results" / cited.group(1)).is_file():
        return [f"{APP}: the resources comment cites no bench/results file that exists"]
    figures = bench_figures((REPO / "bench" / "results" / cited.group(1)).read_text())
    if set(figures) != {"idle", "inflight", "after_drain"}:
        return [f"bench/results/{cited.group(1)}: cannot read its RSS rows ({figures})"]
    for key, value in figures.items():
        if f"{value:g} MiB" not in text:
            out.append(f"{APP}: the resources comment does not cite RSS {key} {value:g} MiB")
    r = b.container(APP, APP)["resources"]
    if mib(r["requests"]["memory"]) < figures["after_drain"]:
        out.append(f"{APP}: memory request below the RSS after a drain "
                   f"({figures['after_drain']} MiB)")
    if mib(r["limits"]["memory"]) < figures["inflight"]:
        out.append(f"{APP}: memory limit below the RSS with 1,000 requests in flight "
                   f"({figures['inflight']} MiB)")
    if cpu(r["limits"]["cpu"]) < 1:
        out.append(f"{APP}: a cpu limit below one core throttles a full-speed drain")
    return out


def check_pgbouncer(b: Build, code: Code) -> Problems:
    out: Problems = []
    env, _, _ = b.env(APP, APP)
    dsn = urllib.parse.urlsplit(env.get("DATABASE_DSN", ""))
    svc = b.need("Service", PGBOUNCER)
    ports = {p["port"] for p in svc["spec"]["ports"]}
    if dsn.hostname != PGBOUNCER or dsn.port not in ports:
        out.append(f"DATABASE_DSN points at {dsn.hostname}:{dsn.port}, not the Service "
                   f"{PGBOUNCER} ({sorted(ports)})")
    ini = configparser.ConfigParser(inline_comment_prefixes=None, strict=True)
    ini.read_string(b.need("ConfigMap", PGBOUNCER)["data"]["pgbouncer.ini"])
    if ini.get("pgbouncer", "pool_mode", fallback=None) != "transaction":
        out.append("pgbouncer.ini: pool_mode is not transaction")
    if dsn.path.lstrip("/") not in ini["databases"]:
        out.append(f"pgbouncer.ini [databases] has no {dsn.path.lstrip('/')}")
    c = b.container(PGBOUNCER, PGBOUNCER)
    listen = ini.getint("pgbouncer", "listen_port", fallback=6432)
    for p in svc["spec"]["ports"]:
        if named_port(c, p.get("targetPort", p["port"])) != listen:
            out.append(f"Service {PGBOUNCER}: targetPort is not listen_port {listen}")
    users = b.secret_values(PGBOUNCER) or {}
    listed = re.findall(r'^"([^"]+)"', users.get("userlist.txt", ""), re.M)
    if dsn.username not in listed:
        out.append(f"DATABASE_DSN's user {dsn.username} is not in PgBouncer's userlist.txt")
    return out


def check_metrics(b: Build, code: Code) -> Problems:
    out: Problems = []

    def path_ok(path: str, where: str) -> None:
        if path in PENDING_PATHS:
            if code.routed(path):
                out.append(f"{where}: {path} is routed now: drop it from PENDING_PATHS "
                           f"(and the comments that say it arrives with "
                           f"{PENDING_PATHS[path]})")
        elif not code.routed(path):
            out.append(f"{where}: GET {path} is not in the router table")

    ann = b.pod(APP)["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true":
        out.append("pod annotation prometheus.io/scrape is not \"true\"")
    if ann.get("prometheus.io/port") != code.default("PORT"):
        out.append(f"pod annotation prometheus.io/port is not {code.default('PORT')}")
    path_ok(ann.get("prometheus.io/path", "/metrics"), "prometheus.io/path")
    svc = b.need("Service", APP)
    for sm in b.all("ServiceMonitor"):
        if not selects(sm["spec"]["selector"].get("matchLabels", {}),
                       svc["metadata"].get("labels", {})):
            out.append(f"ServiceMonitor {sm['metadata']['name']} does not select Service {APP}")
        for ep in sm["spec"].get("endpoints", []):
            if ep.get("port") not in {p.get("name") for p in svc["spec"]["ports"]}:
                out.append(f"ServiceMonitor endpoint port {ep.get('port')} is not a port name "
                           f"of Service {APP}")
            path_ok(ep.get("path", "/metrics"), "ServiceMonitor endpoint path")
    return out


CHECKS: dict[str, Callable[[Build, Code], Problems]] = {
    "probes": check_probes, "port": check_port, "env": check_env, "secrets": check_secrets,
    "shutdown": check_shutdown, "security": check_security, "image": check_image,
    "rollout": check_rollout, "resources": check_resources, "pgbouncer": check_pgbouncer,
    "metrics": check_metrics,
}


# ---------------------------------------------------------------- tests


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = node_ready()
        if why:
            raise AssertionError(why)
        cls.code = Code()
        loaded = load_builds(BUILDS)
        cls.builds = {path: (Build(loaded[build_key(path)][0]), loaded[build_key(path)][1])
                      for path in BUILDS}

    def copy(self) -> Path:
        """A writable copy of deploy/kubernetes (under build/, removed after the test)."""
        (REPO / "build").mkdir(exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="k8s-", dir=REPO / "build"))
        self.addCleanup(shutil.rmtree, tmp, True)
        shutil.copytree(DEPLOY, tmp / "kubernetes")
        return tmp / "kubernetes"

    def broken(self, cases: list[tuple]) -> list[tuple[tuple, Build, list[str]]]:
        """For each (file under base/, old, new, ...): a copy with that one edit, loaded
        (all in one run of the validator): (case, its build, its validator problems)."""
        copies = []
        for case in cases:
            copy = self.copy()
            self.edit(copy / "base" / case[0], case[1], case[2])
            copies.append(copy)
        loaded = load_builds(copies)
        return [(case, Build(loaded[build_key(c)][0]), loaded[build_key(c)][1])
                for case, c in zip(cases, copies)]

    @staticmethod
    def edit(path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {path}"
        path.write_text(text.replace(old, new))

    # -- the schemas

    def test_every_build_validates(self):
        p = run_validator(*map(str, BUILDS))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "k8s-validate: 23 documents, 0 problems\n")
        self.assertEqual(p.stderr, "")
        for path, (_, problems) in self.builds.items():
            with self.subTest(build=str(path.relative_to(REPO))):
                self.assertEqual(problems, [])

    def test_every_file_is_in_a_build(self):
        reached = {s.split("#")[0] for b, _ in self.builds.values() for s in b.sources}
        files = {str(p.relative_to(REPO)) for p in DEPLOY.rglob("*.yaml")
                 if p.name != "kustomization.yaml"}
        self.assertEqual(sorted(files - reached), [], "never validated: in no kustomization")
        kinds = sorted(d["kind"] for d in self.builds[DEPLOY][0].docs)
        # The service's and PgBouncer's, and the API token's own Secret (a file).
        self.assertEqual(kinds, sorted(["ConfigMap", "Secret", "Deployment", "Service",
                                        "PodDisruptionBudget"] * 2 + ["Secret"]))
        overlay = [d["kind"] for d in self.builds[OVERLAY][0].docs]
        self.assertEqual(sorted(overlay), sorted(kinds + ["ServiceMonitor"]))

    def test_kubectl_kustomize_renders_what_was_validated(self):
        """kubectl (its kustomize) builds each directory, and its output validates and holds
        the same objects as the validator's own reading of the kustomizations."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.fail("kubectl is not installed (the machine image has it; it checks that "
                      "`kubectl apply -k` renders these directories)")
        for path in BUILDS:
            with self.subTest(build=str(path.relative_to(REPO))):
                p = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True,
                                   text=True, timeout=120)
                self.assertEqual(p.returncode, 0, p.stderr)
                docs, problems = load_build("-", stdin=p.stdout)
                self.assertEqual(problems, [])
                ident = lambda d: (d["object"]["apiVersion"], d["object"]["kind"],  # noqa: E731
                                   d["object"]["metadata"]["name"])
                own = [{"object": o} for o in self.builds[path][0].docs]
                self.assertEqual(sorted(map(ident, docs)), sorted(map(ident, own)))

    # -- the cross-checks

    def test_cross_checks(self):
        for path in BUILDS:
            build, problems = self.builds[path]
            self.assertEqual(problems, [])
            for name, check in CHECKS.items():
                with self.subTest(build=str(path.relative_to(REPO)), check=name):
                    self.assertEqual(check(build, self.code), [])

    def test_the_binary_accepts_the_settings(self):
        """The container's environment, given to the real binary (--check-config): every
        value parses, and the effective configuration is what the manifests say."""
        b = self.builds[DEPLOY][0]
        env, _, problems = b.env(APP, APP)
        self.assertEqual(problems, [])
        env = self.mount_secrets(b, env)
        p = subprocess.run([str(SERVICE_BIN), "--check-config"], env={"PATH": "/usr/bin:/bin",
                           **env}, capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        effective = json.loads(p.stdout)
        self.assertEqual(effective["SHUTDOWN_DELAY"], "5s")
        self.assertEqual(effective["REDIS_ADDR"], env["REDIS_ADDR"])
        self.assertIn("password=*****", effective["DATABASE_DSN"])
        self.assertNotIn(PLACEHOLDER, p.stdout, "a secret placeholder shown unmasked")

    def mount_secrets(self, b: Build, env: dict[str, str]) -> dict[str, str]:
        """What the kubelet does for the container's Secret volumes: each key a file under
        the mount path. Variables naming a path there get the same file in a temp dir."""
        pod = b.pod(APP)["spec"]
        vols = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", [])
                if "secret" in v}
        tmp = Path(tempfile.mkdtemp(prefix="k8s-secrets-", dir=REPO / "build"))
        self.addCleanup(shutil.rmtree, tmp, True)
        out = dict(env)
        for m in b.container(APP, APP).get("volumeMounts", []):
            if m["name"] not in vols:
                continue
            d = tmp / m["name"]
            d.mkdir()
            for k, v in (b.secret_values(vols[m["name"]]) or {}).items():
                (d / k).write_text(v)
            prefix = m["mountPath"].rstrip("/") + "/"
            for name, value in env.items():
                if value.startswith(prefix):
                    out[name] = str(d / value[len(prefix):])
        return out

    def test_readme_overlay_recipe(self):
        """README "Kubernetes": the overlay that sets the secrets and the image builds, and
        replaces the placeholders."""
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            self.fail("kubectl is not installed (see test_kubectl_kustomize_...)")
        readme = (REPO / "README.md").read_text()
        section = readme.split("\n## Kubernetes\n", 1)[1].split("\n## ", 1)[0]
        blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
        recipe = [b for b in blocks if "secretGenerator" in b]
        self.assertEqual(len(recipe), 1, "one yaml block with a secretGenerator")
        env_block = re.search(r"```sh\n# secrets\.env\n(.*?)```", section, re.S)
        self.assertIsNotNone(env_block, "a ```sh block starting `# secrets.env`")
        tmp = Path(tempfile.mkdtemp(prefix="k8s-overlay-", dir=REPO / "build"))
        self.addCleanup(shutil.rmtree, tmp, True)
        k = yaml.safe_load(recipe[0])
        k["resources"] = [os.path.relpath(DEPLOY, tmp)]
        (tmp / "kustomization.yaml").write_text(yaml.safe_dump(k))
        (tmp / "secrets.env").write_text(env_block.group(1).replace("<password>", "pw1"))
        (tmp / "userlist.txt").write_text('"gopulse" "pw1"\n')
        (tmp / "token").write_text("t0ken-from-the-recipe")
        p = subprocess.run([kubectl, "kustomize", str(tmp)], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        docs, problems = load_build("-", stdin=p.stdout)
        self.assertEqual(problems, [])
        b = Build(docs)
        values = b.secret_values(APP)
        self.assertIn(":pw1@", values["DATABASE_DSN"])
        self.assertIn("pw1", b.secret_values(PGBOUNCER)["userlist.txt"])
        self.assertEqual(b.secret_values(TOKEN_SECRET), {"token": "t0ken-from-the-recipe"})
        self.assertNotIn(PLACEHOLDER, json.dumps([b.secret_values(APP),
                                                  b.secret_values(PGBOUNCER),
                                                  b.secret_values(TOKEN_SECRET)]))
        self.assertNotEqual(b.container(APP, APP)["image"].split(":")[0], APP,
                            "the recipe sets the registry")
        for name in ("probes", "env", "pgbouncer", "shutdown"):
            with self.subTest(check=name):
                self.assertEqual(CHECKS[name](b, self.code), [])

    # -- broken copies must fail

    def test_an_untouched_copy_passes(self):
        [(_, build, problems)] = self.broken([("pdb.yaml", "minAvailable: 1", "minAvailable: 1")])
        self.assertEqual(problems, [])
        for name, check in CHECKS.items():
            with self.subTest(check=name):
                self.assertEqual(check(build, self.code), [])

    def test_broken_copies_fail_validation(self):
        cases = [
            ("deployment.yaml", "containerPort: 8080", 'containerPort: "8080"',
             "containerPort must be integer"),
            ("configmap.yaml", 'LOG_LEVEL: "info"', "LOG_LEVEL: on",
             "/data/LOG_LEVEL must be string"),
            ("deployment.yaml", "readinessProbe:", "readinesProbe:",
             'unknown field "readinesProbe"'),
            ("deployment.yaml", "revisionHistoryLimit: 5", "revisionHistoryLimit:",
             "/spec/revisionHistoryLimit: null"),
            ("service.yaml", "  type: ClusterIP", "  type: ClusterIP\n  type: NodePort",
             "Map keys must be unique"),
            ("pdb.yaml", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets",
             "no schema for policy/v1 PodDisruptionBudgets"),
            ("kustomization.yaml", "  - pdb.yaml\n", "  - pdb.yaml\n  - pdb.yaml\n",
             "already defined"),
            ("kustomization.yaml", "resources:", "namePrefix: x-\nresources:",
             "`namePrefix`: this script resolves only"),
        ]
        for (file, _, new, needle), _, problems in self.broken(cases):
            with self.subTest(file=file, new=new):
                self.assertTrue(any(needle in p for p in problems), problems)

    def test_a_probe_on_an_unrouted_path_fails(self):
        [(_, build, problems)] = self.broken([("deployment.yaml", "path: /ready",
                                               "path: /readyz")])
        self.assertEqual(problems, [], "the copy must still validate")
        self.assertIn("readinessProbe: GET /readyz is not in the router table "
                      "(src/api_routes.c)", check_probes(build, self.code))

    def test_broken_copies_fail_their_check(self):
        d = "deployment.yaml"
        cases = [
            (d, "containerPort: 8080", "containerPort: 9090", "port", "want one, 8080"),
            ("configmap.yaml", 'LOG_LEVEL: "info"', 'LOG_LEVL: "info"', "env",
             "LOG_LEVL (ConfigMap gopulse-messages) is not in the configuration table"),
            ("configmap.yaml", '  REDIS_ADDR: "redis:6379"\n', "", "env",
             "REDIS_ADDR is not set"),
            ("secret.yaml", "gopulse:CHANGE_ME@", "gopulse:hunter2@", "secrets",
             "not a placeholder"),
            ("secret.yaml", '  WEBHOOK_AUTH_KEY: ""\n', "", "secrets",
             "WEBHOOK_AUTH_KEY (a secret of the configuration table) is not in the Secret"),
            ("configmap.yaml", 'SHUTDOWN_TIMEOUT: "10s"', 'SHUTDOWN_TIMEOUT: "15s"',
             "shutdown", "not above SHUTDOWN_DELAY"),
            (d, "periodSeconds: 2", "periodSeconds: 5", "shutdown",
             "notices a 503 only after"),
            (d, "runAsUser: 10001", "runAsUser: 10002", "security", "not the Dockerfile's"),
            (d, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "security",
             "readOnlyRootFilesystem"),
            (d, "image: gopulse-messages:0.1.0", "image: gopulse-messages:latest", "image",
             "not the Dockerfile's VERSION"),
            ("pgbouncer.yaml", "edoburu/pgbouncer:v1.24.1-p1", "edoburu/pgbouncer", "image",
             "not pinned by a tag"),
            (d, "maxUnavailable: 0", "maxUnavailable: 1", "rollout", "maxUnavailable 0"),
            ("pdb.yaml", "minAvailable: 1", "minAvailable: 0", "rollout", "minAvailable 1"),
            (d, "memory: 32Mi", "memory: 8Mi", "resources", "memory request below"),
            (d, 'memory: 32Mi\n            limits:\n              cpu: "1"\n'
                '              memory: 64Mi',
             'memory: 16Mi\n            limits:\n              cpu: "1"\n'
                '              memory: 24Mi', "resources", "memory limit below"),
            (d, "RSS 11.9 MiB idle", "RSS 12 MiB idle", "resources",
             "does not cite RSS idle"),
            ("pgbouncer.yaml", "pool_mode = transaction", "pool_mode = session", "pgbouncer",
             "not transaction"),
            ("secret.yaml", "@pgbouncer:6432/", "@postgres:5432/", "pgbouncer",
             "not the Service pgbouncer"),
            (d, 'prometheus.io/path: "/metrics"', 'prometheus.io/path: "/metricz"', "metrics",
             "GET /metricz is not in the router table"),
        ]
        for (file, old, new, check, needle), build, problems in self.broken(cases):
            with self.subTest(file=file, new=new):
                self.assertEqual(problems, [], "the copy must still validate")
                if check == "resources":
                    # the comment is read from the file: give it the edited one
                    text = (DEPLOY / "base" / d).read_text()
                    found = check_resources(build, self.code,
                                            text.replace(old, new) if file == d else text)
                else:
                    found = CHECKS[check](build, self.code)
                self.assertTrue(any(needle in f for f in found), f"{check}: {found}")

    def test_pending_paths_are_not_routed_yet(self):
        for path, issue in PENDING_PATHS.items():
            with self.subTest(path=path):
                self.assertFalse(self.code.routed(path),
                                 f"{path} is routed now ({issue} landed): drop it from "
                                 f"PENDING_PATHS and the manifests' comments about it")


if __name__ == "__main__":
    unittest.main()
