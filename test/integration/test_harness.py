"""Smoke tests of the harness itself: if these fail, no other integration result means much."""

import json
import os
import signal
import tempfile
import textwrap
import urllib.error
import urllib.request

from harness import IntegrationTest, PsqlError, RedisError, Service, wait_until

# A stand-in for the service, enough to exercise Service: /health, JSON log lines,
# SIGTERM handling, and (FAKE_ASAN=1) a sanitizer complaint on exit.
FAKE_SERVICE = textwrap.dedent('''\
    #!/usr/bin/python3
    import http.server, json, os, signal, sys
    def log(msg, **kw):
        print(json.dumps({"level": "info", "msg": msg, **kw}), flush=True)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "path": self.path}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    def term(*_):
        log("shutting down")
        if os.environ.get("FAKE_ASAN"):
            print("==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1", flush=True)
            sys.exit(1)
        sys.exit(0)
    signal.signal(signal.SIGTERM, term)
    print("not json: starting", flush=True)
    srv = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
    log("listening", port=int(os.environ["PORT"]), dsn_set="DATABASE_DSN" in os.environ)
    srv.serve_forever()
''')


class HarnessTest(IntegrationTest):
    def test_postgres(self):
        self.assertEqual(self.psql("SELECT 1"), [("1",)])
        self.assertEqual(self.pg.psql(self.db, "SELECT current_database()"), [(self.db,)])
        # NULL, empty string and a newline survive; several statements return all rows.
        rows = self.psql("SELECT NULL::text, '', E'a\\nb'; CREATE TABLE t (x int);"
                         " INSERT INTO t VALUES (1), (2); SELECT x FROM t ORDER BY x")
        self.assertEqual(rows, [(None, "", "a\nb"), ("1",), ("2",)])
        with self.assertRaises(PsqlError):
            self.psql("SELECT * FROM no_such_table")

        self.pg.stop()
        self.assertFalse(self.pg.running)
        with self.assertRaises(PsqlError):
            self.psql("SELECT 1")
        self.pg.start()
        self.assertEqual(self.psql("SELECT count(*) FROM t"), [("2",)])

        self.pg.freeze()
        with self.assertRaises(PsqlError):
            self.psql("SELECT 1", timeout=1)
        self.pg.thaw()
        self.assertEqual(self.psql("SELECT 1"), [("1",)])

    def test_fresh_database_per_test(self):
        # Whatever other tests created, this database starts empty.
        self.assertEqual(self.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
                         [("0",)])
        self.assertTrue(self.dsn.endswith(f"/{self.db}?sslmode=disable"))

    def test_redis(self):
        self.assertEqual(self.redis.cli("PING"), "PONG")
        self.redis.cli("SET", "k", "v w")
        self.assertEqual(self.redis.cli("GET", "k"), "v w")
        self.assertEqual(self.redis.cli("GET", "missing"), "")
        self.redis.stop()
        with self.assertRaises(RedisError):
            self.redis.cli("PING")
        self.redis.start()
        self.assertEqual(self.redis.cli("PING"), "PONG")
        self.assertEqual(self.redis.cli("DBSIZE"), "0")  # no persistence across restarts

    def test_receiver(self):
        def post(body):
            req = urllib.request.Request(self.receiver.webhook_url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "webhook-id": "msg_1"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, None

        status, reply = post({"to": "+905551111111", "content": "hi"})
        self.assertEqual(status, 202)
        reqs = self.receiver.requests()
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["json"], {"to": "+905551111111", "content": "hi"})
        self.assertEqual(reqs[0]["headers"].get("webhook-id"), "msg_1")
        self.assertEqual(reqs[0]["message_id"], reply["messageId"])

        self.receiver.set(mode="status", status=503)
        self.assertEqual(post({"to": "x", "content": "y"})[0], 503)
        self.assertEqual(len(self.receiver.wait_requests(2)), 2)
        self.receiver.clear()
        self.assertEqual(self.receiver.requests(), [])

    def test_receiver_reset_between_tests(self):
        # test_receiver left mode=status; setUp must have put it back to accept.
        self.assertEqual(self.receiver.settings()["mode"], "accept")
        self.assertEqual(self.receiver.requests(), [])

    def _fake_bin(self):
        d = tempfile.mkdtemp(prefix="fake-svc-")
        self.addCleanup(lambda: (os.unlink(path), os.rmdir(d)))
        path = os.path.join(d, "fake-service")
        with open(path, "w") as f:
            f.write(FAKE_SERVICE)
        os.chmod(path, 0o755)
        return path

    def test_service_machinery(self):
        svc = self.start_service(bin=self._fake_bin())
        status, headers, body = svc.get("/health")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(svc.json("GET", "/nope"), (404, {"status": "ok", "path": "/nope"}))
        entry = svc.wait_log("listening", timeout=2)
        self.assertEqual(entry["port"], svc.port)
        self.assertTrue(entry["dsn_set"])  # start_service passed this test's DSN
        self.assertIn("not json: starting", svc.raw_log())
        self.assertTrue(all(isinstance(e, dict) for e in svc.logs()))
        with self.assertRaises(AssertionError):
            svc.wait_log({"msg": "never logged"}, timeout=0.2)
        svc.signal(signal.SIGTERM)
        self.assertEqual(svc.wait_exit(5), 0)
        self.assertEqual(svc.find_logs("shutting down")[0]["level"], "info")

    def test_service_sanitizer_report_fails(self):
        svc = self.start_service({"FAKE_ASAN": "1"}, bin=self._fake_bin())
        with self.assertRaises(AssertionError) as cm:
            svc.stop()
        self.assertIn("AddressSanitizer", str(cm.exception))

    def test_service_clean_env_and_kill9(self):
        svc = Service({"PORT": None, "X": 1}, bin=self._fake_bin(), wait=False)
        self.services.append(svc)
        self.assertNotIn("PORT", svc.env)
        self.assertEqual(sorted(svc.env), ["PATH", "X"] if "ASAN_OPTIONS" not in svc.env
                         else ["ASAN_OPTIONS", "PATH", "UBSAN_OPTIONS", "X"])
        # Without PORT the fake crashes at once: wait_exit sees it.
        self.assertNotEqual(svc.wait_exit(5), 0)
        svc2 = self.start_service(bin=self._fake_bin())
        self.assertEqual(svc2.kill9(), -signal.SIGKILL)

    def test_wait_until(self):
        n = []
        self.assertEqual(wait_until(lambda: n.append(1) or len(n) >= 3 and "done", 2), "done")
        with self.assertRaisesRegex(AssertionError, "the impossible"):
            wait_until(lambda: False, 0.1, what="the impossible")
