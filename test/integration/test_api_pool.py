"""The API's own PostgreSQL connections (API_DB_CONNECTIONS) and the bound on
its queries (API_DB_QUEUE), end to end.

"The delivery connection is busy" and "the list query waits" are states seen
in pg_stat_activity (a backend of ours waiting on a lock held by a psql
session, harness.PgLock), not guesses; /ready reports the pool and the
queries outstanding without any I/O, so the tests wait on it rather than
sleep. Each test has a counterpart condition that would make it fail: reads
queued behind the claim (API_DB_CONNECTIONS=0 shows what that looks like), a
bound that lets a fourth query through, a pool that does not come back."""

import threading
import time

from harness import REPO, IntegrationTest, PgLock, wait_until, waiting_backends

QUIET = {
    "PRODUCER_INTERVAL": "0",
    "AUTOSTART": "false",
    "SCHEDULER_INTERVAL": "1h",
    "SCHEDULER_BATCH_SIZE": "0",
}

# The API connections' setup query (pgpool.c); the delivery connection never runs it.
# Through a pooler pg.c sends a set_config before it in the same segment: '%' + this
# matches either way.
SCHEMA_CHECK = "SELECT count(*) = %"


class ApiPoolTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        for f in sorted((REPO / "sql").glob("*.sql")):
            self.psql(f.read_text())
        # Ten sent messages to list, and pending ones for a claim to take.
        self.psql("""
            INSERT INTO messages (recipient, content, status, sent_at)
            SELECT '+1555' || lpad(g::text, 8, '0'), 'sent ' || g, 'sent',
                   now() - g * interval '1 second'
            FROM generate_series(1, 10) g;
            INSERT INTO messages (recipient, content)
            SELECT '+1666' || lpad(g::text, 8, '0'), 'pending ' || g
            FROM generate_series(1, 5) g""")

    def start(self, **env):
        e = dict(QUIET)
        e.update(env)
        svc = self.start_service(e)
        want = int(e.get("API_DB_CONNECTIONS", 2))
        wait_until(lambda: self.pool(svc)["ready"] == want and self.ready(svc)[0] == 200,
                   15, 0.05, f"/ready 200 with {want} API connections ready")
        return svc

    @staticmethod
    def ready(svc):
        return svc.json("GET", "/ready")

    def pool(self, svc):
        code, doc = self.ready(svc)
        self.assertIn("api_database", doc, doc)
        return doc["api_database"]

    def backends(self):
        """Our backends on this test's database: (pid, query) of each."""
        return self.pg.psql("postgres", f"""
            SELECT pid, query FROM pg_stat_activity
            WHERE datname = '{self.db}' AND application_name = 'gopulse-messages'""")

    def timed_list(self, svc, timeout=10.0):
        t0 = time.monotonic()
        code, headers, body = svc.get("/messages?limit=5", timeout=timeout)
        return code, headers, body, time.monotonic() - t0


class ReadsBesideDeliveryTest(ApiPoolTest):
    def claim_blocked(self, svc):
        """Sending starts while a psql session holds EXCLUSIVE on messages: the
        claim (FOR UPDATE) waits on it, the delivery connection is stuck, and a
        plain SELECT is not blocked by that lock."""
        lock = PgLock(self.pg, self.db, "LOCK TABLE messages IN EXCLUSIVE MODE")
        self.addCleanup(lock.release)
        self.assertEqual(svc.post("/messages/start")[0], 200)
        wait_until(lambda: any("FOR UPDATE" in q for q in waiting_backends(self.pg, self.db)),
                   10, 0.05, "the claim waiting on the lock")
        return lock

    def test_reads_answer_while_the_claim_waits(self):
        svc = self.start()
        lock = self.claim_blocked(svc)
        worst = 0.0
        for _ in range(20):
            code, _, body, took = self.timed_list(svc)
            self.assertEqual(code, 200, body)
            worst = max(worst, took)
        # Coarse: an answer from the database, not a wait on the lock (that
        # would be REQUEST_TIMEOUT, 5 s, then a 503).
        self.assertLess(worst, 1.0)
        self.assertEqual(len(svc.json("GET", "/messages?limit=5")[1]["messages"]), 5)
        # The claim was still stuck all along; released, delivery goes on.
        self.assertTrue(any("FOR UPDATE" in q for q in waiting_backends(self.pg, self.db)))
        lock.release()
        self.receiver.wait_requests(5, timeout=15)

    def test_without_a_pool_reads_queue_behind_the_claim(self):
        # What the pool is for, and proof that the scenario above does block
        # the delivery connection: with API_DB_CONNECTIONS=0 the read queues
        # behind the stuck claim until its own deadline.
        svc = self.start(API_DB_CONNECTIONS="0", REQUEST_TIMEOUT="1s")
        self.assertEqual(self.pool(svc), {"connections": 0, "ready": 0, "queries": 0,
                                          "max_queries": 128})
        self.assertEqual(svc.get("/messages")[0], 200)  # shares the delivery connection
        self.claim_blocked(svc)
        code, _, body, took = self.timed_list(svc)
        self.assertEqual(code, 503, body)
        self.assertIn(b"in time", body)
        self.assertGreaterEqual(took, 0.9)


class BoundTest(ApiPoolTest):
    def test_full_queue_answers_503_then_recovers(self):
        svc = self.start(API_DB_QUEUE="3", REQUEST_TIMEOUT="20s")
        self.assertEqual(self.pool(svc)["max_queries"], 3)
        results = []
        threads = []
        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            for _ in range(3):
                t = threading.Thread(target=lambda: results.append(self.timed_list(svc, 30)))
                t.start()
                threads.append(t)
            # Three list queries are queued or waiting on the lock: the bound.
            wait_until(lambda: self.pool(svc)["queries"] == 3, 10, 0.05, "3 API queries")
            wait_until(lambda: waiting_backends(self.pg, self.db), 10, 0.05,
                       "a list query waiting on the lock")
            for method in ("GET", "HEAD", "GET"):
                t0 = time.monotonic()
                code, headers, body = svc.request(method, "/messages", timeout=5)
                took = time.monotonic() - t0
                self.assertEqual(code, 503, body)
                self.assertEqual(headers.get("retry-after"), "1")
                self.assertLess(took, 1.0, "refused at once, not queued")
                if method == "GET":
                    self.assertEqual(svc.json("GET", "/messages")[1],
                                     {"error": "too many requests waiting for the database",
                                      "status": "error"})
            # Refusals never grow the count; other endpoints are unaffected.
            self.assertEqual(self.pool(svc)["queries"], 3)
            self.assertEqual(svc.get("/health")[0], 200)
            self.assertEqual(svc.get("/ready")[0], 200)
            svc.wait_log("API queries at their limit, answering 503 until some finish")
            self.assertTrue(all(t.is_alive() for t in threads))
        for t in threads:
            t.join(15)
        self.assertEqual(sorted(r[0] for r in results), [200, 200, 200])
        # Recovered: nothing outstanding, reads answer again.
        wait_until(lambda: self.pool(svc)["queries"] == 0, 5, 0.05, "no API query left")
        self.assertEqual(svc.get("/messages")[0], 200)
        entry = svc.wait_log("API queries below their limit again")
        self.assertGreaterEqual(entry["refused"], 4)

    def test_deadline_does_not_free_a_place(self):
        # A request that timed out still has its query on the database: the
        # bound counts queries, so it stays taken until the database answers.
        svc = self.start(API_DB_QUEUE="1", REQUEST_TIMEOUT="300ms")
        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            code, _, body, _ = self.timed_list(svc)
            self.assertEqual(code, 503)
            self.assertIn(b"in time", body)
            self.assertEqual(self.pool(svc)["queries"], 1)
            code, headers, body = svc.get("/messages")
            self.assertEqual((code, headers.get("retry-after")), (503, "1"), body)
        wait_until(lambda: self.pool(svc)["queries"] == 0, 5, 0.05, "the query answered")
        self.assertEqual(svc.get("/messages")[0], 200)


class BatchTest(ApiPoolTest):
    def test_reads_waiting_together_go_out_in_one_statement(self):
        # One API connection; its first read waits on a lock, so the reads
        # that come meanwhile wait in the service. Once it answers, they go
        # out together: one statement, and still each its own page.
        svc = self.start(API_DB_CONNECTIONS="1", REQUEST_TIMEOUT="20s")
        ids = [int(r[0]) for r in self.psql(
            "SELECT id FROM messages WHERE status = 'sent' ORDER BY sent_at DESC, id DESC")]
        pages = [(1, 0), (10, 0), (3, 2), (5, 8), (2, 9), (4, 20), (1, 0), (100, 1)]
        results = {}

        def get(k, limit, offset):
            results[k] = svc.json("GET", f"/messages?limit={limit}&offset={offset}", timeout=30)

        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            first = threading.Thread(target=get, args=("first", 2, 0))
            first.start()
            wait_until(lambda: waiting_backends(self.pg, self.db), 10, 0.05,
                       "the first read waiting on the lock")
            threads = [threading.Thread(target=get, args=(k, lim, off))
                       for k, (lim, off) in enumerate(pages)]
            for t in threads:
                t.start()
            wait_until(lambda: self.pool(svc)["queries"] == 1 + len(pages), 10, 0.05,
                       "every read accepted")
        for t in [first, *threads]:
            t.join(15)
        self.assertEqual(results["first"][1]["messages"][0]["id"], ids[0])
        for k, (limit, offset) in enumerate(pages):
            code, doc = results[k]
            self.assertEqual(code, 200, doc)
            want = ids[offset:offset + limit]
            self.assertEqual([m["id"] for m in doc["messages"]], want, (limit, offset))
            self.assertEqual(doc["count"], len(want))
        # The API connection's last statement was the batch of all of them.
        last = [q for _, q in self.backends() if "WITH ORDINALITY" in q]
        self.assertEqual(len(last), 1, self.backends())
        # An idle service sends a read alone: the plain statement.
        self.assertEqual(svc.get("/messages?limit=1")[0], 200)
        self.assertFalse([q for _, q in self.backends() if "WITH ORDINALITY" in q])

    def test_reads_of_one_page_waiting_together_share_it(self):
        # Eight clients poll the same page while the first read waits on a lock:
        # the statement that answers them asks for that page once (the plain
        # one-page statement, not the batch of eight), and each gets it whole.
        svc = self.start(API_DB_CONNECTIONS="1", REQUEST_TIMEOUT="20s")
        ids = [int(r[0]) for r in self.psql(
            "SELECT id FROM messages WHERE status = 'sent' ORDER BY sent_at DESC, id DESC")]
        results = {}

        def get(k, url):
            results[k] = svc.json("GET", url, timeout=30)

        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            first = threading.Thread(target=get, args=("first", "/messages?limit=2&offset=5"))
            first.start()
            wait_until(lambda: waiting_backends(self.pg, self.db), 10, 0.05,
                       "the first read waiting on the lock")
            threads = [threading.Thread(target=get, args=(k, "/messages?limit=3&offset=1"))
                       for k in range(8)]
            for t in threads:
                t.start()
            wait_until(lambda: self.pool(svc)["queries"] == 9, 10, 0.05, "every read accepted")
        for t in [first, *threads]:
            t.join(15)
        self.assertEqual([m["id"] for m in results["first"][1]["messages"]], ids[5:7])
        for k in range(8):
            code, doc = results[k]
            self.assertEqual(code, 200, doc)
            self.assertEqual([m["id"] for m in doc["messages"]], ids[1:4])
            self.assertEqual(doc["next"], results[0][1]["next"])
        queries = [q for _, q in self.backends() if "ORDER BY sent_at DESC" in q]
        self.assertEqual(len(queries), 1, self.backends())
        self.assertNotIn("WITH ORDINALITY", queries[0])
        self.assertIn("LIMIT $1 OFFSET $2", queries[0])


class PoolLifecycleTest(ApiPoolTest):
    def test_pool_size_and_first_ready_is_delivery(self):
        # A migrated database, as on every start but the first: an API
        # connection's one check would beat the delivery connection's
        # lock, check and unlock, but it waits for it.
        self.start().stop()
        svc = self.start(API_DB_CONNECTIONS="3")
        self.assertEqual(self.pool(svc), {"connections": 3, "ready": 3, "queries": 0,
                                          "max_queries": 128})
        self.assertEqual(len(self.backends()), 4)  # delivery + 3
        # The API connections wait for the delivery connection (and its
        # migrations): the first "database ready" is the delivery connection's.
        msgs = [e["msg"] for e in svc.logs()]
        self.assertLess(msgs.index("database ready"), msgs.index("api connection ready"))
        self.assertEqual(msgs.count("api connection ready"), 3)

    def test_postgres_restart_reconnects_both(self):
        svc = self.start()
        self.assertEqual(svc.get("/messages")[0], 200)
        before = len(svc.find_logs("api connection ready"))
        self.pg.restart()
        svc.wait_log("database connection failed")
        wait_until(lambda: self.ready(svc)[1]["database"] == "ready"
                   and self.pool(svc)["ready"] == 2, 20, 0.1,
                   "both the delivery and the API connections back")
        self.assertEqual(len(svc.find_logs("api connection ready")), before + 2)
        self.assertEqual(len(self.backends()), 3)
        code, doc = svc.json("GET", "/messages?limit=3")
        self.assertEqual((code, len(doc["messages"])), (200, 3))
        # And delivery works on its own connection again.
        svc.post("/messages/start")
        self.receiver.wait_requests(5, timeout=15)

    def test_api_connections_wait_for_the_schema(self):
        svc = self.start(LOG_LEVEL="debug")
        # The schema looks behind on the server (as if a migration were still
        # being applied): reconnecting API connections must not take reads.
        versions = [v for (v,) in self.psql("SELECT version FROM schema_migrations")]
        self.assertTrue(versions)
        self.psql("DELETE FROM schema_migrations")
        killed = self.pg.psql("postgres", f"""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = '{self.db}' AND application_name = 'gopulse-messages'
              AND query LIKE '%{SCHEMA_CHECK}'""")
        self.assertEqual(len(killed), 2)
        svc.wait_log("api connection waiting for the schema", count=2, timeout=10)
        self.assertEqual(self.pool(svc)["ready"], 0)
        # Meanwhile reads go to the delivery connection rather than failing.
        code, doc = svc.json("GET", "/messages?limit=2")
        self.assertEqual((code, len(doc["messages"])), (200, 2))
        self.assertEqual(self.ready(svc)[0], 200)
        self.psql("INSERT INTO schema_migrations (version) VALUES "
                  + ", ".join(f"('{v}')" for v in versions))
        wait_until(lambda: self.pool(svc)["ready"] == 2, 5, 0.05, "API connections ready")
