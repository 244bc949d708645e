"""Many instances through PgBouncer in transaction mode, as operators run them.

A real pgbouncer (Debian's 1.18) sits between the service and the test cluster with
pool_mode=transaction and without ignore_startup_parameters: consecutive
transactions of one instance may run on different server connections, several
instances share few of them, and a startup parameter PgBouncer does not know
(`options`) is refused. Migrations, delivery, the producer and API reads must all
simply work there, and a storm of restarts must leave no lock and no backend behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

from harness import (FAST_DELIVERY, REPO, SAN, VALGRIND, MessagesTest, PgBouncer, http_request,
                     services_sh, wait_until)

# Every migration the binary carries, in the order it applies them.
VERSIONS = [f.stem for f in sorted((REPO / "sql").glob("*.sql"))]

FAST = FAST_DELIVERY
# How long an instance may take from exec to /ready 200 while the pooler is busy.
READY_S = 10.0 * (10 if VALGRIND else 2 if SAN else 1)
# The advisory lock key of src/migrate.c ("GoPulse" in ASCII): as pg_locks shows a
# bigint key, classid is its high 32 bits and objid its low 32 bits.
MIGRATE_LOCK_KEY = 71111080117108115


class PgBouncerTest(MessagesTest):
    """A fresh pgbouncer per test in front of the shared cluster (settings per test);
    every service the test starts connects through it."""

    FAST = FAST
    pool_size = 5

    def setUp(self):
        # Before IntegrationTest's own cleanup is registered, so that it runs after
        # it (last in, first out): the services stop before the pooler they use.
        self.bouncer = PgBouncer(self.pg, default_pool_size=self.pool_size)
        self.addCleanup(self._stop_bouncer)
        super().setUp()
        self.bdsn = self.bouncer.dsn(self.db)

    def _stop_bouncer(self):
        if self._test_failed():
            sys.stderr.write(f"\n---- {self.id()}: last 40 lines of pgbouncer log "
                             f"{self.bouncer.log_path} ----\n{self.bouncer.log_tail(40)}"
                             "---- end of log ----\n")
        self.bouncer.cleanup()

    def service_env(self, **overrides):
        return super().service_env(**{"DATABASE_DSN": self.bdsn, **overrides})

    def cache_keys(self):
        return int(self.redis.cli("EVAL", "return #redis.call('KEYS', 'message:*')", "0"))

    def advisory_locks(self):
        """Advisory locks held or awaited in this test's database, by anyone."""
        return self.pg.psql("postgres", f"""
            SELECT l.pid, l.granted, l.classid, l.objid, l.objsubid
            FROM pg_locks l JOIN pg_database d ON d.oid = l.database
            WHERE l.locktype = 'advisory' AND d.datname = '{self.db}'""")

    def backends(self):
        """Client backends connected to this test's database (the pooler's servers)."""
        rows = self.pg.psql("postgres", f"""
            SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock')
            FROM pg_stat_activity
            WHERE datname = '{self.db}' AND backend_type = 'client backend'""")
        return int(rows[0][0]), int(rows[0][1])

    def assert_through_pooler(self):
        """The pooler is set up as the tests say, and the service's work went through it."""
        cfg = self.bouncer.config()
        self.assertEqual(cfg["pool_mode"], "transaction")
        self.assertEqual(cfg["ignore_startup_parameters"] or "", "")
        stats = [s for s in self.bouncer.show("STATS") if s.get("database") == self.db]
        self.assertTrue(stats and int(stats[0]["total_xact_count"]) > 0, stats)
        self.assertNotIn("unsupported startup parameter", open(self.bouncer.log_path).read())


class ThroughPgBouncerTest(PgBouncerTest):
    def test_migrations_delivery_producer_and_reads(self):
        # A fresh database: the schema comes through the pooler too.
        svc = self.start_service({**FAST, "AUTOSTART": "false", "PRODUCER_INTERVAL": "200ms",
                                  "LOG_LEVEL": "debug"})
        svc.wait_log("database ready")
        self.assertEqual(svc.find_logs("database connection failed"), [])
        self.assertEqual(self.psql("SELECT version FROM schema_migrations ORDER BY 1"),
                         [(v,) for v in VERSIONS])
        for v in VERSIONS:
            svc.wait_log({"msg": "schema migration applied", "version": v})
        self.assertEqual(svc.json("GET", "/ready")[0], 200)
        # The producer inserts through it.
        svc.wait_log("Successfully created a new message", count=2)
        self.insert(50)
        self.assertEqual(svc.post("/messages/start")[0], 200)
        # Delivery: claims, outcome writes and cache entries.
        wait_until(lambda: self.counts().get("sent", 0) >= 52, 30, 0.1,
                   f"52 messages sent (last: {self.counts()})")
        svc.post("/messages/stop")

        def settled():
            ids = [r["headers"]["webhook-id"] for r in self.receiver.requests()]
            sent = {f"msg_{r[0]}" for r in self.psql(
                "SELECT id FROM messages WHERE status = 'sent'")}
            return (ids, sent) if set(ids) == sent else None
        ids, sent = wait_until(settled, 10, 0.1, "every request recorded as sent")
        self.assertEqual(len(ids), len(sent), "each message posted once")
        wait_until(lambda: self.cache_keys() == len(sent), 10, 0.05, f"{len(sent)} cache keys")
        # API reads through it, paged, newest first, the rows PostgreSQL has.
        code, doc = svc.json("GET", "/messages?limit=10")
        self.assertEqual((code, doc["count"]), (200, 10))
        code, doc2 = svc.json("GET", "/messages?limit=10&offset=10")
        self.assertEqual((code, doc2["count"]), (200, 10))
        want = [int(r[0]) for r in self.psql(
            "SELECT id FROM messages WHERE status = 'sent' "
            "ORDER BY sent_at DESC, id DESC LIMIT 20")]
        self.assertEqual([m["id"] for m in doc["messages"] + doc2["messages"]], want)
        for m in doc["messages"]:
            cached = json.loads(self.redis.cli("GET", f"message:{m['id']}"))
            self.assertEqual(cached["messageId"], m["response_id"])
        self.assert_through_pooler()
        self.assertEqual(svc.find_logs("database connection failed"), [])
        self.assertEqual(svc.stop(), 0)

    def test_tracking_table_there_file_missing(self):
        # A database whose schema_migrations lacks our file (an older deployment): the
        # read finds the table, the file is applied in its own locked transaction.
        self.psql("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT now()); "
                  "INSERT INTO schema_migrations VALUES ('000_before')")
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false"})
        svc.wait_log({"msg": "schema migration applied", "version": VERSIONS[-1]})
        svc.wait_log("database ready")
        self.assertEqual(self.psql("SELECT version FROM schema_migrations ORDER BY 1"),
                         [("000_before",)] + [(v,) for v in VERSIONS])
        self.assertEqual(self.advisory_locks(), [])
        self.assertEqual(svc.stop(), 0)
        # Started again, it finds everything and applies nothing.
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                  "LOG_LEVEL": "debug"})
        svc.wait_log("database ready")
        svc.wait_log("schema up to date")
        self.assertEqual(svc.find_logs("schema migration applied"), [])
        self.assertEqual(svc.stop(), 0)


class StatementTimeoutTest(PgBouncerTest):
    # One server connection, so the next client of it is the one our SET would leak to.
    pool_size = 1

    def test_timeout_bounds_each_statement_and_stays_in_its_transaction(self):
        from harness import PgLock
        svc = self.start_service({"PRODUCER_INTERVAL": "0", "AUTOSTART": "false",
                                  "DB_QUERY_TIMEOUT": "1s", "REQUEST_TIMEOUT": "10s",
                                  "API_DB_CONNECTIONS": "0"})
        svc.wait_log("database ready")
        self.assertTrue(svc.find_logs("database reached through a pooler: one query at a time"))
        with PgLock(self.pg, self.db, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"):
            t0 = time.monotonic()
            code, doc = svc.json("GET", "/messages")
            elapsed = time.monotonic() - t0
        # The server cancelled the read after 1 s (set_config in its own segment),
        # before the watchdog (3 s) and the request deadline (10 s).
        self.assertEqual((code, doc["status"]), (503, "error"))
        self.assertLess(elapsed, 2.5)
        self.assertIn("canceling statement due to statement timeout",
                      svc.wait_log("listing messages failed")["reason"])
        # The pooled server connection, now another client's, kept the server default.
        self.assertEqual(self.bouncer.psql(self.db, "SHOW statement_timeout"), [("0",)])
        self.assertEqual(svc.json("GET", "/messages")[0], 200)
        self.assertEqual(svc.find_logs("database connection failed"), [])
        self.assertEqual(svc.stop(), 0)


class MigrateAtOnceTest(PgBouncerTest):
    pool_size = 2

    def test_many_instances_migrate_at_once_on_fewer_server_connections(self):
        # Four instances on a fresh database through two server connections: whoever
        # waits on the migration lock holds one of them, the others queue in the pooler.
        svcs = [self.start_service({"PRODUCER_INTERVAL": "0"}, wait=False) for _ in range(4)]
        for s in svcs:
            s.wait_log("database ready", timeout=READY_S)
        applied = sorted(e["version"] for s in svcs
                         for e in s.find_logs("schema migration applied"))
        self.assertEqual(applied, VERSIONS)  # each file once, by one of them
        self.assertEqual(self.psql("SELECT version FROM schema_migrations ORDER BY 1"),
                         [(v,) for v in VERSIONS])
        for s in svcs:
            self.assertEqual(s.find_logs("schema migration failed"), [])
            self.assertEqual(s.find_logs("database connection failed"), [])
        self.assertEqual(self.advisory_locks(), [])
        self.assertLessEqual(self.backends()[0], 2)
        for s in svcs:
            self.assertEqual(s.stop(), 0)


class TwoInstancesTest(PgBouncerTest):
    # Both instances' transactions take turns on one server connection: any state
    # kept in a session between two transactions would show here.
    pool_size = 1

    def test_two_instances_deliver_2000_exactly_once(self):
        n = 2000
        env = {**FAST, "AUTOSTART": "false", "WEBHOOK_CONCURRENCY": "16"}
        a = self.start_service(env)
        a.wait_log("database ready")
        b = self.start_service(env)
        b.wait_log("database ready")
        self.insert(n)
        # Slow enough answers that neither instance can drain it all alone first.
        self.receiver.set(mode="slow", delay_ms=10)
        starts = [threading.Thread(target=s.post, args=("/messages/start",)) for s in (a, b)]
        for t in starts:
            t.start()
        for t in starts:
            t.join()
        self.wait_counts({"sent": n}, timeout=90 if SAN else 60)
        ids = [r["headers"]["webhook-id"] for r in self.receiver.requests()]
        self.assertEqual(len(ids), n, "the receiver got each message once")
        self.assertEqual(len(set(ids)), n)
        self.assertEqual(set(ids), {f"msg_{r[0]}" for r in self.psql("SELECT id FROM messages")})
        wait_until(lambda: self.cache_keys() == n, 10, 0.05, f"{n} cache keys")
        by_a = len(a.find_logs("message sent"))
        by_b = len(b.find_logs("message sent"))
        self.assertEqual(by_a + by_b, n)
        self.assertGreater(min(by_a, by_b), 0, "both instances took part")
        self.assertEqual(self.psql("SELECT count(*) FROM messages WHERE lease_until IS NOT NULL "
                                   "OR retry_count <> 0"), [("0",)])
        self.assert_through_pooler()
        self.assertLessEqual(self.backends()[0], 1)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)


class FastDrainTest(PgBouncerTest):
    # Two instances on one server connection, and a receiver that answers at once:
    # claims and outcome writes of both follow each other closely, so the server
    # connection changes hands between their transactions all the time.
    pool_size = 1

    def test_two_instances_drain_fast_exactly_once(self):
        n = 20000
        env = {**FAST, "AUTOSTART": "false"}
        a = self.start_service(env)
        a.wait_log("database ready")
        b = self.start_service(env)
        b.wait_log("database ready")
        self.insert(n)
        for s in (a, b):
            s.post("/messages/start")
        self.wait_counts({"sent": n}, timeout=90 if SAN else 60)
        ids = [r["headers"]["webhook-id"] for r in self.receiver.requests()]
        self.assertEqual(len(ids), n, "the receiver got each message once")
        self.assertEqual(len(set(ids)), n)
        wait_until(lambda: self.cache_keys() == n, 10, 0.05, f"{n} cache keys")
        # One Sync segment in flight per connection through the pooler, which the
        # service recognises on connect: PgBouncer 1.18 hands a server connection to
        # another client at the first ReadyForQuery, and a second segment already
        # sent would run there or be answered to the wrong client ("portal does not
        # exist", results out of step with the queries, messages sent twice).
        for s in (a, b):
            # Each connection (delivery and API) found out on its own.
            pooled = s.find_logs("database reached through a pooler: one query at a time")
            self.assertTrue(pooled)
            self.assertEqual({e["pipeline_depth"] for e in pooled}, {1})
            self.assertEqual(s.find_logs("database reached directly"), [])
            self.assertEqual(s.find_logs("database connection failed"), [])
            # (but the start-up one: without API_TOKEN the POSTs are open)
            self.assertEqual(s.find_logs(lambda e: e.get("level") == "warn"
                                         and e.get("component") != "api"), [])
        self.assert_through_pooler()
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)


class RestartStormTest(PgBouncerTest):
    """The operator's repro of issue 8: a busy pool, instances started and stopped in a row."""

    pool_size = 5
    clients = 12
    restarts = 12
    period_s = 1.2

    def pgbench(self):
        """pgbench -c 12 of `select pg_sleep(0.003)` through the pooler, until stopped."""
        script = os.path.join(self.bouncer.dir, "sleep.sql")
        with open(script, "w") as f:
            f.write("select pg_sleep(0.003);\n")
        os.chmod(script, 0o644)
        pgbench = os.path.join(services_sh("pg_bin").strip(), "pgbench")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        log = open(os.path.join(self.bouncer.dir, "pgbench.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            [pgbench, "-n", "-c", str(self.clients), "-T", "600", "-f", script,
             "-h", "127.0.0.1", "-p", str(self.bouncer.port), "-U", "postgres", self.db],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)
        # Every client is in: the pool is busy before the first instance starts.
        wait_until(lambda: int(self.bouncer.pool(self.db).get("cl_active") or 0)
                   + int(self.bouncer.pool(self.db).get("cl_waiting") or 0) >= self.clients,
                   10, 0.05, f"{self.clients} pgbench clients in the pool")
        return proc, stop

    def test_restart_storm_every_instance_ready_no_lock_left(self):
        bench, stop_bench = self.pgbench()
        # The scheduler runs for real (AUTOSTART), on messages that are there.
        env = {**FAST, "SCHEDULER_INTERVAL": "200ms"}
        most_backends, runs = 0, []
        for i in range(self.restarts):
            t0 = time.monotonic()
            svc = self.start_service(env, wait=False, name=f"instance-{i + 1}")
            try:
                wait_until(lambda: self._ready(svc), READY_S, 0.02, "/ready 200")
            except AssertionError:
                pool = self.bouncer.pool(self.db)
                self.fail(f"instance {i + 1} of {self.restarts} not ready within {READY_S:g}s "
                          f"(pool: {pool}; advisory locks: {self.advisory_locks()}; "
                          f"backends, waiting on a lock: {self.backends()}); "
                          f"log {svc.log_path}:\n{svc.log_tail(15)}")
            ready_s = time.monotonic() - t0
            if i == 0:
                self.insert(20)
            # It works a while (drain, ticks) before it is told to stop.
            time.sleep(max(0.0, t0 + self.period_s * 2 / 3 - time.monotonic()))
            most_backends = max(most_backends, self.backends()[0])
            svc.signal(signal.SIGTERM)
            rc = svc.wait_exit(15)
            runs.append((ready_s, rc))
            self.assertEqual(rc, 0, f"instance {i + 1} exit status; log:\n{svc.log_tail(15)}")
            time.sleep(max(0.0, t0 + self.period_s - time.monotonic()))
        self.assertIsNone(bench.poll(), "pgbench ran all along")
        most_backends = max(most_backends, self.backends()[0])
        stop_bench()
        # Each migration ran once, by the first instance; nobody failed or waited for it.
        applied = sorted(e["version"] for s in self.services
                         for e in s.find_logs("schema migration applied"))
        self.assertEqual(applied, VERSIONS)
        for s in self.services:
            self.assertEqual(s.find_logs("schema migration failed"), [])
            self.assertEqual(s.find_logs(lambda e: e.get("level") == "warn"
                                         and e.get("component") == "pg"), [])
        # No lock left held, nothing waiting, and no backend beyond the pool.
        self.assertEqual(self.advisory_locks(), [])
        total, waiting = self.backends()
        self.assertEqual(waiting, 0)
        self.assertLessEqual(total, self.pool_size)
        self.assertLessEqual(most_backends, self.pool_size)
        self.assertEqual(self.counts(), {"sent": 20})
        self.assert_through_pooler()
        # Every instance was ready in time; the report says how quickly.
        worst = max(r for r, _ in runs)
        sys.stderr.write(f"restart storm: {len(runs)} instances, ready in "
                         f"{min(r for r, _ in runs):.2f}..{worst:.2f}s, "
                         f"backends at most {most_backends}\n")

    @staticmethod
    def _ready(svc):
        if not svc.alive:
            raise AssertionError(f"{svc.name} exited ({svc.returncode}):\n{svc.log_tail(15)}")
        try:
            return http_request("127.0.0.1", svc.port, "GET", "/ready", timeout=1.0)[0] == 200
        except OSError:
            return False
