"""A cache that heals (SPEC "Redis is a cache"): entries missed while Redis was down or
frozen are written from PostgreSQL once it is back, with what is left of CACHE_TTL, and
those that would already have expired are not."""

from __future__ import annotations

import json
import time
from datetime import datetime

from harness import FAST_DELIVERY, SAN, VALGRIND, MessagesTest, wait_until

SLOW = 10 if VALGRIND else 2 if SAN else 1
FAST = FAST_DELIVERY


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class CacheHealTest(MessagesTest):
    FAST = FAST

    def setUp(self):
        super().setUp()
        self.create_schema()

    def keys(self) -> int:
        return int(self.redis.cli("EVAL", "return #redis.call('KEYS', 'message:*')", "0"))

    def assert_entries(self, ttl_s: int):
        """Every sent message has its entry, with the row's values and what is left of
        its TTL (within a few seconds)."""
        rows = self.psql("SELECT id, response_id, extract(epoch FROM sent_at) "
                         "FROM messages WHERE status = 'sent' "
                         f"AND sent_at > now() - interval '{ttl_s - 3} seconds'")
        self.assertTrue(rows)
        # Every entry and its TTL in one call (a redis-cli per key is slow).
        got = json.loads(self.redis.cli(
            "EVAL", "local out = {} for i, k in ipairs(KEYS) do"
            " out[i] = {redis.call('GET', k), redis.call('TTL', k)} end"
            " return cjson.encode(out)",
            str(len(rows)), *(f"message:{r[0]}" for r in rows)))
        now = time.time()
        for (mid, response_id, sent_at), (value, ttl) in zip(rows, got):
            self.assertIsInstance(value, str, f"message:{mid} missing")
            doc = json.loads(value)
            self.assertEqual(doc["messageId"], response_id)
            self.assertAlmostEqual(epoch(doc["sentAt"]), float(sent_at), delta=0.002)
            # The database and Redis share this machine's clock.
            left = ttl_s - (now - float(sent_at))
            self.assertLessEqual(ttl, left + 1.5, mid)
            self.assertGreaterEqual(ttl, left - 3 * SLOW, mid)

    def test_redis_stopped_during_1000_deliveries(self):
        n = 1000
        svc = self.start(CACHE_TTL="1h")
        svc.wait_log(lambda e: e.get("component") == "redis" and "ready" in e.get("msg", ""))
        self.redis.stop()
        try:
            self.insert(n)
            self.wait_counts({"sent": n}, timeout=60 * SLOW)
        finally:
            self.redis.start()
        wait_until(lambda: self.keys() == n, 30 * SLOW, 0.2, f"{n} cache keys")
        svc.wait_log("cache entries missed while redis was down rewritten", timeout=10 * SLOW)
        self.assert_entries(3600)
        self.assertEqual(svc.find_logs(lambda e: e.get("level") == "error"), [])

    def test_redis_frozen_then_thawed(self):
        n = 200
        svc = self.start(CACHE_TTL="1h")
        svc.wait_log(lambda e: e.get("component") == "redis" and "ready" in e.get("msg", ""))
        self.redis.freeze()
        try:
            self.insert(n)
            self.wait_counts({"sent": n}, timeout=30 * SLOW)
            svc.wait_log("cache write failed", timeout=10 * SLOW)
        finally:
            self.redis.thaw()
        svc.wait_log("cache entries missed while redis was down rewritten", timeout=30 * SLOW)
        self.assertEqual(self.keys(), n)
        self.assert_entries(3600)

    def test_entries_that_would_have_expired_are_not_written(self):
        svc = self.start(CACHE_TTL="10s")
        svc.wait_log(lambda e: e.get("component") == "redis" and "ready" in e.get("msg", ""))
        self.redis.stop()
        try:
            self.insert(10, "new")
            self.wait_counts({"sent": 10})
            # Sent 15 s ago (by another instance, say): past their 10 s of TTL.
            self.psql("""
                INSERT INTO messages (recipient, content, status, sent_at, response_id)
                SELECT '+15550000000', 'old ' || g, 'sent', now() - interval '15 seconds',
                       'r' || g FROM generate_series(1, 10) g""")
        finally:
            self.redis.start()
        svc.wait_log("cache entries missed while redis was down rewritten", timeout=15 * SLOW)
        old = [int(r[0]) for r in self.psql(
            "SELECT id FROM messages WHERE content LIKE 'old%'")]
        self.assertEqual(len(old), 10)
        for mid in old:
            self.assertEqual(self.redis.cli("EXISTS", f"message:{mid}"), "0")
        self.assert_entries(10)

    def test_start_rewrites_what_a_killed_predecessor_missed(self):
        # An instance SIGKILLed after committing sent outcomes but before writing
        # their entries leaves them missing, and no survivor knows: each start
        # rewrites what was sent within the minute before it.
        self.psql("""
            INSERT INTO messages (recipient, content, status, sent_at, response_id)
            SELECT '+15550000000', 'killed ' || g, 'sent', now() - interval '5 seconds',
                   'r' || g FROM generate_series(1, 5) g""")
        svc = self.start(CACHE_TTL="1h")
        svc.wait_log("cache entries sent shortly before start rewritten", timeout=10 * SLOW)
        self.assertEqual(self.keys(), 5)
        self.assert_entries(3600)
