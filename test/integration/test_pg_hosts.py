"""PostgreSQL host lists and PGHOST: every name is resolved on the loop.

libpq tries the hosts of `host=db1,db2` (or a URI's `h1:5432,h2:5433`, or PGHOST
when the DSN has no host) in order, and looks each name up with a blocking
getaddrinfo unless `hostaddr` pairs it with an address. The service resolves
them all with its own resolver, leaves out the ones that do not resolve, and
hands libpq matching host/hostaddr/port lists.

The tests that need DNS to misbehave run the service in a private mount
namespace whose /etc/resolv.conf names a server of the test's own that takes
queries and answers none. Both our resolver and the C library's (what libpq
would use) read that file, so a lookup that slipped through to libpq would
stall the loop there for seconds: /health would show it.
"""

from __future__ import annotations

import os
import random
import shlex
import socket
import subprocess
import tempfile
import threading
import time

from harness import SERVICE_BIN, IntegrationTest, tmp_root, wait_until

SKIPPED = "database host not resolved, trying the others"
# Every connection resolves the list on each of its attempts, and logs what it
# skips: the delivery connection and the API's own (API_DB_CONNECTIONS, set
# by HostsTest).
API_CONNECTIONS = 2
CONNECTIONS = 1 + API_CONNECTIONS
HEALTH_LIMIT_S = 0.05


class SilentDns:
    """A DNS server on 127.a.b.c:53 that records every query and answers none."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        for _ in range(50):
            addr = f"127.{random.randint(1, 254)}.{random.randint(0, 254)}.{random.randint(1, 254)}"
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))  # port 53: the C library's resolver asks no other
            except OSError:
                s.close()
                continue
            self.sock, self.addr = s, addr
            break
        if self.sock is None:
            raise AssertionError("no free 127.x.y.z:53 for the silent DNS server")
        self.sock.settimeout(0.1)
        self._names: list[str] = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data, _ = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            labels, pos = [], 12
            while pos < len(data) and data[pos] != 0:
                n = data[pos]
                labels.append(data[pos + 1:pos + 1 + n].decode(errors="replace"))
                pos += n + 1
            with self._lock:
                self._names.append(".".join(labels).lower())

    def queried(self, name: str) -> bool:
        with self._lock:
            return name.lower() in self._names

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def private_resolver_wrapper(nameserver: str) -> str:
    """An executable that runs the service in its own mount namespace, where
    /etc/resolv.conf names only `nameserver`."""
    d = tempfile.mkdtemp(prefix="dns-", dir=tmp_root())
    conf = os.path.join(d, "resolv.conf")
    with open(conf, "w") as f:
        f.write(f"nameserver {nameserver}\n")
    wrapper = os.path.join(d, "gopulse-private-dns")
    inner = 'mount --bind "$0" /etc/resolv.conf && exec "$1"'
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                f"exec unshare --mount --propagation private sh -c {shlex.quote(inner)} "
                f"{shlex.quote(conf)} {shlex.quote(os.path.abspath(SERVICE_BIN))}\n")
    os.chmod(wrapper, 0o755)
    return wrapper


class HostsTest(IntegrationTest):
    def service_env(self, **overrides):
        return super().service_env(**{"API_DB_CONNECTIONS": str(API_CONNECTIONS),
                                      **overrides})

    def kv_dsn(self, host: str | None, port: str | None = None) -> str:
        """A keyword DSN for this test's database; host None leaves host out."""
        parts = [f"host={host}"] if host is not None else []
        parts += [f"port={port or self.pg.port}", f"dbname={self.db}", "user=postgres",
                  "sslmode=disable"]
        return " ".join(parts)

    def assert_ready_through(self, svc, host: str) -> None:
        svc.wait_log("database ready", timeout=15)
        connected = svc.find_logs("database connected")
        self.assertEqual(connected[-1].get("host"), host)
        self.assertEqual(svc.get("/messages")[0], 200)

    def assert_health_fast(self, svc, seconds: float) -> None:
        """/health answers within HEALTH_LIMIT_S, every 50 ms for `seconds`."""
        deadline = time.monotonic() + seconds
        worst = 0.0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            self.assertEqual(svc.get("/health", timeout=15)[0], 200)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.05)
        self.assertLess(worst, HEALTH_LIMIT_S, "the loop was blocked")

    def assert_connecting(self, svc, host: str, hostaddr: str) -> None:
        """The lists the service handed libpq (a debug line) on its last attempt."""
        entry = svc.wait_log("database connecting")
        self.assertEqual((entry["host"], entry["hostaddr"]), (host, hostaddr))

    def skipped(self, svc, host: str) -> list[dict]:
        return svc.find_logs(lambda e: e.get("msg") == SKIPPED and e.get("host") == host)

    def skipped_once_each(self, svc, host: str) -> list[dict]:
        """The skips of host once every connection made its first attempt."""
        wait_until(lambda: len(self.skipped(svc, host)) >= CONNECTIONS, 10, 0.05,
                   f"{host} skipped by each connection")
        skip = self.skipped(svc, host)
        self.assertEqual(len(skip), CONNECTIONS)
        return skip


class HostListTest(HostsTest):
    def test_unresolvable_name_first(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0",
                                  "DATABASE_DSN": self.kv_dsn("nosuch.invalid,127.0.0.1")})
        self.assert_ready_through(svc, "127.0.0.1")
        skip = self.skipped_once_each(svc, "nosuch.invalid")
        self.assertEqual(skip[0]["level"], "warn")
        self.assertEqual(svc.find_logs("database connection failed"), [])

    def test_uri_host_list_with_ports(self):
        # The unresolvable host's port must go with it, or libpq would refuse
        # 2 ports for 1 host.
        dsn = (f"postgres://postgres@nosuch.invalid:1,localhost:{self.pg.port}/{self.db}"
               "?sslmode=disable")
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "DATABASE_DSN": dsn})
        self.assert_ready_through(svc, "localhost")
        self.skipped_once_each(svc, "nosuch.invalid")

    def test_socket_directory_in_the_list(self):
        # libpq needs an empty hostaddr entry for a socket directory.
        sock = os.path.join(self.pg.dir, f".s.PGSQL.{self.pg.port}")
        self.assertTrue(os.path.exists(sock), f"the test cluster has no socket at {sock}")
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug",
                                  "DATABASE_DSN": self.kv_dsn(f"nosuch.invalid,{self.pg.dir}")})
        self.assert_ready_through(svc, self.pg.dir)
        self.assert_connecting(svc, self.pg.dir, "")

    def test_later_host_kept_after_a_refusing_one(self):
        # localhost resolves and refuses (port 1): libpq moves on to the next.
        dsn = (f"postgres://postgres@localhost:1,nosuch.invalid:2,localhost:{self.pg.port}"
               f"/{self.db}?sslmode=disable")
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "DATABASE_DSN": dsn})
        self.assert_ready_through(svc, "localhost")
        self.skipped_once_each(svc, "nosuch.invalid")

    def test_no_name_resolves(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug",
                                  "DATABASE_DSN": self.kv_dsn("a.invalid,b.invalid")})
        fail = svc.wait_log("database connection failed")
        self.assertIn("cannot resolve a.invalid", fail["reason"])
        self.assertIn("cannot resolve b.invalid", fail["reason"])
        self.assertEqual(fail["level"], "warn")
        self.assert_health_fast(svc, 0.5)
        self.assertEqual(svc.get("/messages")[0], 503)
        self.assertEqual(svc.get("/ready")[0], 503)
        # Both are tried again on the next attempts, quietly.
        svc.wait_log(lambda e: e.get("msg") == "database connection failed"
                     and e.get("level") == "debug", timeout=10)


class PgHostEnvTest(HostsTest):
    def test_pghost_localhost(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug",
                                  "DATABASE_DSN": self.kv_dsn(None), "PGHOST": "localhost"})
        self.assert_ready_through(svc, "localhost")
        # Resolved by the service (libpq was given the address), not by libpq.
        self.assert_connecting(svc, "localhost", "127.0.0.1")

    def test_pghost_list(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug",
                                  "DATABASE_DSN": self.kv_dsn(None),
                                  "PGHOST": "nosuch.invalid,localhost"})
        self.assert_ready_through(svc, "localhost")
        self.assert_connecting(svc, "localhost", "127.0.0.1")
        self.skipped_once_each(svc, "nosuch.invalid")

    def test_dsn_host_wins_over_pghost(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug",
                                  "DATABASE_DSN": self.kv_dsn("localhost"),
                                  "PGHOST": "nosuch.invalid"})
        self.assert_ready_through(svc, "localhost")
        self.assert_connecting(svc, "localhost", "127.0.0.1")
        self.assertEqual(self.skipped(svc, "nosuch.invalid"), [])

    def test_pghostaddr_pairs_with_the_dsn_host(self):
        # libpq connects to PGHOSTADDR and uses the name only for checks and
        # .pgpass: nothing to look up, so an unresolvable name is fine.
        svc = self.start_service({"PRODUCER_INTERVAL": "0",
                                  "DATABASE_DSN": self.kv_dsn("nosuch.invalid"),
                                  "PGHOSTADDR": "127.0.0.1"})
        svc.wait_log("database ready", timeout=15)
        self.assertEqual(svc.find_logs("database connection failed"), [])
        self.assertEqual(svc.get("/messages")[0], 200)


class SilentDnsTest(HostsTest):
    """A name whose DNS server never answers must not stall the loop."""

    def setUp(self) -> None:
        super().setUp()
        p = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            self.fail("these tests run the service in a private mount namespace "
                      f"(unshare --mount, as root): {p.stderr.strip()}")
        self.dns = SilentDns()
        self.addCleanup(self.dns.close)
        self.wrapper = private_resolver_wrapper(self.dns.addr)

    def start_private(self, env: dict):
        return self.start_service({"PRODUCER_INTERVAL": "0", **env}, bin=self.wrapper)

    def test_dsn_list_with_a_silent_name(self):
        svc = self.start_private({"DATABASE_DSN": self.kv_dsn("stuck.test,127.0.0.1")})
        # The lookup is under way for TIMING_PG_RESOLVE_MS (2 s): the loop
        # must answer meanwhile.
        self.assert_health_fast(svc, 1.5)
        self.assertTrue(self.dns.queried("stuck.test"),
                        "the service did not ask the private DNS server")
        self.assert_ready_through(svc, "127.0.0.1")
        skip = self.skipped_once_each(svc, "stuck.test")
        self.assertEqual(skip[0]["reason"], "timeout")

    def test_pghost_list_with_a_silent_name(self):
        svc = self.start_private({"DATABASE_DSN": self.kv_dsn(None),
                                  "PGHOST": "stuck.test,localhost"})
        self.assert_health_fast(svc, 1.5)
        self.assertTrue(self.dns.queried("stuck.test"),
                        "the service did not ask the private DNS server")
        self.assert_ready_through(svc, "localhost")

    def test_only_silent_names(self):
        svc = self.start_private({"DATABASE_DSN": self.kv_dsn("stuck.test,stuck2.test")})
        self.assert_health_fast(svc, 2.5)
        fail = svc.wait_log("database connection failed", timeout=10)
        self.assertEqual(fail["reason"], "cannot resolve stuck.test: timeout; "
                         "cannot resolve stuck2.test: timeout")
        self.assertEqual(svc.get("/messages")[0], 503)
