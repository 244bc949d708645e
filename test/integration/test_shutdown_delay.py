"""SHUTDOWN_DELAY: on SIGTERM /ready answers 503 at once while the API keeps serving for
that long; then the listener closes and the drain runs as with the default 0.

Each test keeps one webhook request hanging at the receiver, so the drain has work to wait
for: the process is still alive after the listener has closed, which is what lets a test
see "connection refused" from a live process rather than from one that has exited. Stopping
the receiver then fails that request (a retry is recorded) and the drain ends: exit 0.
"""

import json
import signal
import socket
import time

from harness import MessagesTest, wait_until

DELAY_S = 3  # long enough for a handful of requests under SAN; the tests wait it out once


def refused(port):
    """True when nothing accepts on 127.0.0.1:port (the listener is closed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


class ShutdownDelayTest(MessagesTest):
    FAST = {"PRODUCER_INTERVAL": "0", "SCHEDULER_INTERVAL": "1h", "SHUTDOWN_TIMEOUT": "60s",
            "WEBHOOK_TIMEOUT": "60s"}

    def start_with_hanging_delivery(self, **env):
        """A service whose one delivery hangs at the receiver (the drain waits for it)."""
        self.create_schema()
        self.insert(1)
        self.receiver.set(mode="hang")
        svc = self.start(**env)
        self.receiver.wait_requests(1)
        status, body = svc.json("GET", "/ready")
        self.assertEqual((status, body["status"]), (200, "ready"), body)
        return svc

    def end_drain(self, svc):
        """Fail the hanging delivery (the receiver goes away); the drain then ends."""
        self.receiver.stop()
        self.assertEqual(svc.wait_exit(20), 0)
        self.assertTrue(svc.find_logs("drained, exiting"))

    def test_ready_503_while_serving_then_refused_then_exit_0(self):
        svc = self.start_with_hanging_delivery(SHUTDOWN_DELAY=f"{DELAY_S}s")
        t0 = time.monotonic()
        svc.signal(signal.SIGTERM)
        entry = svc.wait_log("shutting down")
        self.assertEqual(entry["delay_ms"], DELAY_S * 1000)

        # Within the delay: liveness as before, readiness 503, the API still serves.
        status, body = svc.json("GET", "/health")
        self.assertEqual((status, body["status"]), (200, "ok"))
        status, headers, data = svc.get("/ready")
        self.assertEqual(status, 503)
        self.assertEqual(headers.get("cache-control"), "no-store")
        ready = json.loads(data)
        self.assertEqual(ready["status"], "shutting down")
        self.assertEqual(ready["database"], "ready", "503 because of the signal, not the db")
        self.assertEqual(svc.request("HEAD", "/ready")[0], 503)
        status, listed = svc.json("GET", "/messages")
        self.assertEqual(status, 200, listed)
        self.assertIn("messages", listed)
        self.assertFalse(refused(svc.port))
        self.assertLess(time.monotonic() - t0, DELAY_S,
                        "the checks above took longer than the delay: they prove nothing")

        # Then the listener closes, not before the delay is over, and the drain runs.
        svc.wait_log("shutdown delay over, draining", timeout=DELAY_S + 10)
        self.assertGreaterEqual(time.monotonic() - t0, DELAY_S)
        wait_until(lambda: refused(svc.port), 5, what="the listener to close")
        self.assertTrue(svc.alive, "still draining: the delivery hangs")
        self.end_drain(svc)
        rows = self.psql("SELECT status, retry_count FROM messages")
        self.assertEqual(rows, [("pending", "1")], "the hung delivery was recorded as a retry")

    def test_default_0_stops_accepting_at_once(self):
        svc = self.start_with_hanging_delivery()  # SHUTDOWN_DELAY unset: 0
        svc.signal(signal.SIGTERM)
        entry = svc.wait_log("shutting down")
        self.assertEqual(entry["delay_ms"], 0)
        wait_until(lambda: refused(svc.port), 5, what="the listener to close")
        self.assertTrue(svc.alive, "still draining: the delivery hangs")
        self.assertEqual(svc.find_logs("shutdown delay over, draining"), [])
        self.end_drain(svc)

    def test_second_signal_during_the_delay_exits_at_once(self):
        svc = self.start_with_hanging_delivery(SHUTDOWN_DELAY="60s")
        svc.signal(signal.SIGTERM)
        svc.wait_log("shutting down")
        self.assertEqual(svc.get("/ready")[0], 503)
        t0 = time.monotonic()
        svc.signal(signal.SIGTERM)
        self.assertEqual(svc.wait_exit(10), 1)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertTrue(svc.find_logs("second signal, exiting now"))
