"""openapi.yaml against the implementation.

- OpenApiLintTest: `redocly lint` (the pinned @redocly/cli, configured by redocly.yaml),
  every $ref resolves and every component is used (redocly.yaml turns its own check off:
  see there), and the limits the spec states are the code's.
- OpenApiRoutesTest: the paths and methods of the spec are exactly the routes of
  src/api_routes.c, both ways.
- OpenApiResponsesTest: every answer of the real service recorded during this run
  (harness.record_path(); run.py runs this module last) validates against the spec:
  its status is documented for its operation, its Content-Type is a documented media
  type, its documented headers have their schemas, and a JSON body validates against
  the response's schema (jsonschema, Draft 2020-12). The main operations must each have
  been validated at least once; those the run's recording lacks (this module run
  alone, say) are requested here from a service of its own.

Needs Debian's python3-yaml and python3-jsonschema, and node_modules (`make docs-deps`).
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import subprocess
import sys
import unittest
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml
from jsonschema import Draft202012Validator, FormatChecker

import harness
from harness import REPO, IntegrationTest

SPEC_FILE = REPO / "openapi.yaml"
ROUTES_C = REPO / "src" / "api_routes.c"
REDOCLY = REPO / "node_modules" / ".bin" / "redocly"
OPERATION_KEYS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load_spec() -> dict:
    with open(SPEC_FILE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def pointer_get(doc: Any, ref: str) -> Any:
    """The target of a local $ref ("#/a/b~1c"); KeyError when there is none."""
    if not ref.startswith("#"):
        raise KeyError(f"not a local reference: {ref}")
    node = doc
    for part in filter(None, ref[1:].split("/")):
        part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(ref)
    return node


def walk_refs(node: Any, where: str = "#") -> list[tuple[str, str]]:
    """Every ($ref value, location) in node."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append((v, where))
            else:
                out.extend(walk_refs(v, f"{where}/{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(walk_refs(v, f"{where}/{i}"))
    return out


# ---------------------------------------------------------------- the routes in C


def parse_routes(text: str) -> list[tuple[str, set[str]]]:
    """[(path, {METHOD, ...})] of the api_routes[] initializer in api_routes.c."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    m = re.search(r"api_routes\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\}\s*;", text, re.S)
    if not m:
        raise AssertionError(f"no `api_routes[] = {{ ... }};` in {ROUTES_C}")
    routes = []
    for path, methods in re.findall(r'\{\s*"([^"]*)"\s*,\s*([^,{}]+?)\s*,\s*\w+\s*\}',
                                    m.group(1)):
        names = set()
        for bit in methods.split("|"):
            bit = bit.strip()
            mm = re.fullmatch(r"EVHTTP_REQ_([A-Z]+)", bit)
            if not mm:
                raise AssertionError(f"route {path}: cannot read method {bit!r}")
            names.add(mm.group(1))
        routes.append((path, names))
    if not routes:
        raise AssertionError(f"no routes found in {ROUTES_C}")
    return routes


def route_serves(route_path: str, spec_path: str) -> bool:
    """Does the route serve the spec path? Exact routes are exact; a route ending in
    `*` (a prefix route) serves a spec path made of its prefix and one template."""
    if route_path.endswith("*"):
        prefix = route_path[:-1]
        return (spec_path.startswith(prefix)
                and re.fullmatch(r"\{[^{}/]+\}", spec_path[len(prefix):]) is not None)
    return route_path == spec_path


def route_for(routes: list[tuple[str, set[str]]], spec_path: str):
    """The route that answers spec_path: an exact one first, as the router does."""
    for path, methods in routes:
        if not path.endswith("*") and route_serves(path, spec_path):
            return path, methods
    for path, methods in routes:
        if path.endswith("*") and route_serves(path, spec_path):
            return path, methods
    return None


# ---------------------------------------------------------------- response validation


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def format_checker() -> FormatChecker:
    fc = FormatChecker()

    @fc.checks("date-time", raises=ValueError)
    def _date_time(value: Any) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            return False
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return True

    @fc.checks("int32")
    def _int32(value: Any) -> bool:
        return not isinstance(value, int) or -2**31 <= value < 2**31

    @fc.checks("int64")
    def _int64(value: Any) -> bool:
        return not isinstance(value, int) or -2**63 <= value < 2**63

    return fc


def media_type(ctype: str) -> str:
    return ctype.split(";", 1)[0].strip().lower()


@dataclass
class Verdict:
    label: str  # the operation, e.g. "GET /messages", or the router's answer
    status: int
    errors: list[str] = field(default_factory=list)


class SpecValidator:
    """Validates one recorded response against the spec."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.checker = format_checker()
        self._validators: dict[int, Draft202012Validator] = {}
        paths = spec.get("paths") or {}
        # Concrete paths take precedence over templated ones (as in OpenAPI).
        ordered = sorted(paths, key=lambda p: ("{" in p, p))
        self.paths = [(p, self._path_regex(p), paths[p]) for p in ordered]
        self.router = spec.get("x-router-responses") or {}

    @staticmethod
    def _path_regex(path: str) -> re.Pattern:
        parts = re.split(r"(\{[^{}/]+\})", path)
        return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p)
                                        for p in parts) + "$")

    def resolve(self, obj: Any) -> Any:
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj:
            obj = pointer_get(self.spec, obj["$ref"])
            seen += 1
            if seen > 20:
                raise AssertionError("$ref loop")
        return obj

    def schema_errors(self, schema: Any, value: Any) -> list[str]:
        # The schema is validated inside a document that holds the spec's components,
        # so its "#/components/..." references resolve (any jsonschema version).
        key = id(schema)
        v = self._validators.get(key)
        if v is None:
            root = {"components": self.spec.get("components", {}), "allOf": [schema]}
            v = Draft202012Validator(root, format_checker=self.checker)
            self._validators[key] = v
        out = []
        for e in sorted(v.iter_errors(value), key=lambda e: [str(p) for p in e.path]):
            loc = "/".join(str(p) for p in e.path) or "(root)"
            out.append(f"{loc}: {e.message[:300]}")
        return out

    def find_path(self, path: str):
        for spec_path, rx, item in self.paths:
            if rx.match(path):
                return spec_path, item
        return None

    def groups_for(self, method: str, path: str) -> tuple[str, list[dict], dict | None]:
        """(label, [responses maps that may answer], the GET operation for HEAD)."""
        router = self.router
        common = [router.get("anyRequest") or {}, router.get("libevent") or {}]
        found = self.find_path(path)
        if found is None:
            return "(router) unknown path", [router.get("unknownPath") or {}, *common], None
        spec_path, item = found
        m = method.lower()
        get_op = item.get("get") if m == "head" else None
        if m in item:
            return f"{method} {spec_path}", [item[m].get("responses") or {}, *common], get_op
        if m == "head" and get_op is not None:
            return f"HEAD {spec_path}", [get_op.get("responses") or {}, *common], get_op
        if m == "options":
            return "(router) OPTIONS", [router.get("options") or {}, *common], None
        return "(router) wrong method", [router.get("methodNotAllowed") or {}, *common], None

    @staticmethod
    def _by_status(responses: dict, status: int) -> Any:
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return responses[key]
        return None

    def check(self, rec: dict) -> Verdict:
        method = rec["method"].upper()
        path = urllib.parse.unquote(rec["path"] or "/")
        status = rec["status"]
        label, groups, get_op = self.groups_for(method, path)
        verdict = Verdict(label, status)
        candidates = [r for r in (self._by_status(g, status) for g in groups) if r is not None]
        if not candidates:
            documented = sorted({k for g in groups for k in g})
            verdict.errors.append(f"status {status} is not documented for {label} "
                                  f"(documented: {', '.join(documented)})")
            return verdict
        # Any documented response that fits is enough (e.g. GET /messages' own JSON
        # 400 and libevent's HTML one).
        all_errors = []
        for resp in candidates:
            resp = self.resolve(resp)
            typed = resp
            if method == "HEAD" and get_op is not None:
                # A HEAD answer has the types of the GET answer with the same status.
                same = self._by_status(get_op.get("responses") or {}, status)
                if same is not None:
                    typed = self.resolve(same)
            errors = self._check_one(resp, typed, rec, method)
            if not errors:
                return verdict
            all_errors.append("; ".join(errors))
        verdict.errors.append(" | or: ".join(all_errors))
        return verdict

    def _check_one(self, resp: dict, typed: dict, rec: dict, method: str) -> list[str]:
        errors = []
        headers = {k.lower(): v for k, v in (rec.get("headers") or {}).items()}
        for name, h in (resp.get("headers") or {}).items():
            h = self.resolve(h)
            lname = name.lower()
            if lname == "content-type":
                continue
            value = headers.get(lname)
            if value is None:
                if h.get("required"):
                    errors.append(f"header {name} is missing")
                continue
            schema = h.get("schema") or {}
            if schema.get("type") == "integer":
                try:
                    value = int(value)
                except ValueError:
                    errors.append(f"header {name}: {value!r} is not an integer")
                    continue
            errors.extend(f"header {name}: {e}" for e in self.schema_errors(schema, value))
        content = typed.get("content") or {}
        ctype = headers.get("content-type")
        if method == "HEAD" and rec.get("body_length", 0):
            errors.append(f"HEAD answer has a body ({rec['body_length']} bytes)")
        if not content:
            if method != "HEAD" and rec.get("body_length", 0):
                errors.append(f"a body ({rec['body_length']} bytes, {ctype}) where the "
                              "spec documents none")
            return errors
        if ctype is None:
            errors.append("no Content-Type; documented: " + ", ".join(content))
            return errors
        mt = media_type(ctype)
        media = None
        for key, value in content.items():
            k = media_type(key)
            if k == mt or k == "*/*" or (k.endswith("/*") and mt.startswith(k[:-1])):
                media = value
                break
        if media is None:
            errors.append(f"Content-Type {ctype} is not documented (documented: "
                          f"{', '.join(content)})")
            return errors
        if method == "HEAD" or not harness._is_json_type(ctype):
            return errors
        try:
            body = json.loads(rec.get("body") or "")
        except ValueError as e:
            return errors + [f"the body is not JSON ({e}): {(rec.get('body') or '')[:200]!r}"]
        schema = (media or {}).get("schema")
        if schema is not None:
            errors.extend(f"body {e}" for e in self.schema_errors(schema, body))
        return errors


# What the run must have validated at least once: (what, predicate on the verdict and
# the record). Each needed request is made by OpenApiResponsesTest when missing.
def _is(label: str, *statuses: int) -> Callable[[Verdict, dict], bool]:
    return lambda v, rec: v.label == label and (not statuses or v.status in statuses)


def _nonempty_list(v: Verdict, rec: dict) -> bool:
    if v.label != "GET /messages" or v.status != 200:
        return False
    try:
        return bool(json.loads(rec["body"])["messages"])
    except (ValueError, KeyError, TypeError):
        return False


REQUIRED: list[tuple[str, Callable[[Verdict, dict], bool]]] = [
    ("GET /health 200", _is("GET /health", 200)),
    ("HEAD /health 200", _is("HEAD /health", 200)),
    ("GET /ready 200", _is("GET /ready", 200)),
    ("GET /ready 503", _is("GET /ready", 503)),
    ("GET /messages 200 with messages", _nonempty_list),
    ("GET /messages 400", _is("GET /messages", 400)),
    ("GET /messages 503", _is("GET /messages", 503)),
    ("HEAD /messages", _is("HEAD /messages")),
    ("POST /messages/start 200", _is("POST /messages/start", 200)),
    ("POST /messages/stop 200", _is("POST /messages/stop", 200)),
    ("POST /messages 201", _is("POST /messages", 201)),
    ("POST /messages 400", _is("POST /messages", 400)),
    ("GET /messages/{id} 200", _is("GET /messages/{id}", 200)),
    ("GET /messages/{id} 404", _is("GET /messages/{id}", 404)),
    ("POST /messages/{id}/retry 200", _is("POST /messages/{id}/retry", 200)),
    ("POST /messages/retry-failed 200", _is("POST /messages/retry-failed", 200)),
    ("404 unknown path", _is("(router) unknown path", 404)),
    ("405 wrong method", _is("(router) wrong method", 405)),
    ("204 OPTIONS", _is("(router) OPTIONS", 204)),
    ("413 body too large", lambda v, rec: v.status == 413),
    ("GET /openapi.yaml 200", _is("GET /openapi.yaml", 200)),
    ("GET /swagger/doc.json 200", _is("GET /swagger/doc.json", 200)),
    ("GET /swagger 301", _is("GET /swagger", 301)),
    ("GET /swagger/", _is("GET /swagger/")),
    ("GET /swagger/{file}", _is("GET /swagger/{file}")),
]

# The requests that cover REQUIRED, on a service with a database ("db") or with an
# unreachable one ("nodb").
FALLBACK_REQUESTS: list[tuple[str, str, str, Any]] = [
    ("db", "GET", "/health", None),
    ("db", "HEAD", "/health", None),
    ("db", "GET", "/messages?limit=5&offset=0", None),
    ("db", "HEAD", "/messages", None),
    ("db", "GET", "/messages?limit=0", None),
    ("db", "GET", "/messages?limit=1&limit=2", None),
    ("db", "POST", "/messages/start", None),
    ("db", "POST", "/messages/stop", None),
    ("db", "POST", "/messages", {"recipient": "+905551111111", "content": "hi"}),
    ("db", "POST", "/messages", {"recipient": "x"}),
    ("db", "GET", "/messages/1", None),
    ("db", "GET", "/messages/999999", None),
    ("db", "POST", "/messages/5/retry", None),
    ("db", "POST", "/messages/retry-failed", None),
    ("db", "GET", "/no/such/path", None),
    ("db", "DELETE", "/health", None),
    ("db", "GET", "/messages/start", None),
    ("db", "OPTIONS", "/messages", None),
    ("db", "POST", "/messages/stop", b"x" * (65 * 1024)),
    ("db", "GET", "/openapi.yaml", None),
    ("db", "HEAD", "/openapi.yaml", None),
    ("db", "GET", "/swagger/doc.json", None),
    ("db", "GET", "/swagger", None),
    ("db", "GET", "/swagger/", None),
    ("db", "GET", "/swagger/swagger-ui.css", None),
    ("db", "GET", "/swagger/no-such-file.js", None),
    ("nodb", "GET", "/messages", None),
    ("db", "GET", "/ready", None),
    ("nodb", "GET", "/ready", None),
]


def read_records(path: str) -> list[dict]:
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


# ---------------------------------------------------------------- tests


class OpenApiLintTest(unittest.TestCase):
    def test_redocly_lint(self):
        if not os.access(REDOCLY, os.X_OK):
            self.fail(f"{REDOCLY.relative_to(REPO)} is missing: run `make docs-deps` "
                      "(npm ci of the pinned @redocly/cli from package-lock.json)")
        try:
            node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except OSError:
            node = ""
        m = re.match(r"v(\d+)\.(\d+)", node)
        if not m or (int(m.group(1)), int(m.group(2))) < (20, 19):
            self.fail(f"@redocly/cli needs Node.js 20.19 or later (22.12+), found "
                      f"{node or 'no node'}")
        env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
                   NO_COLOR="1")
        try:
            p = subprocess.run([str(REDOCLY), "lint", "--config", "redocly.yaml", "openapi.yaml"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self.fail("redocly lint did not finish within 120 s")
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, f"redocly lint openapi.yaml failed:\n{out}")
        self.assertNotRegex(out, r"\b[1-9]\d* warnings?\b", f"redocly lint warned:\n{out}")

    def test_spec_is_plain_json(self):
        """YAML reads a bare timestamp as a date (and 1.0 as a number): the JSON copy
        (/swagger/doc.json) would then differ from what the YAML means. Quote them."""
        odd = []

        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    if not isinstance(k, str):
                        odd.append(f"{where}: key {k!r} is a {type(k).__name__}")
                    walk(v, f"{where}/{k}")
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, f"{where}/{i}")
            elif not isinstance(node, (str, int, float, bool, type(None))):
                odd.append(f"{where}: {node!r} is a {type(node).__name__}")

        spec = load_spec()
        walk(spec, "#")
        self.assertEqual(odd, [])
        self.assertEqual(spec["openapi"], "3.1.0")
        self.assertIsInstance(spec["info"]["version"], str)

    def test_refs_resolve_and_components_are_used(self):
        spec = load_spec()
        refs = walk_refs(spec)
        for ref, where in refs:
            with self.subTest(ref=ref):
                try:
                    pointer_get(spec, ref)
                except (KeyError, IndexError, ValueError):
                    self.fail(f"{where}: $ref {ref} points at nothing")
        targets = {ref for ref, _ in refs}
        # Security schemes are named by security requirements, not by $ref.
        def security_names(node: Any) -> set[str]:
            out: set[str] = set()
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "security" and isinstance(v, list):
                        out |= {name for req in v if isinstance(req, dict) for name in req}
                    else:
                        out |= security_names(v)
            elif isinstance(node, list):
                for v in node:
                    out |= security_names(v)
            return out

        targets |= {f"#/components/securitySchemes/{n}" for n in security_names(spec)}
        unused = [f"#/components/{kind}/{name}"
                  for kind, items in (spec.get("components") or {}).items()
                  for name in (items or {})
                  if f"#/components/{kind}/{name}" not in targets]
        self.assertEqual(unused, [], "components referenced from nowhere")

    def test_limits_match_the_code(self):
        defines = {}
        for header in ("query.h", "http_server.h"):
            text = (REPO / "include" / header).read_text()
            for name, expr in re.findall(r"^#define\s+(\w+)\s+([()\d\s*+]+)$", text, re.M):
                defines[name] = eval(expr, {"__builtins__": {}})  # digits and * only
        spec = load_spec()
        params = spec["components"]["parameters"]
        self.assertEqual(params["Limit"]["schema"]["default"], defines["QUERY_LIMIT_DEFAULT"])
        self.assertEqual(params["Limit"]["schema"]["maximum"], defines["QUERY_LIMIT_MAX"])
        self.assertEqual(params["Limit"]["schema"]["minimum"], 1)
        self.assertEqual(params["Offset"]["schema"]["minimum"], 0)
        self.assertEqual(params["Offset"]["schema"]["maximum"], 2**31 - 1)  # INT_MAX
        self.assertEqual(spec["components"]["schemas"]["MessageList"]["properties"]
                         ["messages"]["maxItems"], defines["QUERY_LIMIT_MAX"])
        desc = spec["info"]["description"]
        self.assertIn(f"{defines['HTTP_MAX_BODY_SIZE'] // 1024} KiB", desc)
        self.assertIn(f"{defines['HTTP_HARD_BODY_SIZE'] // (1024 * 1024)} MiB", desc)
        self.assertIn(f"{defines['HTTP_MAX_HEADERS_SIZE'] // 1024} KiB", desc)
        self.assertIn(f"after {defines['HTTP_IDLE_TIMEOUT_S']} s", desc)


class OpenApiRoutesTest(unittest.TestCase):
    """src/api_routes.c and the spec's paths, both ways. GET implies HEAD in the router;
    OPTIONS is answered on every path by the router and need not be in the spec."""

    def setUp(self):
        self.routes = parse_routes(ROUTES_C.read_text())
        self.spec_paths = {
            p: {m.upper() for m in item if m in OPERATION_KEYS}
            for p, item in (load_spec().get("paths") or {}).items()}

    def test_route_table_is_sane(self):
        paths = [p for p, _ in self.routes]
        self.assertEqual(len(paths), len(set(paths)), f"a path is routed twice: {paths}")
        for p, methods in self.routes:
            self.assertTrue(p.startswith("/"), p)
            self.assertNotIn("*", p[:-1], f"{p}: `*` only ends a prefix route")
            self.assertTrue(methods, p)

    def test_every_route_is_in_the_spec(self):
        for path, methods in self.routes:
            with self.subTest(route=path):
                served = [p for p in self.spec_paths if route_for(self.routes, p) == (path, methods)]
                self.assertTrue(served, f"route {path} ({', '.join(sorted(methods))}) is not "
                                f"in openapi.yaml" + (" (a prefix route needs a templated "
                                "path such as " + path[:-1] + "{file})" if path.endswith("*")
                                else ""))
                for p in served:
                    missing = methods - self.spec_paths[p]
                    self.assertFalse(missing, f"openapi.yaml {p} lacks {sorted(missing)}, "
                                     f"which route {path} takes")

    def test_every_spec_path_is_routed(self):
        for p, methods in self.spec_paths.items():
            with self.subTest(path=p):
                route = route_for(self.routes, p)
                self.assertIsNotNone(route, f"openapi.yaml has {p}, but src/api_routes.c "
                                     "routes no such path")
                allowed = set(route[1]) | {"OPTIONS"}
                if "GET" in allowed:
                    allowed.add("HEAD")
                extra = methods - allowed
                self.assertFalse(extra, f"openapi.yaml {p} has {sorted(extra)}, but route "
                                 f"{route[0]} takes only {sorted(route[1])}")
                self.assertTrue(methods, f"openapi.yaml {p} has no operation")


class OpenApiResponsesTest(IntegrationTest):
    """Runs last (run.py): validates what every other test received."""

    def _fallback(self, groups: set[str]) -> None:
        """Makes the FALLBACK_REQUESTS of the given service kinds; they are recorded."""
        services = {}
        if "db" in groups:
            svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                      "SWAGGER_DIR": str(REPO / "web" / "swagger")})
            svc.wait_log("database ready")
            services["db"] = svc
            self.psql("""
                INSERT INTO messages (recipient, content, status, sent_at, retry_count,
                                      response_id)
                VALUES ('+905551112233', 'Your order has shipped.', 'sent', now(), 0,
                        '6f1c2a9e-0b7d-4c1e-9a51-3c1f0e2d4b88'),
                       ('+14155550100', 'Meeting moved to 3 pm ✓', 'sent', now(), 2, NULL),
                       ('+14155550101', 'sent by hand, no time', 'sent', NULL, 0, NULL),
                       ('+14155550102', 'still pending', 'pending', NULL, 0, NULL),
                       ('+14155550103', 'failed for good', 'failed', NULL, 5, NULL);
            """)
        for kind, method, path, body in FALLBACK_REQUESTS:
            if kind not in groups:
                continue
            if kind == "nodb" and kind not in services:
                # Nothing listens on port 1: the database is down from the start.
                services[kind] = self.start_service({
                    "PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                    "DATABASE_DSN": "postgres://postgres@127.0.0.1:1/none?sslmode=disable"})
            services[kind].request(method, path, body)

    def test_recorded_responses_validate(self):
        validator = SpecValidator(load_spec())
        where = harness.record_path()
        records = read_records(where)
        from_run = len(records)

        def covered(verdicts):
            return {name for name, pred in REQUIRED
                    for v, rec in verdicts if not v.errors and pred(v, rec)}

        verdicts = [(validator.check(r), r) for r in records]
        missing = [name for name, _ in REQUIRED if name not in covered(verdicts)]
        if missing:
            print(f"\nopenapi: {from_run} responses recorded by this run; requesting what "
                  f"they lack: {', '.join(missing)}", file=sys.stderr)
            nodb = {"GET /messages 503", "GET /ready 503"}
            groups = {"db"} | ({"nodb"} if nodb & set(missing) else set())
            self._fallback(groups)
            records = read_records(where)
            verdicts = [(validator.check(r), r) for r in records]
        self.assertTrue(records, f"nothing was recorded in {where}")

        counts: dict[tuple[str, int], int] = collections.Counter()
        failures = []
        for v, rec in verdicts:
            if v.errors:
                q = f"?{rec['query']}" if rec.get("query") else ""
                failures.append(f"{rec['method']} {rec['path']}{q} -> {rec['status']} "
                                f"({v.label}; from {rec.get('test') or '?'}): "
                                + "; ".join(v.errors))
            else:
                counts[(v.label, v.status)] += 1
        summary = "\n".join(f"  {n:5d}  {label} {status}"
                            for (label, status), n in sorted(counts.items()))
        print(f"\nopenapi: {len(records) - len(failures)} of {len(records)} responses valid "
              f"({from_run} from this run), by operation:\n{summary}", file=sys.stderr)
        if failures:
            shown = "\n".join(failures[:25])
            more = f"\n... and {len(failures) - 25} more" if len(failures) > 25 else ""
            self.fail(f"{len(failures)} of {len(records)} recorded responses do not match "
                      f"openapi.yaml:\n{shown}{more}")
        still = [name for name, _ in REQUIRED if name not in covered(verdicts)]
        self.assertEqual(still, [], "never validated (the spec or the fallback requests "
                         "are out of step with the code)")


if __name__ == "__main__":
    unittest.main()
