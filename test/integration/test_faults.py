"""Faults the service must survive and report: a Redis that wants a password, a lease
taken over while a request was out, a client that leaves while its request waits on
the database, and a schema migration that fails."""

import json
import os
import socket
import struct
import subprocess
import uuid

from harness import (REPO, IntegrationTest, MessagesTest, PgLock, Redis, RedisError,
                     socket_fds, tcp_unread, waiting_backends, wait_until)

FAST = {
    "PRODUCER_INTERVAL": "0",
    "SCHEDULER_INTERVAL": "100ms",
    "SCHEDULER_BATCH_SIZE": "0",
    "RETRY_BASE_DELAY": "100ms",
    "WEBHOOK_TIMEOUT": "5s",
}

LOCK_MESSAGES = "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"


class FaultTest(MessagesTest):
    FAST = FAST

    def row(self, mid):
        """Every column of message mid, as text."""
        return self.psql(f"SELECT to_jsonb(m)::text FROM messages m WHERE id = {mid}")[0][0]



# ---------------------------------------------------------------- Redis with requirepass


class RedisAuthTest(FaultTest):
    """A private Redis with requirepass, so that no other test meets a password."""

    PASSWORD = "redis-pw-7f3c9e1b"
    WRONG = "wrong-pw-4d1a22c8"

    def setUp(self):
        super().setUp()
        self.create_schema()
        self.auth_redis = Redis()
        self.addCleanup(self.auth_redis.cleanup)
        self.auth_redis.cli("CONFIG", "SET", "requirepass", self.PASSWORD)
        self.server_password = self.PASSWORD

    def cli(self, *args):
        """redis-cli on the private Redis, authenticated (REDISCLI_AUTH: not on the command line)."""
        env = dict(os.environ, REDISCLI_AUTH=self.server_password)
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.auth_redis.port),
                            *args], capture_output=True, text=True, timeout=10, env=env,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0 or p.stderr.strip():
            raise RedisError(f"redis-cli {' '.join(args)}: {(p.stderr or p.stdout).strip()}")
        return p.stdout.removesuffix("\n")

    def assert_no_secret_logged(self, svc):
        lines = svc.raw_log().splitlines()
        self.assertTrue(lines)
        for line in lines:
            for secret in (self.PASSWORD, self.WRONG):
                if secret in line:
                    self.fail(f"a Redis password is in the log: {line[:300]}")
        cfg = svc.find_logs("effective configuration")
        self.assertEqual([c["REDIS_PASSWORD"] for c in cfg], ["*****"])

    def test_server_wants_a_password(self):
        # The fixture works: without the password a write is refused (redis-cli
        # prints the error reply and exits 0), with it the write is done.
        self.assertTrue(self.auth_redis.cli("SET", "k", "v").startswith("NOAUTH"))
        self.assertEqual(self.cli("SET", "k", "v"), "OK")

    def test_right_password_caches_sent_messages(self):
        svc = self.start(REDIS_ADDR=self.auth_redis.addr, REDIS_PASSWORD=self.PASSWORD,
                         LOG_LEVEL="debug")
        svc.wait_log("redis ready")
        self.insert(2)
        self.wait_counts({"sent": 2})
        rows = dict(self.psql("SELECT id, response_id FROM messages"))
        for mid in ("1", "2"):
            wait_until(lambda: self.cli("EXISTS", f"message:{mid}") == "1", 5, 0.05,
                       f"message:{mid} cached")
            cached = json.loads(self.cli("GET", f"message:{mid}"))
            self.assertEqual(cached["messageId"], rows[mid])
        code, doc = svc.json("GET", "/ready")
        self.assertEqual((code, doc["redis"]), (200, "ready"))
        self.assertEqual(svc.find_logs("redis connection failed"), [])
        self.assertEqual(svc.stop(), 0)
        self.assert_no_secret_logged(svc)

    def test_wrong_password_keeps_delivering(self):
        def auth_failed(e):
            return (e.get("msg") == "redis connection failed"
                    and e.get("reason", "").startswith("AUTH failed:"))

        svc = self.start(REDIS_ADDR=self.auth_redis.addr, REDIS_PASSWORD=self.WRONG,
                         LOG_LEVEL="debug")
        first = svc.wait_log(auth_failed)
        self.assertEqual(first["level"], "warn")
        self.assertIn("WRONGPASS", first["reason"])
        # PostgreSQL is the record: delivery goes on without the cache.
        self.insert(3)
        self.wait_counts({"sent": 3})
        self.assertEqual(len(self.receiver.requests()), 3)
        svc.wait_log("cache write skipped: redis not ready")
        self.assertEqual(self.cli("KEYS", "message:*"), "")
        # Ready (the database is), and says that Redis is not.
        code, doc = svc.json("GET", "/ready")
        self.assertEqual((code, doc["status"], doc["database"]), (200, "ready", "ready"))
        self.assertNotEqual(doc["redis"], "ready")
        # It keeps trying, one warning per outage: the later failures are debug.
        later = svc.wait_log(auth_failed, count=2)
        self.assertEqual(later["level"], "debug")
        self.assertEqual(len([e for e in svc.find_logs(auth_failed) if e["level"] == "warn"]), 1)
        # Once the password it has is the right one, it connects without a restart.
        self.cli("CONFIG", "SET", "requirepass", self.WRONG)
        self.server_password = self.WRONG
        svc.wait_log("redis ready", timeout=15)
        self.insert(1, "after")
        self.wait_counts({"sent": 4})
        wait_until(lambda: self.cli("EXISTS", "message:4") == "1", 5, 0.05, "message:4 cached")
        # The three sent while Redis refused us are rewritten from PostgreSQL.
        wait_until(lambda: all(self.cli("EXISTS", f"message:{i}") == "1" for i in (1, 2, 3)),
                   10, 0.05, "the missed entries rewritten")
        self.assertEqual(svc.stop(), 0)
        self.assert_no_secret_logged(svc)

    def test_password_changed_under_a_live_link_is_warned_with_its_reason(self):
        # The link was up: its loss is the outage's warning ("connection lost"). The
        # reason it cannot come back (WRONGPASS) arrives with a later attempt and must
        # reach warn too, once, not stay at debug.
        def auth_failed(e):
            return (e.get("msg") == "redis connection failed"
                    and e.get("reason", "").startswith("AUTH failed:"))

        svc = self.start(REDIS_ADDR=self.auth_redis.addr, REDIS_PASSWORD=self.PASSWORD,
                         LOG_LEVEL="debug")
        svc.wait_log("redis ready")
        self.cli("CONFIG", "SET", "requirepass", self.WRONG)
        self.server_password = self.WRONG
        self.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        svc.wait_log({"msg": "redis connection lost", "level": "warn"})
        warned = svc.wait_log(lambda e: auth_failed(e) and e["level"] == "warn")
        self.assertIn("WRONGPASS", warned["reason"])
        svc.wait_log(auth_failed, count=3)
        self.assertEqual(len([e for e in svc.find_logs(auth_failed) if e["level"] == "warn"]), 1)
        self.assertEqual(svc.stop(), 0)
        self.assert_no_secret_logged(svc)


# ---------------------------------------------------------------- a lost lease


class LostLeaseTest(FaultTest):
    """While a request is out, another sender takes its message over (as it may once the
    lease has run out): the late outcome must not overwrite the other sender's claim."""

    def take_over(self, mid):
        """Give message mid's lease to another sender; return the row as it is then."""
        token, until, status = self.psql(
            f"SELECT lease_token, lease_until IS NOT NULL, status FROM messages WHERE id = {mid}")[0]
        self.assertIsNotNone(token, "the message is claimed by the service")
        self.assertEqual((until, status), ("t", "pending"))
        other = str(uuid.uuid4())
        self.psql(f"UPDATE messages SET lease_token = '{other}', "
                  f"lease_until = now() + interval '1 hour' WHERE id = {mid}")
        return self.row(mid)

    def assert_carries_on(self, svc, taken_row):
        self.receiver.set(mode="accept")
        self.insert(1, "next")  # message 2
        svc.wait_log({"msg": "message sent", "id": 2})
        self.assertEqual(self.counts(), {"pending": 1, "sent": 1})
        self.assertEqual(self.row(1), taken_row)
        self.assertEqual(svc.get("/health")[0], 200)
        self.assertEqual(svc.get("/ready")[0], 200)
        # Message 1 belongs to the other sender now: not sent again by us.
        self.assertEqual([r["headers"]["webhook-id"] for r in self.receiver.requests()],
                         ["msg_1", "msg_2"])
        self.assertEqual(svc.stop(), 0)

    def test_sent_outcome_of_a_lost_lease_is_not_written(self):
        self.create_schema()
        self.receiver.set(mode="slow", delay_ms=1500)
        self.insert(1)
        svc = self.start()
        self.receiver.wait_requests(1)
        taken = self.take_over(1)
        lost = svc.wait_log("outcomes not recorded: lease lost")
        self.assertEqual((lost["level"], lost["count"]), ("warn", 1))
        self.assertEqual(self.receiver.requests()[0]["status"], 202)  # it was accepted
        self.assertEqual(self.row(1), taken)
        self.assertEqual(svc.find_logs("message sent"), [])
        self.assertEqual(self.redis.cli("EXISTS", "message:1"), "0")
        self.assert_carries_on(svc, taken)

    def test_failed_attempt_of_a_lost_lease_is_not_written(self):
        self.create_schema()
        self.receiver.set(mode="hang")
        self.insert(1)
        # Time enough to take the lease over while the request hangs, even on a
        # busy machine (the attempt must end after the take-over).
        svc = self.start(WEBHOOK_TIMEOUT="4s", LOG_LEVEL="debug")
        self.receiver.wait_requests(1)
        taken = self.take_over(1)
        self.assertEqual(svc.find_logs("delivery attempt failed"), [], "taken over in time")
        lost = svc.wait_log("outcomes not recorded: lease lost")
        self.assertEqual(lost["count"], 1)
        attempt = svc.find_logs({"msg": "delivery attempt failed", "id": 1})
        self.assertEqual(len(attempt), 1)  # the timeout was decided, then not written
        self.assertEqual(self.row(1), taken)  # retry_count, error, next_attempt_at untouched
        self.assert_carries_on(svc, taken)


# ---------------------------------------------------------------- a client that leaves


class ClientGoneTest(FaultTest):
    """A client closes its connection while its GET /messages waits on a locked table.

    evhttp (2.1) stops reading a connection once it has a whole request, so the service
    learns that the client left only when it answers: these check that the answer (from
    the query, the request deadline or the shutdown) goes nowhere harmlessly and that the
    connection is closed, not kept."""

    REQUEST = b"GET /messages HTTP/1.1\r\nHost: test\r\n\r\n"

    def send_and_wait(self, svc):
        """Two clients whose requests wait on the database; returns their sockets."""
        socks = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
            s.sendall(self.REQUEST)
            socks.append(s)
        # The service has read both requests (nothing left unread on its side) ...
        ports = [s.getsockname()[1] for s in socks]
        wait_until(lambda: all(tcp_unread(svc.port, p) == 0 for p in ports), 5, 0.02,
                   "the service to read both requests")
        # ... the first one's query waits on the lock; the second one queues behind it.
        wait_until(lambda: any("FROM messages" in q for q in waiting_backends(self.pg, self.db)),
                   10, 0.05, "GET /messages waiting on the lock")
        return socks

    @staticmethod
    def leave(socks):
        """The first client closes (FIN), the second resets (RST: SO_LINGER 0)."""
        socks[0].close()
        socks[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        socks[1].close()

    def assert_healthy(self, svc, sockets_before):
        self.assertTrue(svc.alive, f"the service exited with status {svc.returncode}")
        # The connections of the clients that left are closed, not kept.
        wait_until(lambda: socket_fds(svc.pid) <= sockets_before, 5, 0.05,
                   f"the service back to {sockets_before} sockets "
                   f"(has {socket_fds(svc.pid)})")
        self.assertEqual(svc.get("/health")[0], 200)
        code, doc = svc.json("GET", "/messages")
        self.assertEqual((code, doc["count"]), (200, 0))
        self.assertEqual(svc.get("/ready")[0], 200)
        late = svc.find_logs("request deadline passed")
        if late:
            # A request answered in time ends the streak, with its count.
            self.assertEqual(len(late), 1)
            svc.wait_log({"msg": "requests answered in time again", "total": 2})
        # A clean exit; under SAN=1 the harness also fails on any sanitizer report.
        self.assertEqual(svc.stop(), 0)

    def test_client_leaves_then_the_database_answers(self):
        svc = self.start(AUTOSTART="false", REQUEST_TIMEOUT="30s")
        sockets = socket_fds(svc.pid)
        with PgLock(self.pg, self.db, LOCK_MESSAGES):
            self.leave(self.send_and_wait(svc))
            # Another client is answered meanwhile: the loop is not stuck.
            self.assertEqual(svc.get("/health")[0], 200)
        # The lock is gone: both queries complete, for clients no longer there.
        wait_until(lambda: not waiting_backends(self.pg, self.db), 10, 0.05, "queries done")
        self.assert_healthy(svc, sockets)

    def test_client_leaves_then_its_deadline_passes(self):
        svc = self.start(AUTOSTART="false", REQUEST_TIMEOUT="1s")
        sockets = socket_fds(svc.pid)
        with PgLock(self.pg, self.db, LOCK_MESSAGES):
            self.leave(self.send_and_wait(svc))
            # The deadline answers both, to nobody; their queries are still waiting.
            # One warning for both: the second is counted, not logged.
            svc.wait_log("request deadline passed")
            self.assertTrue(waiting_backends(self.pg, self.db))
        wait_until(lambda: not waiting_backends(self.pg, self.db), 10, 0.05, "queries done")
        self.assert_healthy(svc, sockets)

    def test_client_leaves_then_the_service_stops(self):
        svc = self.start(AUTOSTART="false", REQUEST_TIMEOUT="30s", SHUTDOWN_TIMEOUT="1s")
        with PgLock(self.pg, self.db, LOCK_MESSAGES):
            self.leave(self.send_and_wait(svc))
            self.assertEqual(svc.get("/health")[0], 200)
            # Shutdown abandons the requests of the clients that left.
            self.assertEqual(svc.stop(), 0)
        svc.wait_log("shutdown deadline passed, abandoning work in flight")


# ---------------------------------------------------------------- a failing migration


class MigrationFailureTest(IntegrationTest):
    """sql/001_schema.sql meets a `messages` that is a view: its CREATE TABLE IF NOT EXISTS
    is skipped and its first CREATE INDEX fails."""

    def test_failed_migration_is_reported_and_retried(self):
        self.psql("CREATE VIEW messages AS SELECT 1::bigint AS id, now() AS next_attempt_at, "
                  "'sent'::text AS status, now() AS sent_at")
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                  "LOG_LEVEL": "debug"})
        failed = svc.wait_log("schema migration failed")
        self.assertEqual((failed["level"], failed["version"]), ("error", "001_schema"))
        self.assertIn('cannot create index on relation "messages"', failed["error"])
        # Alive and saying so; not ready, and the API says why.
        self.assertEqual(svc.get("/health")[0], 200)
        code, doc = svc.json("GET", "/ready")
        self.assertEqual((code, doc["status"]), (503, "not ready"))
        self.assertNotEqual(doc["database"], "ready")
        code, doc = svc.json("GET", "/messages")
        self.assertEqual((code, doc["status"]), (503, "error"))
        # Nothing half-applied: the file runs in one transaction.
        self.assertEqual(self.psql("SELECT version FROM schema_migrations"), [])
        self.assertEqual(self.psql("SELECT count(*) FROM pg_indexes "
                                   "WHERE indexname LIKE 'messages_%'"), [("0",)])
        # It tries again (reconnect with backoff), each time with the reason.
        again = svc.wait_log("schema migration failed", count=2, timeout=10)
        self.assertIn('cannot create index on relation "messages"', again["error"])
        self.assertTrue(svc.alive)
        self.assertEqual(svc.find_logs("database ready"), [])
        # Once the conflict is gone it becomes ready, without a restart.
        self.psql("DROP VIEW messages")
        svc.wait_log({"msg": "schema migration applied", "version": "001_schema"}, timeout=15)
        svc.wait_log("database ready")
        wait_until(lambda: svc.get("/ready")[0] == 200, 5, 0.05, "/ready 200")
        self.assertEqual(svc.get("/messages")[0], 200)
        self.assertEqual(self.psql("SELECT version FROM schema_migrations ORDER BY version"),
                         [(f.stem,) for f in sorted((REPO / "sql").glob("*.sql"))])
        self.assertEqual(svc.stop(), 0)
