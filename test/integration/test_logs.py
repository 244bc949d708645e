"""Logs an operator can read during an incident: a condition that repeats is one line
when it starts, summaries while it lasts and one line with its count when it ends, not a
line per message or per tick."""

import time

from harness import FAST_DELIVERY, MessagesTest, wait_until

FAST = FAST_DELIVERY


class IncidentLogTest(MessagesTest):
    FAST = FAST

    def setUp(self):
        super().setUp()
        self.create_schema()

    def test_stalled_redis_is_one_warning_not_one_per_message(self):
        self.insert(200)
        svc = self.start(AUTOSTART="false")
        svc.wait_log("redis ready")
        self.redis.freeze()
        try:
            svc.post("/messages/start")
            self.wait_counts({"sent": 200})
            # Every write of the drain times out (or dies with the link the PING
            # watchdog drops): one warning for them all.
            svc.wait_log("cache write failed", timeout=15)
            wait_until(lambda: svc.find_logs("redis connection lost"), 15, 0.1,
                       "the watchdog dropping the frozen link")
        finally:
            self.redis.thaw()
        svc.wait_log("redis ready", count=2, timeout=15)
        self.insert(1, "after")
        self.wait_counts({"sent": 201})
        back = svc.wait_log("cache writes succeed again")
        self.assertGreaterEqual(back["total"], 2)
        failed = svc.find_logs("cache write failed")
        self.assertEqual(len(failed), 1, failed[:3])
        self.assertEqual(failed[0]["level"], "warn")
        self.assertIn("reason", failed[0])
        # Each message still says it was sent; its failed attempts would be debug.
        self.assertEqual(len(svc.find_logs("message sent")), 201)
        self.assertEqual(svc.find_logs("delivery attempt failed"), [])

    def test_ticks_skipped_while_the_database_is_down_are_one_line(self):
        self.insert(3)
        svc = self.start(AUTOSTART="false")
        self.pg.stop()
        try:
            # A drain begins and cannot claim: it waits for the database, and every
            # tick meanwhile finds it still going.
            svc.post("/messages/start")
            svc.wait_log("tick skipped: previous run still in progress")
            time.sleep(1.5)  # about 15 ticks
        finally:
            self.pg.start()
        self.wait_counts({"sent": 3})
        back = svc.wait_log("ticks run again", timeout=15)
        self.assertGreaterEqual(back["total"], 5)
        skipped = svc.find_logs("tick skipped: previous run still in progress")
        self.assertEqual(len(skipped), 1)
        self.assertEqual(skipped[0]["level"], "info")

    def test_failed_attempts_are_debug_the_final_failure_warn(self):
        self.receiver.set(mode="status", status=503)
        self.insert(2)
        # The circuit off: with it, two messages failing in turn look like a receiver
        # outage, which never fails a message (test_circuit).
        svc = self.start(MAX_ATTEMPTS="3", CIRCUIT_FAILURES="0")
        self.wait_counts({"failed": 2})
        svc.wait_log("message failed", count=2)
        self.assertEqual({e["level"] for e in svc.find_logs("message failed")}, {"warn"})
        self.assertEqual(svc.find_logs("delivery attempt failed"), [])
