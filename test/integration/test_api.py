"""The REST API against the real binary and a real PostgreSQL."""

import json
import re
import socket
import time

from harness import IntegrationTest, wait_until

RFC3339_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class ApiTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        self.svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        self.svc.wait_log("database ready")

    def assertJsonError(self, resp, status):
        code, headers, body = resp
        self.assertEqual(code, status, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "error")
        self.assertIsInstance(doc["error"], str)
        self.assertTrue(doc["error"])
        return doc

    def test_health(self):
        code, headers, body = self.svc.get("/health")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(doc["status"], "ok")
        self.assertRegex(doc["timestamp"], RFC3339_S)
        stamp = time.strptime(doc["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        self.assertLess(abs(time.mktime(stamp) - time.mktime(time.gmtime())), 5)

    def test_ready(self):
        code, doc = self.svc.json("GET", "/ready")
        self.assertEqual(code, 200)
        self.assertEqual(doc["status"], "ready")
        self.assertEqual(doc["database"], "ready")
        self.assertEqual(doc["scheduler"], "inactive")
        self.assertEqual(doc["circuit"], "closed")
        # Counted once the database answered (then every 15 s), never per request.
        backlog = wait_until(lambda: (lambda b: b if b["pending"] is not None else None)(
            self.svc.json("GET", "/ready")[1]["backlog"]), 10, 0.1, "the backlog counted")
        self.assertEqual(backlog["pending"], int(self.psql(
            "SELECT count(*) FROM messages WHERE status = 'pending'")[0][0]))
        self.assertLessEqual(backlog["due"], backlog["pending"])
        self.assertIn(doc["redis"], ("ready", "connecting", "resolving"))
        self.svc.post("/messages/start")
        self.assertEqual(self.svc.json("GET", "/ready")[1]["scheduler"], "active")

    def test_head_health_has_length_and_no_body(self):
        code, headers, body = self.svc.request("HEAD", "/health")
        self.assertEqual(code, 200)
        self.assertEqual(body, b"")
        self.assertGreater(int(headers["content-length"]), 10)
        # The connection is still usable: the next answer parses.
        self.assertEqual(self.svc.get("/health")[0], 200)

    def test_health_exact_bytes_date_and_next_second(self):
        # /health's body is built once a second and copied: the bytes are the
        # compact JSON, the Date header (ours, also cached) is one valid
        # IMF-fixdate, and a later second gets a fresh timestamp and Date.
        import email.utils
        code, headers, body = self.svc.get("/health")
        self.assertEqual(code, 200)
        ts = json.loads(body)["timestamp"]
        self.assertEqual(body, b'{"status":"ok","timestamp":"%s"}\n' % ts.encode())
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertRegex(headers["date"],
                         r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|"
                         r"Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
        date = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
        self.assertLess(abs(date - time.time()), 5)
        code, hhead, hbody = self.svc.request("HEAD", "/health")
        self.assertEqual((code, hbody), (200, b""))
        self.assertEqual(int(hhead["content-length"]), len(body))
        time.sleep(1.1)
        _, headers2, body2 = self.svc.get("/health")
        ts2 = json.loads(body2)["timestamp"]
        self.assertGreater(ts2, ts)
        self.assertGreater(email.utils.parsedate_to_datetime(headers2["date"]).timestamp(),
                           date)
        # Every JSON answer carries exactly one Date.
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=5) as s:
            s.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b""
            while chunk := s.recv(4096):
                raw += chunk
        head = raw.split(b"\r\n\r\n", 1)[0].lower()
        self.assertEqual(head.count(b"\r\ndate: "), 1, raw)

    def test_unknown_path_404(self):
        self.assertJsonError(self.svc.get("/nope"), 404)
        self.assertJsonError(self.svc.get("/messages/"), 404)
        self.assertJsonError(self.svc.post("/health/x"), 404)

    def test_wrong_method_405_with_allow(self):
        for method, path, allow in (("DELETE", "/health", "GET, HEAD, OPTIONS"),
                                    ("DELETE", "/messages", "GET, HEAD, POST, OPTIONS"),
                                    ("GET", "/messages/start", "POST, OPTIONS"),
                                    ("PATCH", "/messages/stop", "POST, OPTIONS"),
                                    ("PUT", "/health", "GET, HEAD, OPTIONS"),
                                    ("TRACE", "/health", "GET, HEAD, OPTIONS")):
            resp = self.svc.request(method, path)
            self.assertJsonError(resp, 405)
            self.assertEqual(resp[1].get("allow"), allow, (method, path))

    def test_options_lists_methods(self):
        code, headers, body = self.svc.request("OPTIONS", "/messages/start")
        self.assertEqual(code, 204)
        self.assertEqual(headers["allow"], "POST, OPTIONS")

    def test_bad_list_queries_400(self):
        for q in ("limit=abc", "limit=0", "limit=101", "limit=-1", "limit=",
                  "offset=-1", "offset=x", "limit=1.5", "limit", "limit=5&limit=6",
                  "offset=99999999999"):
            with self.subTest(q=q):
                self.assertJsonError(self.svc.get("/messages?" + q), 400)

    def test_list_shape_and_order(self):
        # Two sent at the same instant (ordered by id desc), one earlier, plus
        # pending and failed rows that must not show.
        self.psql("""
            INSERT INTO messages (recipient, content, status, sent_at, retry_count, response_id)
            VALUES ('+111111111111', 'old', 'sent', '2026-01-01T00:00:00Z', 0, 'r1'),
                   ('+222222222222', 'same a', 'sent', '2026-02-01T00:00:00Z', 2, 'r2'),
                   ('+333333333333', 'same b', 'sent', '2026-02-01T00:00:00Z', 0, NULL),
                   ('+444444444444', 'pending', 'pending', NULL, 0, NULL),
                   ('+555555555555', 'failed', 'failed', NULL, 5, NULL);
        """)
        code, doc = self.svc.json("GET", "/messages")
        self.assertEqual(code, 200)
        self.assertEqual(doc["count"], 3)
        self.assertEqual([m["content"] for m in doc["messages"]], ["same b", "same a", "old"])
        first = doc["messages"][0]
        self.assertEqual(set(first), {"id", "recipient", "content", "status", "sent_at",
                                      "retry_count", "created_at", "response_id"})
        self.assertIsInstance(first["id"], int)
        self.assertEqual(first["status"], "sent")
        self.assertRegex(first["sent_at"], RFC3339_MS)
        self.assertRegex(first["created_at"], RFC3339_MS)
        self.assertEqual(doc["messages"][2]["sent_at"], "2026-01-01T00:00:00.000Z")
        self.assertEqual(doc["messages"][1]["retry_count"], 2)
        self.assertEqual(doc["messages"][1]["response_id"], "r2")
        self.assertIsNone(doc["messages"][0]["response_id"])

    def test_list_paging(self):
        self.psql("""
            INSERT INTO messages (recipient, content, status, sent_at)
            SELECT '+1555000' || lpad(g::text, 4, '0'), 'm' || g, 'sent',
                   '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 minute'
            FROM generate_series(1, 150) g;
        """)
        code, doc = self.svc.json("GET", "/messages")
        self.assertEqual((code, doc["count"]), (200, 10))
        self.assertEqual(doc["messages"][0]["content"], "m150")
        code, doc = self.svc.json("GET", "/messages?limit=100&offset=100")
        self.assertEqual((code, doc["count"]), (200, 50))
        self.assertEqual(doc["messages"][0]["content"], "m50")
        self.assertEqual(doc["messages"][-1]["content"], "m1")
        code, doc = self.svc.json("GET", "/messages?limit=5&offset=1000")
        self.assertEqual((code, doc), (200, {"messages": [], "count": 0, "next": None}))

    def test_unicode_content_round_trips(self):
        self.psql("INSERT INTO messages (recipient, content, status, sent_at) "
                  "VALUES ('+905551112233', 'Merhaba dünya ✓ \"q\"', 'sent', now())")
        code, doc = self.svc.json("GET", "/messages")
        self.assertEqual(doc["messages"][0]["content"], 'Merhaba dünya ✓ "q"')

    def test_start_stop_idempotent(self):
        for _ in range(2):
            code, doc = self.svc.json("POST", "/messages/start")
            self.assertEqual(code, 200)
            self.assertEqual(doc, {"message": "Automatic message sending started",
                                   "status": "active"})
        for _ in range(2):
            code, doc = self.svc.json("POST", "/messages/stop")
            self.assertEqual(code, 200)
            self.assertEqual(doc, {"message": "Automatic message sending stopped",
                                   "status": "inactive"})
        self.assertEqual(len(self.svc.find_logs("automatic sending started")), 1)
        self.assertEqual(len(self.svc.find_logs("automatic sending stopped")), 1)

    def test_body_too_large_413_json(self):
        resp = self.svc.post("/messages/start", body=b"x" * (100 * 1024),
                             headers={"Content-Type": "application/json"})
        self.assertJsonError(resp, 413)
        # The service is unharmed.
        self.assertEqual(self.svc.get("/health")[0], 200)

    def test_headers_too_large_rejected(self):
        code, _, _ = self.svc.get("/health", headers={"X-Big": "a" * (32 * 1024)})
        self.assertIn(code, (400, 413, 431))
        self.assertEqual(self.svc.get("/health")[0], 200)

    def test_garbage_request_does_not_hurt(self):
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=5) as s:
            s.sendall(b"\x00\xffGARBAGE / HTTP/9.9\r\n\r\n")
            s.recv(4096)
        self.assertEqual(self.svc.get("/health")[0], 200)

    def test_keepalive_many_requests_one_connection(self):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=5)
        for _ in range(50):
            conn.request("GET", "/health")
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
        conn.close()
