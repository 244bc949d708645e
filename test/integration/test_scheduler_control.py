"""The scheduler's own bookkeeping, end to end: a drain asked for while a run
is still sending (stop + start during a window).

Each test waits on a state (rows, received requests) or a log line; none
sleeps and then asserts that nothing happened."""

import time

from harness import REPO, IntegrationTest, wait_until

FAST = {
    "PRODUCER_INTERVAL": "0",
    "SCHEDULER_INTERVAL": "1h",  # no tick unless a test asks for one
    "SCHEDULER_BATCH_SIZE": "1",
    "RETRY_BASE_DELAY": "100ms",
    "WEBHOOK_TIMEOUT": "2s",  # a lease of 2 x 2 s + 10 s = 14 s
    "LOG_LEVEL": "debug",
}

def received_at(req):
    """A receiver timestamp (RFC 3339 UTC with ms) as seconds."""
    t = req["received_at"]
    return time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + int(t[20:23]) / 1000


class SchedulerTest(IntegrationTest):
    # None: the harness's UTF-8 database; otherwise the database is made again
    # with this encoding (template0, C locale) before the schema goes in.
    db_encoding = None

    def setUp(self):
        super().setUp()
        if self.db_encoding:
            ident = '"' + self.db.replace('"', '""') + '"'
            self.pg.psql("postgres", f"DROP DATABASE IF EXISTS {ident} WITH (FORCE)")
            self.pg.psql("postgres", f"CREATE DATABASE {ident} TEMPLATE template0 "
                         f"ENCODING '{self.db_encoding}' LC_COLLATE 'C' LC_CTYPE 'C'")
        # Messages go in before the service starts: the schema from the same
        # idempotent files the service applies.
        for f in sorted((REPO / "sql").glob("*.sql")):
            self.psql(f.read_text())

    def insert(self, n, prefix="msg"):
        self.psql(f"""
            INSERT INTO messages (recipient, content)
            SELECT '+1555' || lpad(g::text, 8, '0'), '{prefix} ' || g
            FROM generate_series(1, {n}) g""")

    def counts(self):
        rows = self.psql("SELECT status, count(*) FROM messages GROUP BY status")
        return {status: int(n) for status, n in rows}

    def wait_counts(self, want, timeout=20):
        return wait_until(lambda: self.counts() == want, timeout, 0.1,
                          f"message counts {want} (last: {self.counts()})")

    def start(self, **env):
        e = dict(FAST)
        e.update(env)
        svc = self.start_service(e)
        svc.wait_log("database ready")
        return svc

    def restart_sending(self, svc):
        self.assertEqual(svc.json("POST", "/messages/stop")[1]["status"], "inactive")
        self.assertEqual(svc.json("POST", "/messages/start")[1]["status"], "active")


class StopStartTest(SchedulerTest):
    def test_drain_requested_during_a_tick_window_is_kept(self):
        # A tick run (quota 1) is posting its one message slowly when
        # sending is stopped and started again. The drain that start asks
        # for must still happen: the four messages due go out together in
        # one window, not one per tick run (each would take 2.5 s).
        self.receiver.set(mode="slow", delay_ms=2500)
        svc = self.start(SCHEDULER_INTERVAL="300ms", WEBHOOK_TIMEOUT="10s")
        svc.wait_log({"msg": "run finished", "reason": "done"})  # boot drain: nothing due
        self.insert(1, "tick")
        self.receiver.wait_requests(1)
        self.insert(4, "due at start")
        self.restart_sending(svc)
        reqs = self.receiver.wait_requests(5, timeout=20)
        later = sorted(received_at(r) for r in reqs[1:5])
        self.assertLess(later[-1] - later[0], 0.7,
                        f"the 4 due messages went out one tick at a time: {later}")
        self.wait_counts({"sent": 5})
        svc.wait_log({"msg": "drain queued: previous run still in progress",
                      "trigger": "drain on start"})

    def test_drain_requested_during_a_drain_window_sees_new_messages(self):
        # The boot drain's only window is in flight (it claimed everything
        # that was due then); new messages come; stop + start. With ticks an
        # hour apart, only the requested drain can send them.
        self.receiver.set(mode="slow", delay_ms=1500)
        self.insert(2)
        svc = self.start()
        self.receiver.wait_requests(2)
        self.insert(3, "while sending")
        self.restart_sending(svc)
        self.wait_counts({"sent": 5}, timeout=10)
        self.assertEqual(len(self.receiver.requests()), 5)

    def test_stop_during_a_window_still_ends_the_run(self):
        # Stop alone: the window finishes, its outcomes are written, and no
        # queued drain starts one more run behind the operator's back.
        self.receiver.set(mode="slow", delay_ms=800)
        self.insert(2)
        svc = self.start()
        self.receiver.wait_requests(2)
        self.insert(2, "after stop")
        svc.json("POST", "/messages/stop")
        svc.wait_log({"msg": "run finished", "reason": "stopped"})
        self.assertEqual(self.counts(), {"sent": 2, "pending": 2})
        self.assertEqual(len(self.receiver.requests()), 2)
        self.assertEqual(svc.find_logs("drain queued: previous run still in progress"), [])
