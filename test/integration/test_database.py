"""PostgreSQL: schema migrations, the producer, outages and a frozen server."""

import re
import threading
import time

from harness import (PRODUCED, REPO, RUN_FINISHED, IntegrationTest, PgLock, wait_more_logs,
                     wait_until)

E164 = re.compile(r"^\+[1-9]\d{9,14}$")
# Every migration the binary carries, in the order it applies them.
VERSIONS = [f.stem for f in sorted((REPO / "sql").glob("*.sql"))]


class MigrationTest(IntegrationTest):
    def test_schema_applied_and_tracked(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc.wait_log("database ready")
        self.assertEqual(self.psql("SELECT version FROM schema_migrations ORDER BY version"),
                         [(v,) for v in VERSIONS])
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
        # No trigger runs per row (002): the service's statements set updated_at.
        self.assertEqual(self.psql("SELECT count(*) FROM pg_trigger WHERE "
                                   "tgrelid = 'messages'::regclass AND NOT tgisinternal"),
                         [("0",)])

    def test_restart_is_a_noop(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc.wait_log("database ready")
        self.psql("INSERT INTO messages (recipient, content) VALUES ('+15550001111', 'keep')")
        svc.stop()
        svc2 = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc2.wait_log("database ready")
        self.assertEqual(svc2.find_logs("schema migration applied"), [])
        self.assertEqual(self.psql("SELECT count(*) FROM schema_migrations"),
                         [(str(len(VERSIONS)),)])
        self.assertEqual(self.psql("SELECT content FROM messages"), [("keep",)])

    def test_many_instances_start_at_once(self):
        svcs = [self.start_service({"PRODUCER_INTERVAL": "0"}, wait=False) for _ in range(4)]
        for s in svcs:
            s.wait_log("database ready", timeout=20)
        applied = [e["version"] for s in svcs for e in s.find_logs("schema migration applied")]
        self.assertEqual(sorted(applied), VERSIONS)  # each file once, by one of them
        self.assertEqual(self.psql("SELECT version FROM schema_migrations ORDER BY version"),
                         [(v,) for v in VERSIONS])
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
        svc.wait_log("tick skipped: previous insert still in flight", timeout=5)
        locker.join()
        # One line, however many ticks: their count comes when inserts go on.
        back = svc.wait_log("inserts keep up with ticks again", timeout=5)
        self.assertGreaterEqual(back["total"], 3)
        self.assertEqual(len(svc.find_logs("tick skipped: previous insert still in flight")), 1)
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


class StatementTimeoutTest(IntegrationTest):
    """DB_QUERY_TIMEOUT is the server's statement_timeout, set per transaction (no startup
    parameter, which PgBouncer in transaction mode refuses): a statement that waits longer
    is cancelled by the server, and the connection, which did answer, is kept."""

    LOCK = "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"

    def assert_connection_kept(self, svc):
        # No connection (the delivery one, nor the API's) was given up on.
        self.assertEqual(svc.find_logs("database connection failed"), [])

    def test_list_waiting_on_a_lock_is_cancelled_after_db_query_timeout(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                  "DB_QUERY_TIMEOUT": "1s", "REQUEST_TIMEOUT": "10s"})
        # The read goes out on an API connection, pipelined like the delivery one.
        svc.wait_log("api connection ready")
        with PgLock(self.pg, self.db, self.LOCK):
            t0 = time.monotonic()
            code, doc = svc.json("GET", "/messages")
            elapsed = time.monotonic() - t0
            # Answered while the lock is still held: the server gave up, not the lock.
        self.assertEqual((code, doc["status"]), (503, "error"))
        self.assertGreaterEqual(elapsed, 0.9)
        # Well before the watchdog (timeout + 2 s) and the request deadline (10 s).
        self.assertLess(elapsed, 2.5)
        failed = svc.wait_log("listing messages failed")
        self.assertIn("canceling statement due to statement timeout", failed["reason"])
        self.assert_connection_kept(svc)
        # The setting ended with its transaction: a query after it is not bounded by a
        # leftover 1 s (pg_sleep(1.5) would fail), and the list works again.
        self.assertEqual(svc.get("/messages")[0], 200)
        self.assert_connection_kept(svc)

    def test_claim_waiting_on_a_lock_is_cancelled_then_retried(self):
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                  "DB_QUERY_TIMEOUT": "1s", "SCHEDULER_INTERVAL": "1h"})
        svc.wait_log("database ready")
        self.psql("INSERT INTO messages (recipient, content) VALUES ('+15550001111', 'hi')")
        with PgLock(self.pg, self.db, self.LOCK):
            t0 = time.monotonic()
            self.assertEqual(svc.json("POST", "/messages/start")[0], 200)
            cannot = svc.wait_log(lambda e: e.get("msg") == "cannot claim, will retry"
                                  and "statement timeout" in e.get("reason", ""))
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)
            self.assertEqual(cannot["level"], "warn")
            self.assertEqual(self.receiver.requests(), [])
        # The lock is gone: the same run claims again and sends, on the same connection.
        wait_until(lambda: self.psql("SELECT status FROM messages") == [("sent",)], 15, 0.1,
                   "the message sent once the lock is gone")
        self.assertEqual(len(self.receiver.requests()), 1)
        self.assert_connection_kept(svc)
