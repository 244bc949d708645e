"""The operator API of issue 9 against the real binary, PostgreSQL and Redis:
POST /messages (validation, Idempotency-Key), GET /messages/{id} (attempts, cache),
the status filter and keyset paging, replay of failed messages, and API_TOKEN."""

import json
import os
import re
import threading
import time

from harness import IntegrationTest, REPO, SAN, wait_until

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKEN = "s3cr3t-t0ken-Zq9"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def body(recipient="+905551111111", content="hello"):
    return {"recipient": recipient, "content": content}


class OperatorApiTest(IntegrationTest):
    def start(self, **env):
        base = {"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"}
        base.update(env)
        svc = self.start_service(base)
        svc.wait_log("database ready")
        return svc

    def assertError(self, resp, status, word=None):
        code, headers, data = resp
        self.assertEqual(code, status, data)
        self.assertEqual(headers.get("content-type"), "application/json")
        doc = json.loads(data)
        self.assertEqual(doc["status"], "error")
        if word is not None:
            self.assertIn(word, doc["error"])
        return doc

    def count(self, where="true"):
        return int(self.psql(f"SELECT count(*) FROM messages WHERE {where}")[0][0])

    # ------------------------------------------------------------ create

    def test_create_returns_201_location_and_is_due(self):
        svc = self.start()
        code, headers, data = svc.post("/messages", body(content="ş" * 160))
        self.assertEqual(code, 201, data)
        doc = json.loads(data)
        self.assertEqual(headers["location"], f"/messages/{doc['id']}")
        self.assertEqual((doc["recipient"], doc["content"], doc["status"]),
                         ("+905551111111", "ş" * 160, "pending"))
        self.assertIsNone(doc["sent_at"])
        self.assertRegex(doc["created_at"], RFC3339_MS)
        # And it is delivered like any other message.
        svc.post("/messages/start")
        reqs = self.receiver.wait_requests(1)
        self.assertEqual(reqs[0]["json"], {"to": "+905551111111", "content": "ş" * 160})

    def test_create_validation(self):
        svc = self.start()
        cases = [
            (body(content="ş" * 161), "content"),
            (body(content=""), "content"),
            (body(recipient="905551111111"), "recipient"),
            (body(recipient="+123456789"), "recipient"),
            (body(recipient="+1234567890123456"), "recipient"),
            (body(recipient="+90555111111a"), "recipient"),
            ({"recipient": 905551111111, "content": "x"}, "recipient"),
            ({"recipient": "+905551111111", "content": 5}, "content"),
            ({"recipient": "+905551111111", "content": None}, "content"),
            ({"content": "x"}, "recipient"),
            ({"recipient": "+905551111111"}, "content"),
            ({**body(), "priority": 1}, "priority"),
            ([body()], "object"),
        ]
        for doc, word in cases:
            with self.subTest(doc=doc):
                self.assertError(svc.post("/messages", doc), 400, word)
        raw = [b"", b"{", b"not json", b'{"recipient":"+905551111111","content":"a","content":"b"}',
               b'"\xff"', b'{"recipient":"+905551111111","content":"a\\u0000b"}']
        for data in raw:
            with self.subTest(raw=data):
                self.assertError(svc.request("POST", "/messages", data,
                                             {"Content-Type": "application/json"}), 400)
        dup = self.assertError(svc.request(
            "POST", "/messages", b'{"recipient":"+905551111111","content":"a","content":"b"}'), 400)
        self.assertIn("content", dup["error"])
        self.assertError(svc.request("POST", "/messages", b"x" * (64 * 1024 + 1)), 413)
        self.assertEqual(self.count(), 0)

    def test_create_503_when_database_down(self):
        svc = self.start(API_DB_CONNECTIONS="0")
        self.pg.stop()
        wait_until(lambda: svc.get("/ready")[0] == 503, 10, 0.05, "not ready")
        self.assertError(svc.post("/messages", body()), 503)

    # ------------------------------------------------------------ idempotency

    def test_idempotency_key_replays_and_conflicts(self):
        svc = self.start()
        h = {"Idempotency-Key": "order-42"}
        c1, h1, d1 = svc.post("/messages", body(), h)
        self.assertEqual(c1, 201, d1)
        c2, h2, d2 = svc.post("/messages", body(), h)
        self.assertEqual(c2, 200, d2)
        self.assertEqual(json.loads(d2)["id"], json.loads(d1)["id"])
        self.assertEqual(h2.get("idempotent-replayed"), "true")
        self.assertError(svc.post("/messages", body(content="other"), h), 409, "Idempotency-Key")
        self.assertEqual(self.count(), 1)
        # Another key is another message; a bad key is refused.
        self.assertEqual(svc.post("/messages", body(), {"Idempotency-Key": "order-43"})[0], 201)
        self.assertError(svc.post("/messages", body(), {"Idempotency-Key": "x" * 256}), 400)
        self.assertEqual(self.count(), 2)
        self.assertEqual(self.psql("SELECT count(*) FROM idempotency_keys"), [("2",)])

    def test_expired_key_is_free_again_and_swept(self):
        svc = self.start()
        h = {"Idempotency-Key": "old"}
        first = json.loads(svc.post("/messages", body(), h)[2])
        self.psql("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
        code, _, data = svc.post("/messages", body(content="new"), h)
        self.assertEqual(code, 201, data)
        self.assertNotEqual(json.loads(data)["id"], first["id"])
        # The sweep (soon after start, then on a timer) deletes expired keys.
        self.psql("INSERT INTO idempotency_keys (key, recipient, content, message_id, created_at)"
                  " SELECT 'gone' || g, '+905551111111', 'x', 1, now() - interval '2 days'"
                  " FROM generate_series(1, 1200) g")
        svc2 = self.start()
        wait_until(lambda: self.psql("SELECT count(*) FROM idempotency_keys")[0][0] == "1",
                   15, 0.2, "expired keys swept")
        del svc2

    def test_two_instances_race_on_one_key(self):
        a, b = self.start(), self.start()
        results = []

        def hit(svc, i):
            results.append(svc.post("/messages", body(), {"Idempotency-Key": "race"}))

        for round_ in range(3):
            results.clear()
            threads = [threading.Thread(target=hit, args=((a, b)[i % 2], i)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            codes = sorted(r[0] for r in results)
            ids = {json.loads(r[2])["id"] for r in results}
            self.assertEqual(len(ids), 1, results)
            self.assertEqual(codes, ([200] * 7 + [201]) if round_ == 0 else [200] * 8, results)
        self.assertEqual(self.count(), 1)

    # ------------------------------------------------------------ get one

    def test_get_message_with_attempts_and_cache(self):
        self.receiver.set(mode="fail_then_accept", fail_count=2, status=503)
        svc = self.start(RETRY_BASE_DELAY="50ms", SCHEDULER_INTERVAL="100ms",
                         SCHEDULER_BATCH_SIZE="0")
        mid = json.loads(svc.post("/messages", body())[2])["id"]
        code, doc = svc.json("GET", f"/messages/{mid}")
        self.assertEqual(code, 200)
        self.assertEqual((doc["status"], doc["attempts"], doc["cache"], doc["cache_status"]),
                         ("pending", [], None, "miss"))
        svc.post("/messages/start")
        wait_until(lambda: svc.json("GET", f"/messages/{mid}")[1]["status"] == "sent", 15, 0.1,
                   "sent")
        wait_until(lambda: svc.json("GET", f"/messages/{mid}")[1]["cache"] is not None, 5, 0.05,
                   "cache entry")
        code, doc = svc.json("GET", f"/messages/{mid}")
        att = doc["attempts"]
        self.assertEqual([a["attempt"] for a in att], [1, 2, 3])
        self.assertEqual([a["response_code"] for a in att], [503, 503, 202])
        self.assertIsNotNone(att[0]["error"])
        self.assertIsNone(att[2]["error"])
        self.assertEqual(att[2]["response_id"], doc["response_id"])
        for a in att:
            self.assertRegex(a["started_at"], RFC3339_MS)
            self.assertRegex(a["finished_at"], RFC3339_MS)
            self.assertGreaterEqual(a["duration_ms"], 0)
            self.assertRegex(a["instance"], r".+:\d+$")
        self.assertEqual(doc["cache"]["messageId"], doc["response_id"])
        self.assertEqual(doc["cache_status"], "hit")
        # Redis frozen (still "ready" until its watchdog): a short wait at most.
        self.redis.freeze()
        t0 = time.monotonic()
        code, doc = svc.json("GET", f"/messages/{mid}")
        self.assertLess(time.monotonic() - t0, 1.5)
        self.assertEqual((code, doc["cache"], doc["cache_status"]), (200, None, "unavailable"))
        self.redis.thaw()
        # Redis down: no wait, null and "unavailable".
        self.redis.stop()
        wait_until(lambda: svc.json("GET", "/ready")[1]["redis"] != "ready", 10, 0.05,
                   "redis not ready")
        t0 = time.monotonic()
        code, doc = svc.json("GET", f"/messages/{mid}")
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual((code, doc["cache"], doc["cache_status"]), (200, None, "unavailable"))
        self.assertEqual(len(doc["attempts"]), 3)

    def test_timeout_records_no_status(self):
        self.receiver.set(mode="hang")
        svc = self.start(WEBHOOK_TIMEOUT="300ms", MAX_ATTEMPTS="1")
        mid = json.loads(svc.post("/messages", body())[2])["id"]
        svc.post("/messages/start")
        wait_until(lambda: svc.json("GET", f"/messages/{mid}")[1]["status"] == "failed", 15,
                   0.1, "failed")
        doc = svc.json("GET", f"/messages/{mid}")[1]
        self.assertIsNone(doc["response_code"])
        self.assertEqual(len(doc["attempts"]), 1)
        self.assertIsNone(doc["attempts"][0]["response_code"])
        self.assertIn("imed out", doc["attempts"][0]["error"])

    def test_history_off_records_nothing(self):
        svc = self.start(ATTEMPT_HISTORY="false")
        mid = json.loads(svc.post("/messages", body())[2])["id"]
        svc.post("/messages/start")
        wait_until(lambda: svc.json("GET", f"/messages/{mid}")[1]["status"] == "sent", 15, 0.1,
                   "sent")
        self.assertEqual(svc.json("GET", f"/messages/{mid}")[1]["attempts"], [])

    def test_get_unknown_and_malformed(self):
        svc = self.start()
        self.assertError(svc.get("/messages/12345"), 404)
        for bad in ("abc", "-1", "1e3", "1" * 20, "%20", "1.0", "+1"):
            with self.subTest(id=bad):
                self.assertError(svc.get(f"/messages/{bad}"), 400)
        self.assertError(svc.post("/messages/abc/retry"), 400)

    # ------------------------------------------------------------ listing

    def seed(self):
        self.psql("""
            INSERT INTO messages (recipient, content, status, sent_at)
            SELECT '+905551111111', 'm' || g,
                   (ARRAY['pending', 'sent', 'failed'])[g % 3 + 1],
                   CASE WHEN g % 3 = 1 THEN '2026-01-01'::timestamptz
                        + (g / 6) * interval '1 second' END
            FROM generate_series(1, 60) g""")

    def walk(self, svc, query):
        seen, after = [], None
        for _ in range(100):
            code, doc = svc.json("GET", f"/messages?{query}" + (f"&after={after}" if after else ""))
            self.assertEqual(code, 200, doc)
            seen += [m["id"] for m in doc["messages"]]
            after = doc["next"]
            if after is None:
                return seen
        self.fail("paging did not end")

    def test_status_filter_and_keyset_paging(self):
        svc = self.start()
        self.seed()
        for status in ("pending", "sent", "failed", "all"):
            with self.subTest(status=status):
                code, doc = svc.json("GET", f"/messages?status={status}&limit=100")
                want = doc["messages"]
                if status != "all":
                    self.assertTrue(all(m["status"] == status for m in want))
                self.assertEqual(len(want), 60 if status == "all" else 20)
                self.assertIsNone(doc["next"])
                got = self.walk(svc, f"status={status}&limit=7")
                self.assertEqual(got, [m["id"] for m in want])
        # Default: sent, most recently sent first (ties by id), as before.
        code, doc = svc.json("GET", "/messages?limit=100")
        sent = doc["messages"]
        self.assertEqual([m["status"] for m in sent], ["sent"] * 20)
        keys = [(m["sent_at"], m["id"]) for m in sent]
        self.assertEqual(keys, sorted(keys, reverse=True))
        # A cursor belongs to its listing; garbage is a 400.
        nxt = svc.json("GET", "/messages?status=sent&limit=5")[1]["next"]
        self.assertError(svc.get(f"/messages?status=pending&after={nxt}"), 400, "cursor")
        for q in ("status=nope", "after=", "after=zzz", "after=p_1x", "status=sent&status=all",
                  "after=" + "a" * 70):
            with self.subTest(q=q):
                self.assertError(svc.get(f"/messages?{q}"), 400)
        # limit/offset still work as they did.
        off = svc.json("GET", "/messages?limit=5&offset=5")[1]["messages"]
        self.assertEqual([m["id"] for m in off], [m["id"] for m in sent[5:10]])

    def test_keyset_page_1000_costs_what_page_1_costs(self):
        n = 100_000
        svc = self.start()
        self.psql(f"""
            INSERT INTO messages (recipient, content, status, sent_at)
            SELECT '+905551111111', 'm' || g, CASE WHEN g % 2 = 0 THEN 'sent' ELSE 'failed' END,
                   CASE WHEN g % 2 = 0 THEN now() - g * interval '1 second' END
            FROM generate_series(1, {n}) g; ANALYZE messages""", timeout=120)
        for status in ("sent", "failed", "all"):
            with self.subTest(status=status):
                # The cursor of the 1,000th page of 10 (row 10,000 of the listing) ...
                ids = self.psql({
                    "sent": "SELECT id FROM messages WHERE status = 'sent' "
                            "ORDER BY sent_at DESC, id DESC OFFSET 9999 LIMIT 1",
                    "failed": "SELECT id FROM messages WHERE status = 'failed' "
                              "ORDER BY id DESC OFFSET 9999 LIMIT 1",
                    "all": "SELECT id FROM messages ORDER BY id DESC OFFSET 9999 LIMIT 1",
                }[status])
                mid = int(ids[0][0])
                if status == "sent":
                    us = self.psql(f"SELECT (extract(epoch FROM sent_at) * 1000000)::bigint "
                                   f"FROM messages WHERE id = {mid}")[0][0]
                    cursor = f"s_{us}_{mid}"
                else:
                    cursor = f"{status[0]}_{mid}"

                def timed(q):
                    best = None
                    for _ in range(7):
                        t0 = time.perf_counter()
                        code, doc = svc.json("GET", q)
                        dt = time.perf_counter() - t0
                        self.assertEqual((code, len(doc["messages"])), (200, 10), doc)
                        best = dt if best is None else min(best, dt)
                    return best, doc

                first, _ = timed(f"/messages?status={status}&limit=10")
                deep, doc = timed(f"/messages?status={status}&limit=10&after={cursor}")
                self.assertLess(doc["messages"][0]["id"] if status != "sent" else 0,
                                mid if status != "sent" else 1)
                # The server-side cost is an index scan of 10 rows either way: the same
                # order of time (generous, for a shared machine), not 1,000x.
                self.assertLess(deep, max(first * 3, first + 0.02), (status, first, deep))
                plan = "\n".join(r[0] for r in self.psql(
                    "EXPLAIN SELECT id FROM messages WHERE status = 'failed' AND id < 5000 "
                    "ORDER BY id DESC LIMIT 10"))
                self.assertIn("Index", plan)

    # ------------------------------------------------------------ replay

    def test_retry_one(self):
        self.receiver.set(mode="status", status=400)
        svc = self.start()
        mid = json.loads(svc.post("/messages", body())[2])["id"]
        self.assertError(svc.post(f"/messages/{mid}/retry"), 409, "pending")
        svc.post("/messages/start")
        wait_until(lambda: svc.json("GET", f"/messages/{mid}")[1]["status"] == "failed", 10,
                   0.05, "failed")
        svc.post("/messages/stop")
        self.receiver.set(mode="accept")
        code, doc = svc.json("POST", f"/messages/{mid}/retry")
        self.assertEqual(code, 200, doc)
        self.assertEqual((doc["id"], doc["status"], doc["retry_count"]), (mid, "pending", 0))
        self.assertError(svc.post(f"/messages/{mid}/retry"), 409)
        self.assertError(svc.post("/messages/999999/retry"), 404)
        svc.post("/messages/start")
        wait_until(lambda: svc.json("GET", f"/messages/{mid}")[1]["status"] == "sent", 10,
                   0.05, "sent after replay")
        att = svc.json("GET", f"/messages/{mid}")[1]["attempts"]
        self.assertEqual([(a["attempt"], a["response_code"]) for a in att], [(1, 400), (1, 202)])

    def test_retry_failed_in_batches_two_instances(self):
        a, b = self.start(), self.start()
        self.psql("""
            INSERT INTO messages (recipient, content, status, retry_count, error_message,
                                  updated_at)
            SELECT '+905551111111', 'f' || g, 'failed', 5, 'HTTP 500',
                   CASE WHEN g <= 500 THEN now() - interval '2 days' ELSE now() END
            FROM generate_series(1, 2600) g""")
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        code, doc = a.json("POST", f"/messages/retry-failed?since={since}")
        self.assertEqual((code, doc), (200, {"requeued": 2100}))
        self.assertEqual(self.count("status = 'failed'"), 500)
        self.assertEqual(self.count("status = 'pending' AND retry_count = 0 "
                                    "AND error_message IS NULL"), 2100)
        self.psql("UPDATE messages SET status = 'failed', retry_count = 5")
        results = []
        threads = [threading.Thread(target=lambda s=s: results.append(
            s.json("POST", "/messages/retry-failed"))) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(all(c == 200 for c, _ in results), results)
        self.assertEqual(sum(d["requeued"] for _, d in results), 2600)
        self.assertEqual(self.count("status = 'pending'"), 2600)
        for bad in ("since=yesterday", "since=2026-13-01T00:00:00Z", "since=2026-01-01"):
            self.assertError(a.post(f"/messages/retry-failed?{bad}"), 400, "since")

    def test_retry_failed_while_delivery_runs(self):
        svc = self.start(SCHEDULER_INTERVAL="50ms", SCHEDULER_BATCH_SIZE="0")
        self.psql("""INSERT INTO messages (recipient, content, status, retry_count)
                     SELECT '+905551111111', 'f' || g, 'failed', 5
                     FROM generate_series(1, 300) g""")
        svc.post("/messages/start")
        code, doc = svc.json("POST", "/messages/retry-failed")
        self.assertEqual((code, doc), (200, {"requeued": 300}))
        wait_until(lambda: self.count("status = 'sent'") == 300, 30, 0.1, "all sent")
        self.assertEqual(len(self.receiver.requests()), 300)

    # ------------------------------------------------------------ token

    def test_token_guards_every_post_not_gets(self):
        svc = self.start(API_TOKEN=TOKEN, LOG_LEVEL="debug")
        mid = json.loads(svc.post("/messages", body(), AUTH)[2])["id"]
        posts = ["/messages/start", "/messages/stop", "/messages", f"/messages/{mid}/retry",
                 "/messages/retry-failed"]
        # Every POST route of the table is in the list.
        routes = (REPO / "src" / "api_routes.c").read_text()
        for m in re.finditer(r'\{\s*"([^"]+)",\s*([^,]+),', routes):
            if "POST" in m.group(2):
                self.assertIn(m.group(1).replace("{id}", str(mid)), posts)
        for path in posts:
            for h in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                      {"Authorization": f"Basic {TOKEN}"},
                      {"Authorization": f"Bearer {TOKEN}x"}):
                with self.subTest(path=path, h=h):
                    code, headers, data = svc.post(path, body(), h)
                    self.assertEqual(code, 401, data)
                    self.assertEqual(headers.get("www-authenticate"), "Bearer")
                    self.assertEqual(json.loads(data)["status"], "error")
        self.assertEqual(self.count(), 1)
        self.assertEqual(svc.post("/messages/start", None, AUTH)[0], 200)
        self.assertEqual(svc.post("/messages/stop", None, AUTH)[0], 200)
        for path in ("/health", "/ready", "/messages", f"/messages/{mid}", "/openapi.yaml"):
            self.assertEqual(svc.get(path)[0], 200, path)
        self.assertEqual(svc.stop(), 0)
        self.assertNotIn(TOKEN, svc.raw_log())
        self.assertEqual(svc.find_logs(lambda e: "open to anyone" in e.get("msg", "")), [])

    def test_token_file_and_both_set(self):
        path = os.path.join(self.tmpdir(), "token")
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        svc = self.start(API_TOKEN_FILE=path)
        self.assertEqual(svc.post("/messages/stop")[0], 401)
        self.assertEqual(svc.post("/messages/stop", None, AUTH)[0], 200)
        self.assertEqual(svc.stop(), 0)
        self.assertNotIn(TOKEN, svc.raw_log())
        bad = self.start_service({"API_TOKEN": "a", "API_TOKEN_FILE": path}, wait=False)
        self.assertEqual(bad.wait_exit(10), 2)
        self.assertIn("API_TOKEN_FILE", bad.raw_log())
        self.assertNotIn(TOKEN, bad.raw_log())

    def test_no_token_warns_once_and_stays_open(self):
        svc = self.start()
        self.assertEqual(len(svc.find_logs(lambda e: "open to anyone" in e.get("msg", ""))), 1)
        self.assertEqual(svc.post("/messages/stop")[0], 200)

    def tmpdir(self):
        d = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"opapi-{os.getpid()}-{self.db}")
        os.makedirs(d, exist_ok=True)
        self.addCleanup(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
        return d
