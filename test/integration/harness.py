"""Integration-test harness for GoPulse Messages (stdlib only, Python 3.11).

Modelled on pgbouncer's test/conftest.py and hiredis's test.sh: real PostgreSQL,
Redis and webhook receiver processes on free ports in private temp directories,
started once per run and shared by every test; each test gets a fresh database,
an empty Redis and a reset receiver, starts the service itself, and sees the
service's log when it fails.

    class MyTest(IntegrationTest):
        def test_health(self):
            svc = self.start_service(PRODUCER_INTERVAL="0")
            status, headers, body = svc.get("/health")
            self.assertEqual(status, 200)

Environment:
    GOPULSE_BIN            service binary (default build/gopulse-messages)
    RECEIVER_BIN           receiver binary (default build/webhook-receiver; also GOPULSE_RECEIVER_BIN)
    SAN=1 / GOPULSE_SAN=1  set ASAN/UBSAN options for the service (build it with sanitizers)
    VALGRIND=1             run the service under valgrind (memcheck)
    GOPULSE_KEEP_TMP=1     keep the temp directory (logs, clusters) after the run
    GOPULSE_RECORD_DIR     where responses.jsonl goes (default: the run's temp directory):
                           every answer of the real service that http_request() gets, one
                           JSON object a line; test_openapi.py validates them against
                           openapi.yaml at the end of the run
"""

from __future__ import annotations

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
SERVICES_SH = REPO / "scripts" / "services.sh"
SERVICE_BIN = Path(os.environ.get("GOPULSE_BIN") or REPO / "build" / "gopulse-messages")
RECEIVER_BIN = Path(os.environ.get("RECEIVER_BIN") or os.environ.get("GOPULSE_RECEIVER_BIN")
                    or REPO / "build" / "webhook-receiver")


def _flag(*names: str) -> bool:
    return any(os.environ.get(n, "") not in ("", "0", "no", "false") for n in names)


SAN = _flag("SAN", "GOPULSE_SAN")
VALGRIND = _flag("VALGRIND")
KEEP_TMP = _flag("GOPULSE_KEEP_TMP")

# Lines in a service log that fail the test that ran the service.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:")
VALGRIND_EXIT = 99  # --error-exitcode: valgrind found memory errors or definite leaks

Headers = dict[str, str]
Response = tuple[int, Headers, bytes]

# ---------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(fn: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    """Call fn until it returns something truthy and return that; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


_tmp_root: str | None = None


def tmp_root() -> str:
    """The run's private temp directory (world-searchable so the postgres user can reach its cluster)."""
    global _tmp_root
    if _tmp_root is None:
        _tmp_root = tempfile.mkdtemp(prefix="gopulse-it-")
        os.chmod(_tmp_root, 0o755)
    return _tmp_root


def services_sh(*args: str, timeout: float = 60) -> str:
    """Run scripts/services.sh FUNC ARGS...; return stdout, raise RuntimeError with its stderr."""
    p = subprocess.run(["bash", str(SERVICES_SH), *args], capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"services.sh {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


_psql: str | None = None


def psql_bin() -> str:
    """psql of the server the tests run: Debian's /usr/bin/psql is pg_wrapper, a Perl
    script that costs about 60 ms a call, and a run calls psql thousands of times."""
    global _psql
    if _psql is None:
        found = os.path.join(services_sh("pg_bin").strip(), "psql")
        _psql = found if os.access(found, os.X_OK) else "psql"
    return _psql


# ---------------------------------------------------------------- response recording
#
# Every answer of the real service (a Service running SERVICE_BIN, so neither the
# receiver nor a stand-in binary) that http_request() gets is appended to
# responses.jsonl as one JSON object: test, method, path (without the query), query,
# status, headers (lower-cased), body (the text when the answer says it is JSON, else
# null) and body_length. test_openapi.py runs last and validates them all against
# openapi.yaml. The file is started afresh by its first use in a run.

RECORD_FILE = "responses.jsonl"
_record_ports: set[int] = set()  # ports of live services running SERVICE_BIN
_record_lock = threading.Lock()
_record_file: str | None = None
_current_test = ""  # id of the running test, for the records


def record_path() -> str:
    """The recording of this run (created empty on first use)."""
    global _record_file
    with _record_lock:
        if _record_file is None:
            d = os.environ.get("GOPULSE_RECORD_DIR") or tmp_root()
            os.makedirs(d, exist_ok=True)
            _record_file = os.path.join(d, RECORD_FILE)
            open(_record_file, "w").close()
        return _record_file


def _is_json_type(ctype: str) -> bool:
    t = ctype.split(";", 1)[0].strip().lower()
    return t == "application/json" or t.endswith("+json")


def _record(port: int, method: str, path: str, status: int, headers: Headers,
            data: bytes) -> None:
    if port not in _record_ports:
        return
    split = urllib.parse.urlsplit(path)
    entry = {
        "test": _current_test,
        "method": method.upper(),
        "path": split.path,
        "query": split.query,
        "status": status,
        "headers": headers,
        "body": (data.decode("utf-8", "replace")
                 if _is_json_type(headers.get("content-type", "")) else None),
        "body_length": len(data),
    }
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    where = record_path()
    with _record_lock:
        with open(where, "a", encoding="utf-8") as f:
            f.write(line)


def http_request(host: str, port: int, method: str, path: str, body: Any = None,
                 headers: dict[str, str] | None = None, timeout: float = 10.0) -> Response:
    """One HTTP/1.1 request -> (status, lower-cased headers, body bytes).

    Never raises on an HTTP error status; connection errors and timeouts do raise (OSError).
    A dict or list body is sent as JSON, a str as UTF-8, bytes as they are.
    Answers of the real service are recorded (see record_path()).
    """
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        out: Headers = {}
        for k, v in resp.getheaders():
            k = k.lower()
            out[k] = f"{out[k]}, {v}" if k in out else v
        _record(port, method, path, resp.status, out, data)
        return resp.status, out, data
    finally:
        conn.close()


def _tail(path: str | Path, lines: int = 60) -> str:
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"(cannot read {path}: {e})\n"


def _pids_of_tree(root: int) -> list[int]:
    """root and all its descendants (pgrep -P, recursively)."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        p = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        todo.extend(int(x) for x in p.stdout.split())
    return out


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- PostgreSQL


class PsqlError(Exception):
    def __init__(self, returncode: int, stderr: str):
        super().__init__(f"psql failed ({returncode}): {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


class Postgres:
    """A private PostgreSQL cluster (initdb'd once) on 127.0.0.1:port, trust auth, user postgres."""

    def __init__(self, base_dir: str | None = None, port: int | None = None):
        self.dir = base_dir or tempfile.mkdtemp(prefix="pg-", dir=tmp_root())
        self.port = port or free_port()
        self._frozen: list[int] = []
        services_sh("pg_init", self.dir)
        self.start()

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "pg.log")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}?sslmode=disable"

    def start(self) -> None:
        """Start on the same port (no-op if it runs)."""
        services_sh("pg_start", self.dir, str(self.port))

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode: smart, fast, immediate); no-op if stopped."""
        self.thaw()
        services_sh("pg_stop", self.dir, mode)

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def pid(self) -> int | None:
        """The postmaster's pid, or None when it does not run."""
        try:
            with open(os.path.join(self.dir, "pgdata", "postmaster.pid")) as f:
                pid = int(f.readline())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections hang instead of failing."""
        pid = self.pid()
        if pid is None:
            raise AssertionError("cannot freeze PostgreSQL: it does not run")
        pids = _pids_of_tree(pid)  # postmaster first, so it forks nothing new meanwhile
        _signal_all(pids, signal.SIGSTOP)
        self._frozen = pids

    def thaw(self) -> None:
        if not self._frozen:
            return
        pid = self.pid()
        pids = set(self._frozen) | (set(_pids_of_tree(pid)) if pid else set())
        _signal_all(sorted(pids), signal.SIGCONT)
        self._frozen = []

    @property
    def frozen(self) -> bool:
        return bool(self._frozen)

    def psql(self, dbname: str, sql: str, timeout: float = 30.0) -> list[tuple[str | None, ...]]:
        """Run sql (one or more statements) and return the rows of every result as tuples of str|None.

        Rows end in NUL (-0): unambiguous, since text cannot hold NUL. NULL shows as \\x01.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "5"
        cmd = [psql_bin(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-0",
               "-P", "null=\x01", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
               "-d", dbname, "-f", "-"]
        try:
            p = subprocess.run(cmd, input=sql.encode(), capture_output=True, timeout=timeout,
                               env=env)
        except subprocess.TimeoutExpired:
            raise PsqlError(-1, f"timed out after {timeout:g}s") from None
        if p.returncode != 0:
            raise PsqlError(p.returncode, p.stderr.decode(errors="replace"))
        out = p.stdout.decode()
        if not out:
            return []
        return [tuple(None if v == "\x01" else v for v in rec.split("\x1f"))
                for rec in out.split("\0")[:-1]]

    def create_db(self, name: str) -> str:
        """(Re)create database name, empty; return its DSN."""
        ident = '"' + name.replace('"', '""') + '"'
        # One psql for both; FILE_COPY copies template1's files instead of WAL-logging
        # each block: 0.2 s instead of 0.3 s, once per test (fsync is off anyway).
        self.psql("postgres", f"DROP DATABASE IF EXISTS {ident} WITH (FORCE);\n"
                              f"CREATE DATABASE {ident} STRATEGY = FILE_COPY")
        return self.dsn(name)

    def drop_db(self, name: str) -> None:
        ident = '"' + name.replace('"', '""') + '"'
        self.psql("postgres", f"DROP DATABASE IF EXISTS {ident} WITH (FORCE)")

    def ensure_running(self) -> None:
        """Undo what a test may have left: thaw and start."""
        self.thaw()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        finally:
            if not KEEP_TMP:
                shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- Redis


class RedisError(Exception):
    pass


class Redis:
    """A private redis-server on 127.0.0.1:port, no persistence."""

    def __init__(self, base_dir: str | None = None, port: int | None = None):
        self.dir = base_dir or tempfile.mkdtemp(prefix="redis-", dir=tmp_root())
        self.port = port or free_port()
        self._frozen = False
        self.start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "redis.log")

    def start(self) -> None:
        services_sh("redis_start", self.dir, str(self.port))

    def stop(self) -> None:
        self.thaw()
        services_sh("redis_stop", self.dir)

    def restart(self) -> None:
        self.stop()
        self.start()

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.dir, "redis.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        return self.pid() is not None

    def freeze(self) -> None:
        pid = self.pid()
        if pid is None:
            raise AssertionError("cannot freeze Redis: it does not run")
        os.kill(pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self._frozen = False

    @property
    def frozen(self) -> bool:
        return self._frozen

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """redis-cli -p PORT ARGS... -> its output without the final newline (raw mode: nil is '')."""
        try:
            p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port),
                                *map(str, args)], capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RedisError(f"redis-cli {' '.join(map(str, args))}: timed out") from None
        if p.returncode != 0 or p.stderr.strip():
            raise RedisError(f"redis-cli {' '.join(map(str, args))} failed ({p.returncode}): "
                             f"{(p.stderr or p.stdout).strip()}")
        return p.stdout.removesuffix("\n")

    def ensure_running(self) -> None:
        self.thaw()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            if not KEEP_TMP:
                shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- processes


class _Proc:
    """A child process with its stdout+stderr in a log file."""

    name = "process"

    def __init__(self, cmd: list[str], env: dict[str, str] | None, log_path: str):
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "ab")
        # Own session: a Ctrl-C meant for the test runner must not reach it first.
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def raw_log(self) -> str:
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def _terminate(self, timeout: float) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test froze it
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"harness: {self.name} (pid {self.pid}) ignored SIGTERM for {timeout:g}s;"
                      " killing it", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def _wait_http_ok(self, port: int, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with status {self.proc.returncode} before GET {path} "
                    f"answered; log {self.log_path}:\n{self.log_tail()}")
            try:
                status, _, _ = http_request("127.0.0.1", port, "GET", path, timeout=1.0)
                if status == 200:
                    return
                last = f"status {status}"
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer GET {path} with 200 within {timeout:g}s "
                             f"({last}); log {self.log_path}:\n{self.log_tail()}")


class Receiver(_Proc):
    """build/webhook-receiver on a free port: records requests, answers as told (PUT /_control)."""

    name = "webhook-receiver"

    def __init__(self, port: int | None = None, path: str = "/webhook", log_dir: str | None = None,
                 bin: str | Path | None = None, tls: tuple[str, str] | None = None):
        """tls = (cert chain PEM, key PEM): also answer https on self.tls_port."""
        self.port = port or free_port()
        self.path = path
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.bin = str(bin or RECEIVER_BIN)
        if not os.access(self.bin, os.X_OK):
            raise AssertionError(f"no receiver binary at {self.bin} (run make)")
        self._log_dir = log_dir or tmp_root()
        self.start()

    @property
    def url(self) -> str:
        """Base URL (what the service's WEBHOOK_HOST should be)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    @property
    def https_url(self) -> str:
        """Base https URL (tls receivers only)."""
        return f"https://127.0.0.1:{self.tls_port}"

    def start(self) -> None:
        tls = ([] if not self.tls else
               ["--tls-port", str(self.tls_port), "--tls-cert", self.tls[0],
                "--tls-key", self.tls[1]])
        super().__init__([self.bin, "--bind", "127.0.0.1", "--port", str(self.port),
                          "--path", self.path, "--quiet", *tls],
                         {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                         os.path.join(self._log_dir, "receiver.log"))
        self._wait_http_ok(self.port, "/health", 5.0)

    def stop(self) -> int:
        return self._terminate(5.0)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        status, _, data = http_request("127.0.0.1", self.port, method, path, body)
        if status != 200:
            raise AssertionError(f"receiver {method} {path}: {status} {data!r}")
        return json.loads(data)

    def set(self, **settings: Any) -> dict:
        """PUT /_control: mode (accept status slow hang garbage nojson fail_then_accept huge reset),
        status, delay_ms, retry_after (None clears), fail_count. Returns the new settings."""
        return self._call("PUT", "/_control", settings)

    def settings(self) -> dict:
        return self._call("GET", "/_control")

    def reset(self) -> None:
        """Mode accept, default settings, no recorded requests."""
        self.set(mode="accept", status=500, delay_ms=0, retry_after=None, fail_count=0)
        self.clear()

    def requests(self) -> list[dict]:
        """GET /_requests: recorded webhook requests, oldest first. Each has seq, method, path,
        received_at, headers (names lower-cased by the receiver), body (str), status, and
        message_id when accepted; the harness adds json (the parsed body or None)."""
        out = self._call("GET", "/_requests")["requests"]
        for r in out:
            try:
                r["json"] = json.loads(r["body"]) if r.get("body") is not None else None
            except ValueError:
                r["json"] = None
        return out

    def clear(self) -> None:
        self._call("DELETE", "/_requests")

    def wait_requests(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Wait until at least n requests were recorded; return them all."""
        return wait_until(lambda: (lambda r: r if len(r) >= n else None)(self.requests()),
                          timeout, 0.05, f"{n} webhook request(s)")

    def ensure_running(self) -> None:
        if not self.alive:
            self.start()

    def cleanup(self) -> None:
        self.stop()


_live_services: list["Service"] = []


class Service(_Proc):
    """build/gopulse-messages with a clean environment (PATH, PORT, sanitizer options + env)."""

    name = "gopulse-messages"
    _count = 0

    def __init__(self, env: dict[str, Any] | None = None, *, port: int | None = None,
                 wait: bool = True, log_dir: str | None = None, bin: str | Path | None = None,
                 args: list[str] | tuple[str, ...] = (), health_timeout: float | None = None,
                 name: str | None = None):
        env = dict(env or {})
        if port is None:
            port = int(env["PORT"]) if env.get("PORT") else free_port()
        self.port = port
        self.bin = str(bin or SERVICE_BIN)
        if not os.access(self.bin, os.X_OK):
            raise AssertionError(f"no service binary at {self.bin} (run make)")
        Service._count += 1
        if name:
            self.name = name
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PORT": str(port)}
        if SAN:
            full["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1"
            full["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        for k, v in env.items():  # None unsets a variable
            if v is None:
                full.pop(k, None)
            else:
                full[k] = str(v)
        self.env = full
        cmd = [self.bin, *args]
        if VALGRIND:
            cmd = ["valgrind", "--quiet", f"--error-exitcode={VALGRIND_EXIT}", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite", *cmd]
        log_dir = log_dir or tmp_root()
        log_path = os.path.join(log_dir, f"service-{Service._count}-{port}.log")
        self._checked = False
        super().__init__(cmd, full, log_path)
        _live_services.append(self)
        # Only the real binary's answers are checked against openapi.yaml.
        if os.path.realpath(self.bin) == os.path.realpath(SERVICE_BIN):
            _record_ports.add(port)
        else:
            _record_ports.discard(port)
        if wait:
            if health_timeout is None:
                health_timeout = 50 * 0.1 * (10 if VALGRIND else 3 if SAN else 1)
            try:
                self._wait_http_ok(port, "/health", health_timeout)
            except AssertionError:
                # The message has the log tail; a half-started service must not linger.
                self._checked = True
                self.kill9()
                raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- HTTP

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 10.0) -> Response:
        """-> (status, lower-cased headers, body bytes); never raises on HTTP error statuses."""
        return http_request("127.0.0.1", self.port, method, path, body, headers, timeout)

    def get(self, path: str, headers: dict[str, str] | None = None,
            timeout: float = 10.0) -> Response:
        return self.request("GET", path, None, headers, timeout)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 10.0) -> Response:
        return self.request("POST", path, body, headers, timeout)

    def json(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
        """-> (status, parsed JSON body); AssertionError when the body is not JSON."""
        status, _, data = self.request(method, path, body, headers, timeout)
        try:
            return status, json.loads(data)
        except ValueError:
            raise AssertionError(f"{method} {path}: status {status}, body is not JSON: "
                                 f"{data[:500]!r}") from None

    # -- logs

    def logs(self) -> list[dict]:
        """Every JSON object line of the log, in order (other lines are only in raw_log())."""
        out = []
        for line in self.raw_log().splitlines():
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    @staticmethod
    def _matcher(pred: str | dict | Callable[[dict], Any]) -> Callable[[dict], Any]:
        if isinstance(pred, str):
            return lambda e: e.get("msg") == pred
        if isinstance(pred, dict):
            return lambda e: all(e.get(k) == v for k, v in pred.items())
        return pred

    def find_logs(self, pred: str | dict | Callable[[dict], Any]) -> list[dict]:
        """Log entries matching pred: a str equal to "msg", a dict of key/values, or a callable."""
        m = self._matcher(pred)
        return [e for e in self.logs() if m(e)]

    def wait_log(self, pred: str | dict | Callable[[dict], Any], timeout: float = 10.0,
                 count: int = 1) -> dict:
        """Wait until `count` entries match pred (see find_logs); return the last of them."""
        def found():
            hits = self.find_logs(pred)
            return hits[count - 1] if len(hits) >= count else None
        try:
            return wait_until(found, timeout, 0.05, f"log entry {pred!r}")
        except AssertionError as e:
            raise AssertionError(f"{e}; log {self.log_path}:\n{self.log_tail()}") from None

    # -- process control

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit on its own; return its status (-N: killed by signal N)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit within {timeout:g}s; "
                                 f"log {self.log_path}:\n{self.log_tail()}") from None
        self._after_exit()
        return rc

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after timeout; return the exit status."""
        rc = self._terminate(timeout)
        self._after_exit()
        return rc

    def kill9(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self._after_exit()
        return rc

    def sanitizer_report(self) -> str | None:
        """The sanitizer/valgrind complaint in the log, or None."""
        log = self.raw_log()
        for marker in SANITIZER_MARKERS:
            i = log.find(marker)
            if i >= 0:
                start = log.rfind("\n", 0, max(0, i - 200)) + 1
                return log[start:start + 4000]
        if VALGRIND and self.proc.returncode == VALGRIND_EXIT:
            return "valgrind reported errors:\n" + self.log_tail(80)
        return None

    def _after_exit(self) -> None:
        _record_ports.discard(self.port)
        if not self._log.closed:
            self._log.close()
        if self in _live_services:
            _live_services.remove(self)
        if self._checked:
            return
        self._checked = True
        report = self.sanitizer_report()
        if report:
            raise AssertionError(f"{self.name} (log {self.log_path}) reported memory or UB "
                                 f"errors:\n{report}")


# ---------------------------------------------------------------- shared fixtures

_pg: Postgres | None = None
_redis: Redis | None = None
_receiver: Receiver | None = None


def shared_postgres() -> Postgres:
    global _pg
    if _pg is None:
        _pg = Postgres()
    return _pg


def shared_redis() -> Redis:
    global _redis
    if _redis is None:
        _redis = Redis()
    return _redis


def shared_receiver() -> Receiver:
    global _receiver
    if _receiver is None:
        _receiver = Receiver()
    return _receiver


def cleanup_all() -> None:
    """Stop every service, the receiver, Redis and PostgreSQL; remove the temp dir. Idempotent."""
    global _pg, _redis, _receiver, _tmp_root, _record_file
    for svc in list(_live_services):
        try:
            svc.kill9()
        except AssertionError as e:
            print(f"harness: {e}", file=sys.stderr)
    for fixture in (_receiver, _redis, _pg):
        if fixture is not None:
            try:
                fixture.cleanup()
            except Exception as e:  # keep going: the other servers must stop too
                print(f"harness: cleanup of {type(fixture).__name__} failed: {e}", file=sys.stderr)
    _pg = _redis = _receiver = None
    if _tmp_root is not None:
        if KEEP_TMP:
            print(f"harness: kept {_tmp_root}", file=sys.stderr)
        else:
            shutil.rmtree(_tmp_root, ignore_errors=True)
        _tmp_root = None
    _record_ports.clear()
    _record_file = None


atexit.register(cleanup_all)


_db_counter = 0


def _db_name(test_id: str) -> str:
    global _db_counter
    _db_counter += 1
    tail = re.sub(r"[^a-z0-9_]+", "_", test_id.rsplit(".", 1)[-1].lower())
    return f"t{os.getpid()}_{_db_counter}_{tail}"[:63]


class IntegrationTest(unittest.TestCase):
    """Base class: shared Postgres/Redis/Receiver, a fresh database per test, log dumps on failure.

    Per test: self.db / self.dsn (a new empty database), Redis flushed, receiver reset
    (mode accept, nothing recorded). Services started with start_service() are stopped
    after the test; a failed test prints the last 60 lines of each of their logs.
    """

    pg: Postgres
    redis: Redis
    receiver: Receiver
    db: str
    dsn: str

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.pg = shared_postgres()
        cls.redis = shared_redis()
        cls.receiver = shared_receiver()

    def setUp(self) -> None:
        global _current_test
        super().setUp()
        _current_test = self.id()
        self.services: list[Service] = []
        # A cleanup rather than tearDown: it also runs when a subclass's setUp fails
        # after this point or a subclass's tearDown forgets super().
        self.addCleanup(self._finish_services)
        # Undo whatever the previous test left stopped or frozen.
        self.pg.ensure_running()
        self.redis.ensure_running()
        self.receiver.ensure_running()
        self.db = _db_name(self.id())
        self.dsn = self.pg.create_db(self.db)
        self.redis.cli("FLUSHALL")
        self.receiver.reset()

    def service_env(self, **overrides: Any) -> dict[str, Any]:
        """The env start_service() uses: this test's database, the shared Redis and receiver."""
        env: dict[str, Any] = {
            "DATABASE_DSN": self.dsn,
            "REDIS_ADDR": self.redis.addr,
            "WEBHOOK_HOST": self.receiver.url,
            "WEBHOOK_PATH": self.receiver.path,
            "BIND_ADDR": "127.0.0.1",
        }
        env.update(overrides)
        return env

    def start_service(self, env: dict[str, Any] | None = None, *, wait: bool = True,
                      **kwargs: Any) -> Service:
        """Start the service with service_env() updated by env (None unsets a variable);
        kwargs go to Service (port, args, bin, health_timeout, name)."""
        svc = Service(self.service_env(**(env or {})), wait=wait, **kwargs)
        self.services.append(svc)
        return svc

    def psql(self, sql: str, timeout: float = 30.0) -> list[tuple[str | None, ...]]:
        """psql on this test's database."""
        return self.pg.psql(self.db, sql, timeout)

    def tearDown(self) -> None:
        # Services are stopped by the cleanup registered in setUp.
        super().tearDown()

    def _test_failed(self) -> bool:
        # Not _outcome.success: unittest resets it to True while tearDown and cleanups run.
        # Failures are reported to the result as they happen, so look there.
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        for test, _ in [*getattr(result, "failures", []), *getattr(result, "errors", [])]:
            if test is self or getattr(test, "test_case", None) is self:  # subtests too
                return True
        return False

    def _finish_services(self) -> None:
        failed = self._test_failed()
        errors = []
        for svc in self.services:
            try:
                svc.stop()
            except AssertionError as e:
                errors.append(str(e))
        if failed:
            for svc in self.services:
                sys.stderr.write(f"\n---- {self.id()}: last 60 lines of {svc.name} log "
                                 f"{svc.log_path} (exit {svc.returncode}) ----\n")
                sys.stderr.write(svc.log_tail(60))
                sys.stderr.write("---- end of log ----\n")
            sys.stderr.flush()
        self.services = []
        if errors:
            raise AssertionError("\n".join(errors))


# ---------------------------------------------------------------- waits on events, held locks
#
# A test that asserts that something did NOT happen needs a window; these bound it
# by events of the service's own loop instead of a bare sleep, and make "the database
# is slow" a state that can be seen (a backend waiting on a lock) instead of a guess.

# Log messages of the loop's periodic work. The scheduler's are debug entries
# (LOG_LEVEL=debug): "run started" (with its trigger: "tick", "drain on start") and
# "run finished" once per run; a stopped scheduler logs neither.
PRODUCED = "Successfully created a new message"
RUN_STARTED = "run started"
RUN_FINISHED = "run finished"


def wait_more_logs(svc: Service, pred: str | dict | Callable[[dict], Any], n: int = 1,
                   timeout: float = 10.0) -> dict:
    """Wait until n more log entries match pred than match now; return the last of them.

    With a periodic entry (a producer insert, a finished scheduler run) this is a window
    of n periods of the service's own loop: the bound of a negative assertion."""
    have = len(svc.find_logs(pred))
    return svc.wait_log(pred, timeout, count=have + n)


def log_time(entry: dict) -> float:
    """The "ts" of a service log entry (RFC 3339 UTC), as Unix seconds."""
    return _utc_seconds(entry["ts"])


def received_time(request: dict) -> float:
    """The "received_at" of a receiver request (RFC 3339 UTC), as Unix seconds."""
    return _utc_seconds(request["received_at"])


def _utc_seconds(ts: str) -> float:
    import datetime
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class PgLock:
    """A psql session holding a lock (in an open transaction) until release().

        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            ...  # every query on messages waits meanwhile

    The constructor returns once the lock is held. See Postgres.waiting_backends() to
    know when a query of the service is stuck behind it.
    """

    def __init__(self, pg: Postgres, dbname: str, sql: str, timeout: float = 10.0):
        import select
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "5"
        self.proc = subprocess.Popen(
            [psql_bin(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(pg.port), "-U", "postgres", "-d", dbname],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"BEGIN;\n{sql};\nSELECT 'locked';\n".encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"locked":
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"could not take the lock ({sql}): {err.decode(errors='replace')}")

    def release(self) -> None:
        """Commit and end the session (idempotent)."""
        if self.proc.returncode is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"COMMIT;\n")
            self.proc.communicate(timeout=10)  # closes stdin, reads and closes the pipes
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.communicate()

    def __enter__(self) -> "PgLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def waiting_backends(pg: Postgres, dbname: str, application_name: str = "gopulse-messages"
                     ) -> list[str]:
    """The queries of application_name's backends on dbname that wait on a lock."""
    rows = pg.psql("postgres", f"""
        SELECT query FROM pg_stat_activity
        WHERE datname = '{dbname}' AND application_name = '{application_name}'
          AND wait_event_type = 'Lock'""")
    return [r[0] or "" for r in rows]


def socket_fds(pid: int) -> int:
    """How many sockets process pid has open (its /proc/PID/fd links to socket:[...])."""
    n = 0
    fd_dir = f"/proc/{pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, name)).startswith("socket:"):
                n += 1
        except OSError:  # closed meanwhile
            pass
    return n


def tcp_unread(local_port: int, remote_port: int) -> int | None:
    """Bytes received but not yet read by the process on 127.0.0.1:local_port, on its
    connection from remote_port (rx_queue of /proc/net/tcp); None when there is none."""
    want = (f"0100007F:{local_port:04X}", f"0100007F:{remote_port:04X}")
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if (fields[1], fields[2]) == want:
                return int(fields[4].split(":")[1], 16)
    return None


# The settings most delivery tests start from (MessagesTest.FAST): no producer, a tick
# every 100 ms without a batch cap, retries after 100 ms, a 2 s webhook timeout.
FAST_DELIVERY = {
    "PRODUCER_INTERVAL": "0",
    "SCHEDULER_INTERVAL": "100ms",
    "SCHEDULER_BATCH_SIZE": "0",
    "RETRY_BASE_DELAY": "100ms",
    "WEBHOOK_TIMEOUT": "2s",
}


class MessagesTest(IntegrationTest):
    """A test that fills the messages table itself: the schema exists before the service
    starts (from the same idempotent files the service applies), and helpers to insert,
    count and start. FAST is the environment start() begins from; subclasses set it."""

    FAST: dict[str, str] = {}

    def create_schema(self):
        for f in sorted((REPO / "sql").glob("*.sql")):
            self.psql(f.read_text())

    def insert(self, n, prefix="msg"):
        # next_attempt_at is given (the column's default is now()) so that rows of
        # a test are due even where a test made the default 'infinity'.
        self.psql(f"""
            INSERT INTO messages (recipient, content, next_attempt_at)
            SELECT '+1555' || lpad(g::text, 8, '0'), '{prefix} ' || g, now()
            FROM generate_series(1, {n}) g""")

    def counts(self):
        """Messages by status; rows that are never due ('infinity') left out."""
        rows = self.psql("SELECT status, count(*) FROM messages "
                         "WHERE next_attempt_at <> 'infinity' GROUP BY status")
        return {status: int(n) for status, n in rows}

    def wait_counts(self, want, timeout=20):
        return wait_until(lambda: self.counts() == want, timeout, 0.1,
                          f"message counts {want} (last: {self.counts()})")

    def start(self, **env):
        e = dict(self.FAST)
        e.update(env)
        svc = self.start_service(e)
        svc.wait_log("database ready")
        return svc

# ---------------------------------------------------------------- PgBouncer
#
# Many instances run as operators run them: in front of one PostgreSQL through a
# pooler in transaction mode, where consecutive transactions of one client may run
# on different server connections.


class PgBouncer:
    """A private pgbouncer (Debian's package) on 127.0.0.1:port in front of pg.

    Every database of pg is reachable under its own name, user postgres, trust auth,
    pool_mode=transaction, default_pool_size=5, and NOT ignore_startup_parameters:
    a client sending a startup parameter PgBouncer does not know is refused, as
    an operator's PgBouncer would. settings are more [pgbouncer] lines
    (default_pool_size=1). Never the packaged service: its own port, ini, pid file
    and log in its own directory, no Unix socket.

        bouncer = PgBouncer(self.pg, default_pool_size=2)
        svc = self.start_service({"DATABASE_DSN": bouncer.dsn(self.db)})
    """

    def __init__(self, pg: Postgres, *, port: int | None = None, **settings: Any):
        self.pg = pg
        self.dir = tempfile.mkdtemp(prefix="pgbouncer-", dir=tmp_root())
        self.port = port or free_port()
        self.settings = {"default_pool_size": 5, **settings}
        _live_pgbouncers.append(self)
        self.start()

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "pgbouncer.log")

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_path, lines)

    def dsn(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}?sslmode=disable"

    def start(self) -> None:
        """Start on the same port (no-op if it runs)."""
        services_sh("pgbouncer_start", self.dir, str(self.port), str(self.pg.port),
                    *(f"{k}={v}" for k, v in self.settings.items()))

    def stop(self) -> None:
        services_sh("pgbouncer_stop", self.dir)

    def psql(self, dbname: str, sql: str, timeout: float = 30.0) -> list[tuple[str | None, ...]]:
        """psql through the pooler (dbname "pgbouncer" is its admin console): the same
        client call and row format as Postgres.psql, on this port."""
        return Postgres.psql(self, dbname, sql, timeout)  # type: ignore[arg-type]

    def show(self, what: str) -> list[dict[str, str | None]]:
        """SHOW <what> on the admin console (POOLS, CONFIG, STATS, ...) as dicts."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = "5"
        p = subprocess.run([psql_bin(), "-X", "-q", "-A", "-F", "\x1f", "-P", "footer=off",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", "pgbouncer", "-c", f"SHOW {what}"],
                           capture_output=True, text=True, timeout=10, env=env,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise PsqlError(p.returncode, p.stderr)
        lines = p.stdout.splitlines()
        if not lines:
            return []
        head = lines[0].split("\x1f")
        return [dict(zip(head, line.split("\x1f"))) for line in lines[1:]]

    def config(self) -> dict[str, str | None]:
        """SHOW CONFIG as {key: value}."""
        return {r["key"]: r["value"] for r in self.show("CONFIG") if r.get("key")}

    def pool(self, dbname: str) -> dict[str, str | None]:
        """This database's row of SHOW POOLS ({} before its first client)."""
        for r in self.show("POOLS"):
            if r.get("database") == dbname:
                return r
        return {}

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            if self in _live_pgbouncers:
                _live_pgbouncers.remove(self)
            if not KEEP_TMP:
                shutil.rmtree(self.dir, ignore_errors=True)


_live_pgbouncers: list[PgBouncer] = []


def _cleanup_pgbouncers() -> None:
    for b in list(_live_pgbouncers):
        try:
            b.cleanup()
        except Exception as e:  # keep going: the servers must stop too
            print(f"harness: cleanup of PgBouncer failed: {e}", file=sys.stderr)


# Registered after cleanup_all, so it runs first (atexit is last in, first out):
# the pooler stops before the PostgreSQL behind it and the temp dir go.
atexit.register(_cleanup_pgbouncers)
