"""What a hostile or unusual environment must not do to the service (issue 11): a
receiver that answers with an endless body, an https receiver, a DSN with its own
options, SIGHUP, a dropped table, a role without CREATE, a low fd limit."""

import ctypes
import json
import os
import resource
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from harness import (REPO, SERVICE_BIN, MessagesTest, Receiver, http_request, tmp_root,
                     wait_until)

# Every migration file, as schema_migrations records them once applied.
ALL_VERSIONS = ", ".join(f"'{f.stem}'" for f in sorted((REPO / "sql").glob("*.sql")))

FAST = {
    "PRODUCER_INTERVAL": "0",
    "SCHEDULER_INTERVAL": "100ms",
    "SCHEDULER_BATCH_SIZE": "0",
    "RETRY_BASE_DELAY": "100ms",
    "WEBHOOK_TIMEOUT": "20s",
}


class HostileTest(MessagesTest):
    FAST = FAST

    def row(self, mid, cols):
        return self.psql(f"SELECT {cols} FROM messages WHERE id = {mid}")[0]


# ---------------------------------------------------------------- a reply without end


class HugeReplyTest(HostileTest):
    """A receiver answering 200 with a 256 MiB body: the service keeps 64 KiB of a reply,
    so it must stop reading there, not drain the rest on its only thread."""

    def test_reply_is_cut_at_the_cap(self):
        self.create_schema()
        self.receiver.set(mode="huge")
        svc = self.start()
        self.insert(1)
        t0 = time.monotonic()
        self.wait_counts({"sent": 1})
        took = time.monotonic() - t0
        status, code, err, rid = self.row(1, "status, response_code, error_message, response_id")
        # The receiver said 200: the message reached it and is not sent again;
        # the reply itself is the error, and it is recorded.
        self.assertEqual((status, code, rid), ("sent", "200", None))
        self.assertIsNotNone(err)
        self.assertIn("reply body", err)
        self.assertEqual(len(self.receiver.requests()), 1)
        # Reading 256 MiB takes the loop about a second; 64 KiB nothing.
        self.assertLess(took, 2.0)
        ok, _, _ = http_request("127.0.0.1", svc.port, "GET", "/health")
        self.assertEqual(ok, 200)
        self.assertEqual(svc.stop(), 0)


# ---------------------------------------------------------------- SIGHUP


class SighupTest(HostileTest):
    """A terminal hang-up or an operator's `kill -HUP` (the usual "reopen your logs")
    must not end the service: there is nothing to reopen, so it says so and goes on."""

    def test_sighup_is_logged_and_survived(self):
        self.create_schema()
        svc = self.start()
        svc.signal(signal.SIGHUP)
        entry = svc.wait_log("SIGHUP ignored")
        self.assertEqual(entry["level"], "info")
        self.assertTrue(svc.alive)
        self.insert(2)
        self.wait_counts({"sent": 2})
        status, _, _ = svc.request("GET", "/health")
        self.assertEqual(status, 200)
        # Not a second shutdown signal either: the drain ends normally.
        svc.signal(signal.SIGTERM)
        svc.wait_log("shutting down")
        svc.signal(signal.SIGHUP)
        self.assertEqual(svc.wait_exit(), 0)
        self.assertEqual(svc.find_logs("second signal, exiting now"), [])


# ---------------------------------------------------------------- the fd limit


class NofileTest(HostileTest):
    """Each client connection is a descriptor. Started with a low soft RLIMIT_NOFILE (a
    shell's `ulimit -n 1024`), the service must raise it to the hard limit itself, say
    so, and keep answering with more connections open than the soft limit allowed."""

    SOFT = 256
    CONNS = 600

    def test_soft_limit_raised_to_hard(self):
        self.create_schema()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 2 * self.CONNS:
            self.skipTest(f"hard RLIMIT_NOFILE {hard} too low for this test")
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.SOFT, hard))
        try:
            svc = self.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        cfg = svc.wait_log("effective configuration")
        with open(f"/proc/{svc.pid}/limits") as f:
            line = next(x for x in f if x.startswith("Max open files"))
        have_soft, have_hard = line.split()[3:5]
        self.assertEqual(have_soft, have_hard)
        self.assertEqual(str(cfg["open_files_limit"]), have_soft)
        conns = []
        try:
            for _ in range(self.CONNS):
                conns.append(socket.create_connection(("127.0.0.1", svc.port), timeout=5))
            t0 = time.monotonic()
            status, _, _ = svc.request("GET", "/health", timeout=3)
            self.assertEqual(status, 200)
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            for c in conns:
                c.close()
        self.assertEqual(svc.stop(), 0)


# ---------------------------------------------------------------- the schema


class SchemaTest(HostileTest):
    """schema_migrations is only a record: the tables it vouches for are checked on
    connect, and a service whose schema is current needs no right to create anything."""

    def test_dropped_table_is_recreated_on_restart(self):
        svc = self.start()
        self.assertEqual(svc.stop(), 0)
        self.psql("DROP TABLE messages")
        svc = self.start()
        entry = svc.wait_log("schema incomplete, applying every migration again")
        self.assertEqual(entry["missing"], "messages")
        code, doc = svc.json("GET", "/ready")
        self.assertEqual((code, doc["database"]), (200, "ready"))
        self.insert(2)
        self.wait_counts({"sent": 2})
        # 002 ran after 001 again: no trigger left behind.
        self.assertEqual(self.psql("SELECT count(*) FROM pg_trigger WHERE tgrelid = "
                                   "'messages'::regclass AND NOT tgisinternal"), [("0",)])
        self.assertEqual(svc.stop(), 0)
        # And the next start finds it whole again.
        svc = self.start()
        self.assertEqual(svc.find_logs("schema incomplete, applying every migration again"), [])
        self.assertEqual(svc.stop(), 0)

    def test_role_without_create_runs_a_current_schema(self):
        self.create_schema()
        # What a deployment whose owner migrated it leaves: every file recorded.
        self.psql("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT now()); "
                  "INSERT INTO schema_migrations (version) SELECT v FROM "
                  f"unnest(ARRAY[{ALL_VERSIONS}]) v")
        role = f"nocreate_{self.db}"[:63]
        self.pg.psql("postgres", f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN")

        def drop_role():
            if self.pg.running:
                self.psql(f"DROP OWNED BY {role}")
                self.pg.psql("postgres", f"DROP ROLE IF EXISTS {role}")

        self.addCleanup(drop_role)
        self.psql(f"""
            REVOKE CREATE ON DATABASE {self.db} FROM PUBLIC;
            REVOKE CREATE ON SCHEMA public FROM PUBLIC;
            GRANT USAGE ON SCHEMA public TO {role};
            GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role};
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};""")
        # The role really cannot create.
        self.assertEqual(self.psql(f"SELECT has_database_privilege('{role}', '{self.db}', "
                                   f"'CREATE'), has_schema_privilege('{role}', 'public', "
                                   f"'CREATE')"), [("f", "f")])
        svc = self.start(DATABASE_DSN=self.dsn.replace("postgres://postgres@", f"postgres://{role}@"))
        self.insert(2)
        self.wait_counts({"sent": 2})
        self.assertEqual(svc.find_logs("schema migration failed"), [])
        self.assertEqual(svc.stop(), 0)


# ---------------------------------------------------------------- the DSN's options


class DsnOptionsTest(HostileTest):
    """`options` in DATABASE_DSN are the operator's: the service sets its
    statement_timeout per transaction (set_config), never through `options`, so
    whatever the DSN says reaches the server untouched."""

    def dsn_with(self, options):
        return self.dsn + "&options=" + urllib.parse.quote(options)

    def test_search_path_is_kept(self):
        self.psql("CREATE SCHEMA other")
        svc = self.start(DATABASE_DSN=self.dsn_with("-c search_path=other"))
        self.assertEqual(self.psql("SELECT to_regclass('other.messages') IS NOT NULL, "
                                   "to_regclass('public.messages') IS NULL"), [("t", "t")])
        self.psql("SET search_path = other; INSERT INTO messages (recipient, content) "
                  "VALUES ('+15550000001', 'in other')")
        wait_until(lambda: self.psql("SELECT status FROM other.messages") == [("sent",)],
                   10, 0.1, "the message in schema other sent")
        self.assertEqual(svc.stop(), 0)

    def test_read_only_is_kept(self):
        self.create_schema()
        self.psql("CREATE TABLE schema_migrations (version text PRIMARY KEY, "
                  "applied_at timestamptz NOT NULL DEFAULT now()); "
                  "INSERT INTO schema_migrations (version) SELECT v FROM "
                  f"unnest(ARRAY[{ALL_VERSIONS}]) v")
        self.insert(1)
        svc = self.start(DATABASE_DSN=self.dsn_with(
            "-c default_transaction_read_only=on -c search_path=public"))
        svc.wait_log(lambda e: "read-only transaction" in json.dumps(e))
        self.assertEqual(self.counts(), {"pending": 1})
        self.assertEqual(self.receiver.requests(), [])
        self.assertEqual(svc.stop(), 0)


# ---------------------------------------------------------------- https


def make_tls(dirname):
    """A CA made here and now, and a certificate it signed for 127.0.0.1:
    returns (ca.pem, server chain pem, server key pem)."""
    d = Path(dirname)

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
            "-subj", "/CN=gopulse test CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"),
            "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.pem"),
            "-days", "2", "-extfile", str(d / "ext.cnf"))
    return str(d / "ca.pem"), str(d / "server.pem"), str(d / "server.key")


class FileOpens:
    """Counts the opens of one file (inotify IN_OPEN), by any process."""

    IN_OPEN = 0x20

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, os.fsencode(path),
                                                      self.IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        self.count = 0

    def poll(self):
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return self.count
            self.count += len(data) // 16  # a file watch's events carry no name

    def close(self):
        os.close(self.fd)


class HttpsTest(HostileTest):
    """An https receiver trusted through WEBHOOK_CA_FILE (a CA made by the test). The
    CA store is read once, not for every new TLS connection: each read is a file
    read and a parse on the loop (~19 ms for Debian's bundle)."""

    N = 20

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="tls-", dir=tmp_root())
        self.ca, cert, key = make_tls(self.tmp)
        self.tls_receiver = Receiver(tls=(cert, key))
        self.addCleanup(self.tls_receiver.cleanup)

    def env(self, **more):
        env = dict(WEBHOOK_HOST=self.tls_receiver.https_url, WEBHOOK_CA_FILE=self.ca,
                   WEBHOOK_CONCURRENCY=str(self.N))
        env.update(more)
        return env

    def test_delivers_over_https_and_reads_the_ca_once(self):
        self.create_schema()
        # Each request held 300 ms: N requests at once need N connections.
        self.tls_receiver.set(mode="slow", delay_ms=300)
        opens = FileOpens(self.ca)
        self.addCleanup(opens.close)
        svc = self.start(**self.env(LOG_LEVEL="debug"))  # new_connections is logged at debug
        self.insert(self.N)
        self.wait_counts({"sent": self.N})
        reqs = self.tls_receiver.requests()
        self.assertEqual(len(reqs), self.N)
        self.assertEqual(len({r["headers"]["webhook-id"] for r in reqs}), self.N)
        conns = sum(e.get("new_connections", 0) for e in svc.find_logs("request finished"))
        self.assertGreaterEqual(conns, self.N // 2)
        self.assertEqual(opens.poll(), 1, f"the CA file was read {opens.count} times "
                         f"for {conns} connections")
        self.assertEqual(svc.stop(), 0)

    def test_new_connections_resume_the_tls_session(self):
        self.create_schema()
        svc = self.start(**self.env())
        self.insert(1)
        self.wait_counts({"sent": 1})
        first = self.tls_receiver.wait_requests(1)[0]
        self.assertIs(first["tls_resumed"], False)
        # N at once, each held: new connections, from handles that never met this
        # receiver, resume the session the first one got.
        self.tls_receiver.set(mode="slow", delay_ms=300)
        self.insert(self.N, "more")
        self.wait_counts({"sent": self.N + 1})
        reqs = self.tls_receiver.requests()
        # By connection (requests kept alive on the first one's show its full
        # handshake, which is right). Handles that never met the receiver can
        # only resume from the shared cache: without it none did. Not every
        # one does: connections opened in the same instant may race a session
        # that another just replaced (under SAN about a third resumed).
        conns = {r["tls_connection"]: r["tls_resumed"] for r in reqs}
        self.assertIs(conns.pop(first["tls_connection"]), False)
        self.assertGreaterEqual(len(conns), self.N // 2)
        self.assertGreater(sum(conns.values()), 0, conns)
        self.assertEqual(svc.stop(), 0)

    def test_untrusted_certificate_is_a_transport_error(self):
        self.create_schema()
        # Without WEBHOOK_CA_FILE: curl's default bundle, also read once.
        bundle = "/etc/ssl/certs/ca-certificates.crt"
        opens = FileOpens(bundle) if os.path.exists(bundle) else None
        if opens:
            self.addCleanup(opens.close)
        # The circuit off: a certificate error would otherwise open it and hold the
        # messages (test_circuit); here each attempt's own outcome is the point.
        svc = self.start(**self.env(WEBHOOK_CA_FILE=None, MAX_ATTEMPTS="1", CIRCUIT_FAILURES="0"))
        self.insert(self.N)
        self.wait_counts({"failed": self.N})
        if opens:
            self.assertEqual(opens.poll(), 1)
        err = self.row(1, "error_message")[0]
        self.assertIn("certificate", err.lower())
        self.assertEqual(self.tls_receiver.requests(), [])
        self.assertEqual(svc.stop(), 0)

    def test_unreadable_ca_file_stops_start(self):
        p = subprocess.run([str(SERVICE_BIN), "--check-config"], capture_output=True,
                           text=True, timeout=10,
                           env={"PATH": "/usr/bin:/bin", "WEBHOOK_CA_FILE": "/nonexistent/ca.pem"})
        self.assertEqual(p.returncode, 2)
        self.assertIn("WEBHOOK_CA_FILE", p.stderr)
