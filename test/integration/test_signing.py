"""Standard Webhooks signatures (WEBHOOK_SECRET), checked with the official library:
the npm package standardwebhooks (pinned in package.json) verifies real deliveries as
the receiver, and rejects a tampered body, a wrong secret and a stale timestamp."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import (FAST_DELIVERY, REPO, SERVICE_BIN, MessagesTest, free_port, http_request,
                     tmp_root, wait_until)

FAST = FAST_DELIVERY
VERIFY = REPO / "test" / "integration" / "webhook_verify.mjs"
NODE = shutil.which("node") or "node"


def secret(seed: str, n: int = 32) -> str:
    return "whsec_" + base64.b64encode(hashlib.sha256(seed.encode()).digest()[:n]).decode()


def expected(sec: str, msg_id: str, ts: str, body: str) -> str:
    """The v1 signature as the specification defines it, computed here independently."""
    key = base64.b64decode(sec.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


S1 = secret("first")
S2 = secret("second", 24)


class SigningTest(MessagesTest):
    FAST = FAST

    def setUp(self):
        super().setUp()
        self.create_schema()
        self.node = None

    def tearDown(self):
        if self.node is not None:
            self.node.terminate()
            self.node.wait(10)
        super().tearDown()

    def verifier(self, sec: str) -> tuple[str, str]:
        """The standardwebhooks receiver on a free port -> (its WEBHOOK_HOST, its log)."""
        port = free_port()
        log = os.path.join(tempfile.mkdtemp(prefix="verify-", dir=tmp_root()),
                           "verified.jsonl")
        open(log, "w").close()
        self.node = subprocess.Popen([NODE, str(VERIFY), "serve", str(port), sec, log],
                                     cwd=REPO)
        wait_until(lambda: self._up(port), 10, 0.1, "the standardwebhooks receiver")
        return f"http://127.0.0.1:{port}", log

    @staticmethod
    def _up(port: int) -> bool:
        try:
            return http_request("127.0.0.1", port, "GET", "/health")[0] == 200
        except OSError:
            return False

    @staticmethod
    def verified(log: str) -> list[dict]:
        with open(log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def check(self, cases: list[dict]) -> list[dict]:
        p = subprocess.run([NODE, str(VERIFY), "check"], input=json.dumps(cases),
                           capture_output=True, text=True, timeout=30, cwd=REPO)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def test_deliveries_verify_and_tampering_is_rejected(self):
        host, log = self.verifier(S1)
        self.insert(3)
        svc = self.start(WEBHOOK_HOST=host, WEBHOOK_PATH="/hook", WEBHOOK_SECRET=S1)
        # Only a request the library verified gets a 202: sent means verified.
        self.wait_counts({"sent": 3})
        got = self.verified(log)
        self.assertEqual(len(got), 3)
        ids = {int(i) for (i,) in self.psql("SELECT id FROM messages")}
        for r in got:
            self.assertTrue(r["ok"], r)
            h = r["headers"]
            self.assertIn(int(h["webhook-id"].removeprefix("msg_")), ids)
            self.assertLessEqual(abs(int(h["webhook-timestamp"]) - time.time()), 30)
            self.assertEqual(h["webhook-signature"],
                             expected(S1, h["webhook-id"], h["webhook-timestamp"], r["body"]))
        r = got[0]
        h, body = r["headers"], r["body"]
        stale = str(int(time.time()) - 301)
        old = dict(h, **{"webhook-timestamp": stale,
                         "webhook-signature": expected(S1, h["webhook-id"], stale, body)})
        res = self.check([
            {"secret": S1, "headers": h, "body": body},
            {"secret": S1, "headers": h, "body": body.replace('"to"', '"To"')},
            {"secret": S1, "headers": h, "body": body + " "},
            {"secret": secret("wrong"), "headers": h, "body": body},
            {"secret": S1, "headers": old, "body": body},
        ])
        self.assertEqual(res[0], {"ok": True, "error": None})
        self.assertEqual(res[1], {"ok": False, "error": "No matching signature found"})
        self.assertEqual(res[2], {"ok": False, "error": "No matching signature found"})
        self.assertEqual(res[3], {"ok": False, "error": "No matching signature found"})
        self.assertEqual(res[4], {"ok": False, "error": "Message timestamp too old"})
        self.assertNotIn(S1.removeprefix("whsec_"), svc.raw_log())

    def test_rotation_one_entry_per_secret(self):
        # The receiver already has the new secret; the old one still signs too.
        host, log = self.verifier(S2)
        self.insert(2)
        svc = self.start(WEBHOOK_HOST=host, WEBHOOK_SECRET=f"{S1}  {S2}")
        self.wait_counts({"sent": 2})
        got = self.verified(log)
        self.assertTrue(all(r["ok"] for r in got), got)
        h, body = got[0]["headers"], got[0]["body"]
        entries = h["webhook-signature"].split(" ")
        self.assertEqual(entries, [expected(S1, h["webhook-id"], h["webhook-timestamp"], body),
                                   expected(S2, h["webhook-id"], h["webhook-timestamp"], body)])
        res = self.check([{"secret": s, "headers": h, "body": body}
                          for s in (S1, S2, secret("third"))])
        self.assertEqual([r["ok"] for r in res], [True, True, False])
        svc.wait_log({"msg": "webhook requests are signed", "secrets": 2})

    def test_a_retry_is_signed_afresh_with_the_same_id(self):
        self.receiver.set(mode="fail_then_accept", status=500, fail_count=1)
        self.insert(1)
        self.start(WEBHOOK_SECRET=S1, RETRY_BASE_DELAY="1500ms")
        self.wait_counts({"sent": 1})
        reqs = self.receiver.requests()
        self.assertEqual(len(reqs), 2)
        a, b = (r["headers"] for r in reqs)
        self.assertEqual(a["webhook-id"], b["webhook-id"])
        self.assertGreater(int(b["webhook-timestamp"]), int(a["webhook-timestamp"]))
        for r in reqs:
            h = r["headers"]
            self.assertEqual(h["webhook-signature"],
                             expected(S1, h["webhook-id"], h["webhook-timestamp"], r["body"]))

    def test_unsigned_without_a_secret(self):
        self.insert(1)
        self.start()
        self.wait_counts({"sent": 1})
        h = self.receiver.requests()[0]["headers"]
        self.assertEqual(h["webhook-id"], "msg_1")
        self.assertNotIn("webhook-signature", h)
        self.assertNotIn("webhook-timestamp", h)

    def test_bad_secret_exits_2_naming_the_variable_only(self):
        short = "whsec_" + base64.b64encode(b"x" * 23).decode()
        for value in ("not-a-whsec-value-1234567890", "whsec_!!notbase64!!", short,
                      f"{S1} whsec_", f"{S1} bogus-second-secret"):
            with self.subTest(value=value):
                p = subprocess.run([str(SERVICE_BIN), "--check-config"],
                                   env={"PATH": os.environ.get("PATH", ""),
                                        "WEBHOOK_SECRET": value},
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("WEBHOOK_SECRET", p.stderr)
                self.assertEqual(p.stderr.count("\n"), 1, p.stderr)
                for part in filter(None, (v.removeprefix("whsec_") for v in value.split())):
                    self.assertNotIn(part, p.stderr + p.stdout)
