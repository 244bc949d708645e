"""Start-up, configuration errors and shutdown of the real binary."""

import json
import signal
import subprocess
import threading
import time

from harness import SERVICE_BIN, IntegrationTest, PgLock, waiting_backends, wait_until


def run_bin(env, timeout=10):
    base = {"PATH": "/usr/bin:/bin"}
    base.update(env)
    return subprocess.run([str(SERVICE_BIN)], env=base, capture_output=True, text=True,
                          timeout=timeout)


class ConfigTest(IntegrationTest):
    def test_bad_variable_exits_2_with_one_line(self):
        for var, val in (("PRODUCER_INTERVAL", "5x"), ("PORT", "http"),
                         ("SCHEDULER_BATCH_SIZE", "-3"), ("LOG_LEVEL", "loud"),
                         ("WEBHOOK_HOST", "localhost:9090"), ("AUTOSTART", "perhaps")):
            with self.subTest(var=var):
                p = run_bin({var: val, "DATABASE_DSN": self.dsn})
                self.assertEqual(p.returncode, 2)
                lines = p.stderr.strip().splitlines()
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertIn(var, lines[0])
                self.assertIn(val, lines[0])
                json.loads(lines[0])
                self.assertEqual(p.stdout, "")

    def test_secrets_never_logged(self):
        svc = self.start_service({
            "DATABASE_DSN": self.dsn.replace("postgres@", "postgres:hunter2dsn@"),
            "REDIS_PASSWORD": "hunter2redis", "WEBHOOK_AUTH_KEY": "hunter2key",
            "PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug"})
        svc.wait_log("database ready")
        cfg = svc.wait_log("effective configuration")
        self.assertEqual(cfg["REDIS_PASSWORD"], "*****")
        self.assertEqual(cfg["WEBHOOK_AUTH_KEY"], "*****")
        self.assertIn("password=*****", cfg["DATABASE_DSN"])
        svc.stop()
        self.assertNotIn("hunter2", svc.raw_log())

    def test_port_in_use_exits_1(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0"})
        p = run_bin({"PORT": str(svc.port), "BIND_ADDR": "127.0.0.1",
                     "DATABASE_DSN": self.dsn})
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot listen", p.stdout)

    def test_healthcheck_subcommand(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0"})
        ok = subprocess.run([str(SERVICE_BIN), "healthcheck"], capture_output=True, text=True,
                            env={"PORT": str(svc.port)}, timeout=10)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        svc.stop()
        down = subprocess.run([str(SERVICE_BIN), "healthcheck"], capture_output=True,
                              text=True, env={"PORT": str(svc.port)}, timeout=10)
        self.assertEqual(down.returncode, 1)
        self.assertIn("healthcheck:", down.stderr)

    def test_version_flag(self):
        p = subprocess.run([str(SERVICE_BIN), "--version"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^gopulse-messages \d+\.\d+\.\d+\n$")


class ShutdownTest(IntegrationTest):
    def test_sigterm_exits_0_quickly(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "100ms"})
        svc.wait_log("Successfully created a new message", count=3)
        t0 = time.monotonic()
        svc.signal(signal.SIGTERM)
        self.assertEqual(svc.wait_exit(10), 0)
        self.assertLess(time.monotonic() - t0, 10)
        msgs = [e["msg"] for e in svc.logs()]
        self.assertIn("shutting down", msgs)
        self.assertGreater(msgs.index("stopped"), msgs.index("shutting down"))

    def test_sigint_exits_0(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0"})
        svc.signal(signal.SIGINT)
        self.assertEqual(svc.wait_exit(10), 0)

    @staticmethod
    def get_ignoring_exit(svc, path):
        """GET that the service may leave unanswered by exiting."""
        try:
            svc.get(path, timeout=20)
        except OSError:
            pass

    def wait_query_stuck(self):
        """Wait until a query of the service waits on the lock a test holds, then
        freeze the database: the query is in flight and nothing will answer it."""
        wait_until(lambda: waiting_backends(self.pg, self.db), 10, 0.05,
                   "a query of the service waiting on the lock")
        self.pg.freeze()

    def test_sigterm_waits_for_a_slow_query_then_exits(self):
        # A request in flight while the database is frozen: the drain waits,
        # bounded by SHUTDOWN_TIMEOUT, and the exit is still clean.
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "SHUTDOWN_TIMEOUT": "1s",
                                  "REQUEST_TIMEOUT": "5s", "AUTOSTART": "false"})
        svc.wait_log("database ready")
        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            result = {}
            t = threading.Thread(target=lambda: result.update(r=svc.get("/messages")))
            t.start()
            self.wait_query_stuck()
            try:
                t0 = time.monotonic()
                svc.signal(signal.SIGTERM)
                self.assertEqual(svc.wait_exit(10), 0)
                elapsed = time.monotonic() - t0
                t.join(5)
            finally:
                self.pg.thaw()
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 5)
        self.assertEqual(result["r"][0], 503)
        self.assertTrue(svc.find_logs("shutdown deadline passed, abandoning work in flight"))

    def test_second_signal_exits_at_once(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "SHUTDOWN_TIMEOUT": "30s",
                                  "AUTOSTART": "false"})
        svc.wait_log("database ready")
        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            t = threading.Thread(target=self.get_ignoring_exit, args=(svc, "/messages"))
            t.start()
            self.wait_query_stuck()
            try:
                svc.signal(signal.SIGTERM)
                svc.wait_log("shutting down")
                t0 = time.monotonic()
                svc.signal(signal.SIGTERM)
                rc = svc.wait_exit(10)
                self.assertLess(time.monotonic() - t0, 3)
                self.assertEqual(rc, 1)
                t.join(5)
            finally:
                self.pg.thaw()
