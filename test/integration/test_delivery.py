"""Delivery end to end: the real binary, PostgreSQL, Redis and an HTTP
receiver whose answers the tests control."""

import json
import signal
import threading
import time

from harness import (FAST_DELIVERY, PRODUCED, RUN_FINISHED, RUN_STARTED, MessagesTest,
                     log_time, received_time, wait_more_logs, wait_until)

FAST = FAST_DELIVERY


class DeliveryTest(MessagesTest):
    FAST = FAST

    def setUp(self):
        super().setUp()
        # Messages go in before the service starts: create the table the way
        # the compose database does, from the same idempotent files.
        self.create_schema()

    def received_ids(self):
        return [r["headers"].get("webhook-id") for r in self.receiver.requests()]

    def start_with_clock(self, **env):
        """start() with the producer as a clock for a stopped scheduler, which logs nothing.

        The producer inserts every 100 ms (the scheduler's interval here) on the same
        loop, so waiting for n of its inserts is a window of n scheduler intervals in
        which a stopped scheduler must send nothing. Its rows are never due (the default
        of next_attempt_at becomes 'infinity'; insert() gives now()), so they are never
        claimed, never sent and not counted by counts()."""
        self.psql("ALTER TABLE messages ALTER COLUMN next_attempt_at SET DEFAULT 'infinity'")
        e = {"PRODUCER_INTERVAL": "100ms", "LOG_LEVEL": "debug"}
        e.update(env)
        svc = self.start(**e)
        svc.wait_log(PRODUCED)
        return svc


class EndToEndTest(DeliveryTest):
    def test_delivers_payload_headers_row_and_cache(self):
        self.insert(3)
        svc = self.start(WEBHOOK_AUTH_KEY="s3cret-key", CACHE_TTL="1h")
        self.wait_counts({"sent": 3})
        reqs = self.receiver.requests()
        self.assertEqual(len(reqs), 3)
        rows = {int(r[0]): r for r in self.psql(
            "SELECT id, recipient, content, status, response_id, response_code, "
            "retry_count, sent_at IS NOT NULL, lease_until, "
            "updated_at >= sent_at AND sent_at > created_at FROM messages")}
        for req in reqs:
            h = req["headers"]
            self.assertEqual(req["method"], "POST")
            self.assertEqual(req["path"], "/webhook")
            self.assertEqual(h["content-type"], "application/json")
            self.assertEqual(h["x-ins-auth-key"], "s3cret-key")
            self.assertRegex(h["user-agent"], r"^gopulse-messages/\d+\.\d+\.\d+$")
            mid = int(h["webhook-id"].removeprefix("msg_"))
            row = rows[mid]
            self.assertEqual(json.loads(req["body"]), {"to": row[1], "content": row[2]})
            self.assertEqual(row[3], "sent")
            self.assertEqual(row[4], req["message_id"])
            self.assertEqual(row[5], "202")
            self.assertEqual(row[6], "0")
            self.assertEqual(row[7], "t")
            self.assertIsNone(row[8])
            self.assertEqual(row[9], "t")  # updated_at moved with the outcome
            cached = json.loads(self.redis.cli("GET", f"message:{mid}"))
            self.assertEqual(cached["messageId"], req["message_id"])
            self.assertRegex(cached["sentAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            ttl = int(self.redis.cli("TTL", f"message:{mid}"))
            self.assertTrue(3500 <= ttl <= 3600, ttl)
            sent = svc.wait_log({"msg": "message sent", "id": mid})
            self.assertEqual(sent["messageId"], req["message_id"])
        # And they show in the API, newest first.
        code, doc = svc.json("GET", "/messages")
        self.assertEqual(doc["count"], 3)
        self.assertEqual({m["response_id"] for m in doc["messages"]},
                         {r["message_id"] for r in reqs})
        self.assertNotIn("s3cret-key", svc.raw_log())

    def test_no_auth_header_without_key(self):
        self.insert(1)
        self.start()
        self.wait_counts({"sent": 1})
        self.assertNotIn("x-ins-auth-key", self.receiver.requests()[0]["headers"])

    def test_2xx_without_message_id_is_sent(self):
        self.receiver.set(mode="nojson")
        self.insert(1)
        svc = self.start()
        self.wait_counts({"sent": 1})
        self.assertEqual(self.psql("SELECT response_id FROM messages"), [(None,)])
        svc.wait_log("webhook accepted without a messageId")
        cached = json.loads(self.redis.cli("GET", "message:1"))
        self.assertIsNone(cached["messageId"])

    def test_garbage_200_is_sent(self):
        self.receiver.set(mode="garbage")
        self.insert(1)
        self.start()
        self.wait_counts({"sent": 1})


class ControlTest(DeliveryTest):
    def test_start_and_stop(self):
        svc = self.start_with_clock(AUTOSTART="false")
        self.insert(3)
        wait_more_logs(svc, PRODUCED, 6)  # six scheduler intervals
        self.assertEqual(self.receiver.requests(), [])
        self.assertEqual(svc.find_logs(RUN_STARTED), [])
        self.assertEqual(self.counts(), {"pending": 3})
        self.assertEqual(svc.json("POST", "/messages/start")[1]["status"], "active")
        self.wait_counts({"sent": 3})
        self.assertEqual(svc.json("POST", "/messages/stop")[1]["status"], "inactive")
        stopped = svc.wait_log("automatic sending stopped")
        self.insert(2, "later")
        wait_more_logs(svc, PRODUCED, 6)  # six scheduler intervals
        self.assertEqual(self.counts(), {"sent": 3, "pending": 2})
        self.assertEqual(len(self.receiver.requests()), 3)
        self.assertEqual([e for e in svc.find_logs(RUN_STARTED)
                          if log_time(e) > log_time(stopped)], [])
        svc.json("POST", "/messages/start")
        self.wait_counts({"sent": 5})

    def test_stop_lets_in_flight_finish(self):
        self.receiver.set(mode="slow", delay_ms=800)
        self.insert(4)
        svc = self.start_with_clock()
        self.receiver.wait_requests(4)
        svc.json("POST", "/messages/stop")
        self.wait_counts({"sent": 4}, timeout=10)
        self.insert(2, "after stop")
        wait_more_logs(svc, PRODUCED, 6)  # six scheduler intervals
        self.assertEqual(len(self.receiver.requests()), 4)
        self.assertEqual(self.counts(), {"sent": 4, "pending": 2})

    def test_default_two_per_tick_after_drain(self):
        # The defaults, with only the interval shortened: drain at start,
        # then 2 per tick.
        self.insert(70)  # more than one window of WEBHOOK_CONCURRENCY=64
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "SCHEDULER_INTERVAL": "1500ms"})
        self.wait_counts({"sent": 70}, timeout=15)
        self.receiver.clear()
        self.insert(5, "tick")
        wait_until(lambda: len(self.receiver.requests()) == 5, 15, 0.1, "5 more sent")
        times = sorted(time.mktime(time.strptime(r["received_at"][:19], "%Y-%m-%dT%H:%M:%S"))
                       + int(r["received_at"][20:23]) / 1000 for r in self.receiver.requests())
        groups = [[times[0]]]
        for t in times[1:]:
            if t - groups[-1][-1] > 0.7:
                groups.append([t])
            else:
                groups[-1].append(t)
        self.assertEqual([len(g) for g in groups], [2, 2, 1], times)
        svc.stop()

    def test_drain_on_start_off_waits_for_tick(self):
        self.insert(3)
        svc = self.start(DRAIN_ON_START="false", SCHEDULER_INTERVAL="1s",
                         SCHEDULER_BATCH_SIZE="2", LOG_LEVEL="debug")
        started = svc.wait_log("automatic sending started")
        # The first run is the first tick's, one interval after sending started:
        # no drain ran, and nothing left before that tick.
        first_run = svc.wait_log(RUN_STARTED, timeout=5)
        self.assertEqual(first_run["trigger"], "tick")
        reqs = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
            self.receiver.requests()), 5, 0.05, "first tick")
        self.assertGreaterEqual(log_time(first_run) - log_time(started), 0.9)
        self.assertGreaterEqual(min(received_time(r) for r in reqs) - log_time(started), 0.9)


class RetryTest(DeliveryTest):
    def test_retry_then_success(self):
        self.receiver.set(mode="fail_then_accept", status=500, fail_count=2)
        self.insert(1)
        svc = self.start(LOG_LEVEL="debug")  # attempts that fail are logged at debug
        self.wait_counts({"sent": 1})
        row = self.psql("SELECT retry_count, response_code, error_message, "
                        "last_attempt_at IS NOT NULL FROM messages")[0]
        self.assertEqual(row[0], "2")
        self.assertEqual(row[1], "202")
        self.assertEqual(row[3], "t")
        ids = self.received_ids()
        self.assertEqual(ids, ["msg_1"] * 3)  # stable across retries
        self.assertEqual(len(svc.find_logs("delivery attempt failed")), 2)

    def test_backoff_spacing(self):
        self.receiver.set(mode="status", status=503)
        self.insert(1)
        self.start(RETRY_BASE_DELAY="300ms", MAX_ATTEMPTS="4")
        self.wait_counts({"failed": 1}, timeout=15)
        reqs = self.receiver.requests()
        self.assertEqual(len(reqs), 4)
        ts = [time.mktime(time.strptime(r["received_at"][:19], "%Y-%m-%dT%H:%M:%S"))
              + int(r["received_at"][20:23]) / 1000 for r in reqs]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        # 300, 600, 1200 ms (+-20 %, plus up to one 100 ms tick)
        for gap, nominal in zip(gaps, (0.3, 0.6, 1.2)):
            self.assertGreaterEqual(gap, nominal * 0.8 - 0.01, gaps)
            self.assertLessEqual(gap, nominal * 1.2 + 0.25, gaps)

    def test_retry_after_is_honoured(self):
        self.receiver.set(mode="fail_then_accept", status=429, fail_count=1, retry_after=2)
        self.insert(1)
        self.start()
        self.wait_counts({"sent": 1}, timeout=10)
        reqs = self.receiver.requests()
        t = [time.mktime(time.strptime(r["received_at"][:19], "%Y-%m-%dT%H:%M:%S"))
             + int(r["received_at"][20:23]) / 1000 for r in reqs]
        self.assertGreaterEqual(t[1] - t[0], 1.9)

    def test_permanent_4xx_fails_at_once(self):
        self.receiver.set(mode="status", status=400)
        self.insert(1)
        svc = self.start(LOG_LEVEL="debug")
        self.wait_counts({"failed": 1})
        # Five more complete scheduler runs, each finding nothing due: no retry.
        wait_more_logs(svc, RUN_FINISHED, 5)
        self.assertEqual(len(self.receiver.requests()), 1)
        row = self.psql("SELECT retry_count, response_code, error_message FROM messages")[0]
        self.assertEqual(row[1], "400")
        self.assertIn("400", row[2])
        svc.wait_log("message failed")
        self.assertEqual(self.redis.cli("KEYS", "message:*"), "")

    def test_max_attempts_exhausted(self):
        self.receiver.set(mode="status", status=500)
        self.insert(1)
        svc = self.start(MAX_ATTEMPTS="3", LOG_LEVEL="debug")
        self.wait_counts({"failed": 1})
        # Five more complete scheduler runs, each finding nothing due: no 4th attempt.
        wait_more_logs(svc, RUN_FINISHED, 5)
        self.assertEqual(len(self.receiver.requests()), 3)
        row = self.psql("SELECT retry_count, error_message FROM messages")[0]
        self.assertEqual(row[0], "3")
        self.assertIn("gave up after 3 attempts", row[1])

    def test_timeout(self):
        self.receiver.set(mode="hang")
        self.insert(1)
        t0 = time.monotonic()
        self.start(WEBHOOK_TIMEOUT="300ms", MAX_ATTEMPTS="2")
        self.wait_counts({"failed": 1}, timeout=10)
        self.assertLess(time.monotonic() - t0, 8)
        row = self.psql("SELECT retry_count, error_message, response_code FROM messages")[0]
        self.assertEqual(row[0], "2")
        self.assertIn("timed out", row[1].lower())
        self.assertIsNone(row[2])

    def test_connection_refused_retries(self):
        self.insert(1)
        self.start(WEBHOOK_HOST="http://127.0.0.1:1", MAX_ATTEMPTS="2")
        self.wait_counts({"failed": 1})
        self.assertIn("gave up", self.psql("SELECT error_message FROM messages")[0][0])

    def test_connection_reset_retries_then_sends(self):
        # The receiver drops each connection without an answer: a connection
        # error, retried like a 5xx, and the message goes once it answers again.
        self.receiver.set(mode="reset")
        self.insert(1)
        self.start(MAX_ATTEMPTS="10")
        wait_until(lambda: int(self.psql("SELECT retry_count FROM messages")[0][0]) >= 2, 10,
                   0.05, "two failed attempts")
        self.assertEqual(self.counts(), {"pending": 1})
        self.assertIsNotNone(self.psql("SELECT error_message FROM messages")[0][0])
        self.receiver.set(mode="accept")
        self.wait_counts({"sent": 1})
        statuses = [r["status"] for r in self.receiver.requests()]
        self.assertEqual(statuses[-1], 202)
        self.assertTrue(all(st is None for st in statuses[:-1]), statuses)


class OutageDeliveryTest(DeliveryTest):
    def test_redis_down_then_back(self):
        svc = self.start(LOG_LEVEL="debug")
        svc.wait_log(lambda e: e.get("component") == "redis" and "ready" in e.get("msg", ""))
        self.redis.stop()
        try:
            self.insert(2, "while down")
            self.wait_counts({"sent": 2})  # delivery goes on
        finally:
            self.redis.start()
        wait_until(lambda: len([e for e in svc.logs() if e.get("component") == "redis"
                                and "ready" in e.get("msg", "")]) >= 2, 15, 0.1,
                   "redis reconnected")
        self.insert(2, "after")
        self.wait_counts({"sent": 4})
        wait_until(lambda: self.redis.cli("EXISTS", "message:3") == "1"
                   and self.redis.cli("EXISTS", "message:4") == "1", 5, 0.05,
                   "cache resumed")
        # The two sent while it was down are rewritten from PostgreSQL.
        wait_until(lambda: self.redis.cli("EXISTS", "message:1") == "1"
                   and self.redis.cli("EXISTS", "message:2") == "1", 10, 0.05,
                   "missed entries rewritten")

    def test_redis_frozen_does_not_slow_delivery(self):
        svc = self.start()
        self.redis.freeze()
        try:
            self.insert(5)
            t0 = time.monotonic()
            self.wait_counts({"sent": 5}, timeout=10)
            self.assertLess(time.monotonic() - t0, 3)
            t0 = time.monotonic()
            self.assertEqual(svc.get("/health")[0], 200)
            self.assertLess(time.monotonic() - t0, 0.05)
        finally:
            self.redis.thaw()

    def test_postgres_restarted_mid_run(self):
        self.receiver.set(mode="slow", delay_ms=700)
        self.insert(20)
        svc = self.start(WEBHOOK_CONCURRENCY="8")
        self.receiver.wait_requests(8)
        self.pg.restart()
        self.wait_counts({"sent": 20}, timeout=30)
        ids = self.received_ids()
        self.assertEqual(sorted(set(ids)), sorted(f"msg_{i}" for i in range(1, 21)))
        self.assertEqual(len(ids), 20, "no message sent twice")


class ConcurrencyTest(DeliveryTest):
    def test_two_instances_deliver_500_exactly_once(self):
        self.insert(500)
        a = self.start(WEBHOOK_CONCURRENCY="16", AUTOSTART="false")
        b = self.start(WEBHOOK_CONCURRENCY="16", AUTOSTART="false")
        a.post("/messages/start")
        b.post("/messages/start")
        self.wait_counts({"sent": 500}, timeout=60)
        ids = self.received_ids()
        self.assertEqual(len(ids), 500)
        self.assertEqual(len(set(ids)), 500)
        by_a = len(a.find_logs("message sent"))
        by_b = len(b.find_logs("message sent"))
        self.assertEqual(by_a + by_b, 500)
        self.assertGreater(min(by_a, by_b), 0, "both instances took part")

    def test_pipelined_connection_drains_and_reads_exactly_once(self):
        # A direct connection may carry several queries at once: here the API reads
        # share the delivery connection too, so claims, outcome writes and pages of
        # GET /messages are in flight together, each answered to its own caller.
        n = 3000
        self.insert(n)
        svc = self.start(DB_PIPELINE_DEPTH="32", API_DB_CONNECTIONS="0", AUTOSTART="false",
                         LOG_LEVEL="debug")
        pages = []
        done = threading.Event()

        def read():
            while not done.is_set():
                code, doc = svc.json("GET", "/messages?limit=5")
                pages.append((code, doc.get("count")))

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        svc.post("/messages/start")
        try:
            self.wait_counts({"sent": n}, timeout=60)
        finally:
            done.set()
            for t in readers:
                t.join(10)
        ids = self.received_ids()
        self.assertEqual(len(ids), n)
        self.assertEqual(len(set(ids)), n)
        self.assertEqual(len(svc.find_logs("message sent")), n)
        wait_until(lambda: self.redis.cli("DBSIZE") == str(n), 10, 0.05, f"{n} cache keys")
        # Every page was answered, with its own rows: never another query's result.
        self.assertGreater(len(pages), 10)
        self.assertEqual({c for c, _ in pages}, {200})
        self.assertTrue(all(k is not None and 0 <= k <= 5 for _, k in pages), pages[:20])
        self.assertEqual(svc.find_logs("database connection failed"), [])
        code, doc = svc.json("GET", "/messages?limit=5")
        self.assertEqual((code, doc["count"]), (200, 5))
        # A direct connection: no pooler in the way, the whole depth is used.
        self.assertEqual([e["pipeline_depth"] for e in svc.find_logs(
            "database reached directly")], [32])

    def test_health_fast_while_50_requests_hang(self):
        self.receiver.set(mode="hang")
        self.insert(50)
        svc = self.start(WEBHOOK_TIMEOUT="30s", SHUTDOWN_TIMEOUT="1s")
        self.receiver.wait_requests(50)
        worst = 0.0
        for _ in range(30):
            t0 = time.monotonic()
            self.assertEqual(svc.get("/health")[0], 200)
            worst = max(worst, time.monotonic() - t0)
        self.assertLess(worst, 0.05)
        code, doc = svc.json("GET", "/messages")
        self.assertEqual(code, 200)
        self.receiver.set(mode="accept")


class CrashTest(DeliveryTest):
    def test_kill9_mid_run_then_restart_loses_nothing(self):
        self.receiver.set(mode="slow", delay_ms=200)
        self.insert(60)
        svc = self.start(WEBHOOK_CONCURRENCY="10", WEBHOOK_TIMEOUT="1s")
        wait_until(lambda: self.counts().get("sent", 0) >= 15, 20, 0.05, "some sent")
        svc.kill9()
        sent_at_kill = {f"msg_{r[0]}" for r in self.psql(
            "SELECT id FROM messages WHERE status = 'sent'")}
        svc2 = self.start(WEBHOOK_CONCURRENCY="10", WEBHOOK_TIMEOUT="1s")
        # Read once the receiver has surely taken what was already on the wire at
        # the kill; svc2 posts nothing of the dead process's claims before their
        # lease (2 x 1 s + 10 s) runs out.
        received_at_kill = set(self.received_ids())
        self.wait_counts({"sent": 60}, timeout=40)
        ids = self.received_ids()
        self.assertEqual(set(ids), {f"msg_{i}" for i in range(1, 61)})
        repeated = {i for i in ids if ids.count(i) > 1}
        # Only messages in flight at the crash repeat: posted (the receiver had
        # them) but their outcome not yet committed. Those are at most the 10
        # slots plus the outcomes of one batch being written.
        self.assertTrue(sent_at_kill, "some outcomes were committed before the kill")
        self.assertEqual(repeated & sent_at_kill, set(), "a committed outcome never repeats")
        self.assertLessEqual(repeated, received_at_kill, "only messages posted before the kill")
        self.assertLessEqual(len(ids) - len(set(ids)), 2 * 10)
        svc2.stop()

    def test_sigterm_records_in_flight_outcomes(self):
        self.receiver.set(mode="slow", delay_ms=1500)
        self.insert(5)
        svc = self.start()
        self.receiver.wait_requests(5)
        svc.signal(signal.SIGTERM)
        self.assertEqual(svc.wait_exit(15), 0)
        self.assertEqual(self.counts(), {"sent": 5})
        for i in range(1, 6):
            self.assertEqual(self.redis.cli("EXISTS", f"message:{i}"), "1")

    def test_sigterm_deadline_abandons_hanging_requests(self):
        self.receiver.set(mode="hang")
        self.insert(3)
        svc = self.start(SHUTDOWN_TIMEOUT="1s", WEBHOOK_TIMEOUT="30s")
        self.receiver.wait_requests(3)
        t0 = time.monotonic()
        svc.signal(signal.SIGTERM)
        self.assertEqual(svc.wait_exit(10), 0)
        self.assertLess(time.monotonic() - t0, 4)
        # Still pending, under a lease that will run out.
        rows = self.psql("SELECT status, lease_until > now() FROM messages")
        self.assertEqual(rows, [("pending", "t")] * 3)
        self.receiver.set(mode="accept")
