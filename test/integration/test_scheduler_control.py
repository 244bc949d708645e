"""The scheduler's own bookkeeping, end to end: a drain asked for while a run
is still sending (stop + start during a window), and a message the webhook
client refuses to post (released at once, never claimed in a loop).

Each test waits on a state (rows, received requests) or a log line; none
sleeps and then asserts that nothing happened."""

import time

from harness import MessagesTest, wait_until

FAST = {
    "PRODUCER_INTERVAL": "0",
    "SCHEDULER_INTERVAL": "1h",  # no tick unless a test asks for one
    "SCHEDULER_BATCH_SIZE": "1",
    "RETRY_BASE_DELAY": "100ms",
    "WEBHOOK_TIMEOUT": "2s",  # a lease of 2 x 2 s + 10 s = 14 s
    "LOG_LEVEL": "debug",
}

# The webhook client's own line for each refusal (the scheduler logs one
# too): counting these counts real refusals, whatever the scheduler says.
REFUSED = "cannot build request body"


def received_at(req):
    """A receiver timestamp (RFC 3339 UTC with ms) as seconds."""
    t = req["received_at"]
    return time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + int(t[20:23]) / 1000


class SchedulerTest(MessagesTest):
    FAST = FAST

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
        self.create_schema()

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


class ClaimAheadTest(SchedulerTest):
    """A run holds claimed messages beyond its slots (up to 3 x WEBHOOK_CONCURRENCY), so
    a finished request is replaced without waiting on the database. Those waiting for a
    slot are leased like the ones in flight, and must never outlive their lease."""

    def lease_state(self, ids):
        return self.psql("SELECT id, status, lease_until IS NULL, next_attempt_at <= now(), "
                         f"retry_count FROM messages WHERE id IN ({','.join(map(str, ids))}) "
                         "ORDER BY id")

    def test_waiting_messages_are_claimed_ahead_and_released_on_stop(self):
        # Two slots, six messages: one claim takes all six, two go out, four wait.
        self.receiver.set(mode="slow", delay_ms=1500)
        self.insert(6)
        svc = self.start(WEBHOOK_CONCURRENCY="2")
        self.receiver.wait_requests(2)
        claims = svc.find_logs("claimed")
        self.assertEqual([c["count"] for c in claims], [6])
        # Claimed (leased), not sent: nobody else can take them meanwhile.
        self.assertEqual(self.psql("SELECT count(*) FROM messages "
                                   "WHERE lease_until > now() AND status = 'pending'"),
                         [("6",)])
        self.assertEqual(len(self.receiver.requests()), 2)
        svc.json("POST", "/messages/stop")
        stopped = svc.wait_log("automatic sending stopped")
        self.assertEqual((stopped["in_flight"], stopped["released"]), (2, 4))
        # The four waiting ones are given back at once (no attempt counted); the two
        # in flight finish and are recorded.
        svc.wait_log({"msg": "run finished", "reason": "stopped"})
        self.assertEqual(self.counts(), {"sent": 2, "pending": 4})
        waiting = [int(r[0]) for r in self.psql(
            "SELECT id FROM messages WHERE status = 'pending' ORDER BY id")]
        self.assertEqual(self.lease_state(waiting),
                         [(str(i), "pending", "t", "t", "0") for i in waiting])
        self.assertEqual(len(self.receiver.requests()), 2)

    def test_a_message_never_waits_for_a_slot_beyond_its_lease(self):
        # One slot and a receiver that never answers: each attempt takes the whole
        # WEBHOOK_TIMEOUT, so the messages queued behind it wait one timeout, then two.
        # One that waited more than a timeout could not be attempted and recorded
        # within its lease (2 x timeout + 10 s): it is released, not sent.
        self.receiver.set(mode="hang")
        self.insert(3)
        svc = self.start(WEBHOOK_CONCURRENCY="1", WEBHOOK_TIMEOUT="1s", MAX_ATTEMPTS="9",
                         SCHEDULER_INTERVAL="200ms", SCHEDULER_BATCH_SIZE="0")
        stale = svc.wait_log("claimed messages waited too long for a slot, releasing them",
                             timeout=10)
        self.assertIn(stale["first_id"], (2, 3))
        self.assertIn(stale["count"], (1, 2))
        released = svc.wait_log("messages released")
        self.assertGreaterEqual(released["count"], 1)
        # Given back without an attempt counted (an attempt, if it is claimed again at
        # once, takes a whole timeout to be recorded).
        self.assertEqual(self.psql(
            f"SELECT retry_count FROM messages WHERE id = {stale['first_id']}"), [("0",)])
        # And nothing is lost: once the receiver answers, the ticks send all three.
        self.receiver.set(mode="accept")
        self.wait_counts({"sent": 3})


class RefusedTest(SchedulerTest):
    # SQL_ASCII stores any bytes, so a message's content can be invalid
    # UTF-8: jansson cannot build the body and webhook_post refuses it.
    db_encoding = "SQL_ASCII"

    def insert_bad(self, n):
        self.psql(f"""
            INSERT INTO messages (recipient, content)
            SELECT '+1666' || lpad(g::text, 8, '0'), E'bad \\xff\\xfe ' || g
            FROM generate_series(1, {n}) g""")

    def lease_state(self, ids):
        return self.psql("SELECT id, status, lease_until IS NULL, next_attempt_at <= now(), "
                         f"retry_count FROM messages WHERE id IN ({','.join(map(str, ids))}) "
                         "ORDER BY id")

    def released(self, ids):
        return [(str(i), "pending", "t", "t", "0") for i in ids]

    def test_refused_message_is_released_and_others_are_sent(self):
        self.insert_bad(1)  # id 1, the oldest
        self.insert(3)  # ids 2-4
        self.assertEqual(self.psql(
            "SELECT length(content), octet_length(content) FROM messages WHERE id = 1"),
            [("8", "8")])  # two bytes that are not UTF-8: SQL_ASCII kept them as they are
        svc = self.start(SCHEDULER_BATCH_SIZE="0")
        svc.wait_log({"msg": REFUSED, "id": 1})
        # Released at once (its lease would last 14 s): due now, lease
        # cleared, no attempt counted.
        wait_until(lambda: self.lease_state([1]) == self.released([1]), 3, 0.05,
                   f"message 1 released (last: {self.lease_state([1])})")
        self.wait_counts({"sent": 3, "pending": 1})
        self.assertEqual(sorted(r["headers"]["webhook-id"] for r in self.receiver.requests()),
                         ["msg_2", "msg_3", "msg_4"])
        svc.wait_log({"msg": "webhook refused a request, releasing it", "id": 1})
        # And delivery goes on: the next drain sends new messages and tries
        # the refused one once more.
        self.insert(2, "later")
        self.restart_sending(svc)
        self.wait_counts({"sent": 5, "pending": 1})
        svc.wait_log({"msg": REFUSED, "id": 1}, count=2)
        wait_until(lambda: self.lease_state([1]) == self.released([1]), 3, 0.05,
                   "message 1 released again")

    def test_window_of_refusals_is_not_claimed_again_by_the_same_run(self):
        # A window made only of refused messages: released, they are due at
        # once, and the run's next claim would take exactly them again,
        # forever. The run skips them and ends.
        self.insert_bad(2)
        svc = self.start(WEBHOOK_CONCURRENCY="2")
        svc.wait_log({"msg": "run finished", "reason": "done"}, timeout=10)
        refusals = svc.find_logs(REFUSED)
        self.assertEqual(sorted(e["id"] for e in refusals), [1, 2], refusals)
        wait_until(lambda: self.lease_state([1, 2]) == self.released([1, 2]), 3, 0.05,
                   f"both released (last: {self.lease_state([1, 2])})")
        # The next run (here a drain on start) tries them again, and sends
        # the good ones that came meanwhile.
        self.insert(3)
        self.restart_sending(svc)
        self.wait_counts({"sent": 3, "pending": 2})
        svc.wait_log({"msg": "run finished", "reason": "done"}, count=2)
        self.assertEqual(len(svc.find_logs(REFUSED)), 4)

    def test_refused_messages_wait_for_the_next_tick(self):
        # With ticks every 300 ms a refused message is tried once per run,
        # not in a loop: refusals are spaced by ticks. (The first, by the
        # boot drain, may come just before the first tick: not counted.)
        self.insert_bad(1)
        svc = self.start(SCHEDULER_INTERVAL="300ms")
        svc.wait_log({"msg": REFUSED, "id": 1}, count=4, timeout=10)
        times = [e["ts"] for e in svc.find_logs(REFUSED)][1:4]
        secs = [time.mktime(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S")) + int(t[20:23]) / 1000
                for t in times]
        for a, b in zip(secs, secs[1:]):
            self.assertGreater(b - a, 0.2, times)
