"""PostgreSQL: schema migrations, the producer, outages and a frozen server."""

import re
import threading
import time

from harness import PRODUCED, RUN_FINISHED, IntegrationTest, wait_more_logs, wait_until

E164 = re.compile(r"^\+[1-9]\d{9,14}$")


class MigrationTest(IntegrationTest):
    def test_schema_applied_and_tracked(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc.wait_log("database ready")
        self.assertEqual(self.psql("SELECT version FROM schema_migrations"), [("001_schema",)])
        cols = {r[0] for r in self.psql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'messages'")}
        for c in ("id", "recipient", "content", "status", "sent_at", "retry_count",
                  "last_attempt_at", "created_at", "updated_at", "response_id",
                  "response_code", "error_message", "next_attempt_at", "lease_until"):
            self.assertIn(c, cols)
        idx = {r[0] for r in self.psql("SELECT indexname FROM pg_indexes "
                                       "WHERE tablename = 'messages'")}
        self.assertTrue({"messages_due_idx", "messages_sent_idx"} <= idx)
        # A row with only recipient and content is a valid pending message.
        self.psql("INSERT INTO messages (recipient, content) VALUES ('+15550001111', 'hi')")
        self.assertEqual(self.psql("SELECT status, retry_count FROM messages"),
                         [("pending", "0")])
        # The CHECK on status holds.
        with self.assertRaises(Exception):
            self.psql("UPDATE messages SET status = 'lost'")

    def test_restart_is_a_noop(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc.wait_log("database ready")
        self.psql("INSERT INTO messages (recipient, content) VALUES ('+15550001111', 'keep')")
        svc.stop()
        svc2 = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc2.wait_log("database ready")
        self.assertEqual(svc2.find_logs("schema migration applied"), [])
        self.assertEqual(self.psql("SELECT count(*) FROM schema_migrations"), [("1",)])
        self.assertEqual(self.psql("SELECT content FROM messages"), [("keep",)])

    def test_many_instances_start_at_once(self):
        svcs = [self.start_service({"PRODUCER_INTERVAL": "0"}, wait=False) for _ in range(4)]
        for s in svcs:
            s.wait_log("database ready", timeout=20)
        applied = sum(len(s.find_logs("schema migration applied")) for s in svcs)
        self.assertEqual(applied, 1)
        self.assertEqual(self.psql("SELECT version FROM schema_migrations"), [("001_schema",)])
        for s in svcs:
            self.assertEqual(s.find_logs("schema migration failed"), [])


class ProducerTest(IntegrationTest):
    def test_producer_inserts_pending_messages(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "200ms", "AUTOSTART": "false"})
        entries = [svc.wait_log("Successfully created a new message", count=5)]
        entries = svc.find_logs("Successfully created a new message")
        ids = [e["id"] for e in entries]
        self.assertEqual(ids, sorted(ids))
        rows = self.psql("SELECT id, recipient, content, status FROM messages ORDER BY id")
        self.assertGreaterEqual(len(rows), 5)
        for rid, to, content, status in rows:
            self.assertRegex(to, E164)
            self.assertTrue(1 <= len(content) <= 160)
            self.assertEqual(status, "pending")
        self.assertTrue(set(ids) <= {int(r[0]) for r in rows})

    def test_producer_off_with_zero(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "SCHEDULER_INTERVAL": "100ms",
                                  "LOG_LEVEL": "debug"})
        svc.wait_log("database ready")
        svc.wait_log("producer off (PRODUCER_INTERVAL=0)")
        # Five 100 ms scheduler runs on the same loop: a producer would have inserted.
        wait_more_logs(svc, RUN_FINISHED, 5)
        self.assertEqual(self.psql("SELECT count(*) FROM messages"), [("0",)])
        self.assertEqual(svc.find_logs(PRODUCED), [])

    def test_overlapping_tick_is_skipped(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "100ms", "DB_QUERY_TIMEOUT": "10s"})
        svc.wait_log("Successfully created a new message")
        # Hold a lock that makes the next insert wait: ticks must not pile up.
        locker = threading.Thread(target=lambda: self.psql(
            "BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE; SELECT pg_sleep(1.2); COMMIT;"))
        locker.start()
        svc.wait_log("tick skipped: previous insert still in flight", timeout=5, count=3)
        locker.join()
        n = len(svc.find_logs("Successfully created a new message"))
        svc.wait_log("Successfully created a new message", count=n + 2)


class HostNameTest(IntegrationTest):
    def test_dsn_with_a_host_name(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0",
                                  "DATABASE_DSN": self.dsn.replace("127.0.0.1", "localhost")})
        svc.wait_log("database ready")
        self.assertEqual(svc.get("/messages")[0], 200)

    def test_unresolvable_host_does_not_block(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug",
                                  "API_DB_CONNECTIONS": "2",
                                  "DATABASE_DSN": "postgres://postgres@db.invalid:5432/x"})

        def resolve_failures():
            return svc.find_logs(lambda e: e.get("msg") == "database connection failed"
                                 and "resolve db.invalid" in e.get("reason", ""))

        # /health stays fast for as long as it takes to fail to resolve the
        # name twice (the first attempt and a reconnect) on each connection:
        # the delivery one and the API's two.
        deadline = time.monotonic() + 10
        samples = 0
        while len(resolve_failures()) < 2 * 3:
            self.assertLess(time.monotonic(), deadline, "two failed resolutions within 10 s")
            t0 = time.monotonic()
            self.assertEqual(svc.get("/health")[0], 200)
            self.assertLess(time.monotonic() - t0, 0.05)
            samples += 1
            time.sleep(0.05)
        self.assertGreater(samples, 0)
        self.assertEqual(svc.get("/messages")[0], 503)


class OutageTest(IntegrationTest):
    def test_database_down_then_back(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "200ms"})
        svc.wait_log("Successfully created a new message")
        self.assertEqual(svc.get("/messages")[0], 200)
        self.pg.stop()
        try:
            svc.wait_log("database connection failed")
            for _ in range(5):
                t0 = time.monotonic()
                code, _, _ = svc.get("/health")
                self.assertEqual(code, 200)
                self.assertLess(time.monotonic() - t0, 0.05)
                code, doc = svc.json("GET", "/messages")
                self.assertEqual(code, 503)
                self.assertEqual(doc["status"], "error")
                code, doc = svc.json("GET", "/ready")
                self.assertEqual((code, doc["status"]), (503, "not ready"))
                self.assertNotEqual(doc["database"], "ready")
            svc.wait_log("tick skipped: database unavailable")
        finally:
            self.pg.start()
        wait_until(lambda: svc.get("/messages")[0] == 200, 15, 0.1,
                   "/messages answers 200 again after PostgreSQL is back")
        # The API's connections and the delivery one reconnect each on its
        # own backoff: /messages may answer a moment before /ready does.
        wait_until(lambda: svc.get("/ready")[0] == 200, 15, 0.1,
                   "/ready answers 200 again after PostgreSQL is back")
        n = len(svc.find_logs("Successfully created a new message"))
        svc.wait_log("Successfully created a new message", count=n + 2)
        self.assertEqual(svc.returncode, None)

    def test_database_down_at_start(self):
        self.pg.stop()
        try:
            svc = self.start_service({"PRODUCER_INTERVAL": "200ms"})
            self.assertEqual(svc.get("/health")[0], 200)
            self.assertEqual(svc.get("/messages")[0], 503)
        finally:
            self.pg.start()
        svc.wait_log("database ready", timeout=15)
        self.assertEqual(svc.get("/messages")[0], 200)

    def test_server_terminates_idle_connection(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "LOG_LEVEL": "debug"})
        svc.wait_log("database ready")
        # Every connection: the delivery one and the API's own (pgpool).
        wait_until(lambda: svc.json("GET", "/ready")[1]["api_database"]["ready"] == 2, 10,
                   0.05, "the API connections ready")
        ready = len(svc.find_logs("database ready"))
        killed = self.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE application_name = 'gopulse-messages' "
                           "AND datname = current_database()")
        self.assertEqual(len(killed), ready)
        # Noticed while idle, not at the next query.
        svc.wait_log("database connection failed", timeout=5, count=ready)
        svc.wait_log("database ready", count=2 * ready, timeout=10)
        self.assertEqual(svc.get("/messages")[0], 200)

    def test_frozen_database_does_not_block_the_loop(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "100ms", "REQUEST_TIMEOUT": "1s",
                                  "DB_QUERY_TIMEOUT": "1s"})
        svc.wait_log("database ready")
        self.pg.freeze()
        try:
            slow = {}
            t = threading.Thread(target=lambda: slow.update(r=svc.json("GET", "/messages")))
            t.start()
            # /health is fast all the while the request waits (REQUEST_TIMEOUT=1s).
            worst, samples = 0.0, 0
            deadline = time.monotonic() + 10
            while t.is_alive() and time.monotonic() < deadline:
                t0 = time.monotonic()
                self.assertEqual(svc.get("/health")[0], 200)
                worst = max(worst, time.monotonic() - t0)
                samples += 1
                time.sleep(0.05)
            self.assertLess(worst, 0.05)
            self.assertGreaterEqual(samples, 10, "the request waited about REQUEST_TIMEOUT")
            t.join(5)
            self.assertEqual(slow["r"][0], 503)
            self.assertIn("in time", slow["r"][1]["error"])
            # The watchdog gives up on the silent server and reconnects.
            svc.wait_log(lambda e: e.get("msg") == "database connection failed"
                         and "timed out" in e.get("reason", ""), timeout=10)
        finally:
            self.pg.thaw()
        wait_until(lambda: svc.get("/messages")[0] == 200, 15, 0.1,
                   "/messages answers 200 after the freeze")
