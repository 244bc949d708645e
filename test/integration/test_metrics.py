"""GET /metrics, checked by the real tools: promtool (Debian's prometheus package) on
live scrapes, a real Prometheus server scraping the service while messages flow, and
promtool on the README's alert rules."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

from harness import FAST_DELIVERY, REPO, MessagesTest, free_port, http_request, wait_until

FAST = FAST_DELIVERY
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse(text: str) -> dict[str, float]:
    """'name{labels}' -> value, for every sample of a scrape."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


class MetricsTest(MessagesTest):
    FAST = FAST

    def setUp(self):
        super().setUp()
        self.create_schema()

    def scrape(self, svc) -> str:
        code, headers, body = svc.get("/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return body.decode()

    def promtool_check(self, text: str) -> None:
        p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, f"promtool check metrics:\n{p.stdout}{p.stderr}")

    def test_scrape_counts_deliveries_and_passes_promtool(self):
        self.insert(5)
        svc = self.start()
        self.wait_counts({"sent": 5})
        # The counters move when the outcome is recorded, with the log line.
        svc.wait_log("message sent", count=5)
        svc.get("/health")
        svc.get("/no/such/path")
        text = self.scrape(svc)
        self.promtool_check(text)
        m = parse(text)
        self.assertEqual(m["gopulse_messages_sent_total"], 5)
        self.assertEqual(m['gopulse_webhook_request_duration_seconds_count{outcome="2xx"}'], 5)
        self.assertEqual(m['gopulse_webhook_request_duration_seconds_bucket{outcome="2xx",'
                           'le="+Inf"}'], 5)
        self.assertEqual(m["gopulse_webhook_requests_in_flight"], 0)
        self.assertGreaterEqual(m['gopulse_http_requests_total{route="/health",code="200"}'], 1)
        self.assertEqual(m['gopulse_http_requests_total{route="other",code="404"}'], 1)
        self.assertEqual(m['gopulse_postgres_up{pool="delivery"}'], 1)
        self.assertEqual(m["gopulse_redis_up"], 1)
        self.assertEqual(m['gopulse_cache_writes_total{result="ok"}'], 5)
        self.assertEqual(m["gopulse_circuit_state"], 0)
        self.assertEqual(m["gopulse_scheduler_active"], 1)
        self.assertGreater(m["process_resident_memory_bytes"], 1 << 20)
        self.assertGreater(m["process_open_fds"], 3)
        self.assertGreater(m["process_start_time_seconds"], 1.7e9)
        self.assertIn('gopulse_build_info{version="', text)
        # The backlog is counted on its own timer: it shows the empty queue soon.
        wait_until(lambda: parse(self.scrape(svc)).get("gopulse_messages_pending") == 0,
                   10, 0.2, "gopulse_messages_pending 0")

    def test_failures_by_reason_and_retries(self):
        self.receiver.set(mode="status", status=400)
        self.insert(2)
        svc = self.start(MAX_ATTEMPTS="2")
        self.wait_counts({"failed": 2})
        wait_until(lambda: parse(self.scrape(svc))[
            'gopulse_messages_failed_total{reason="http_4xx"}'] == 2, 5, 0.1, "2 failed (4xx)")
        self.receiver.set(mode="status", status=503)
        self.insert(1)
        wait_until(lambda: self.counts().get("failed") == 3, 20, 0.1, "a third failure")
        def settled():
            m = parse(self.scrape(svc))
            return m if m['gopulse_messages_failed_total{reason="attempts_exhausted"}'] == 1 \
                else None
        m = wait_until(settled, 5, 0.1, "1 failed (attempts exhausted)")
        self.assertEqual(m["gopulse_messages_retried_total"], 1)
        self.assertEqual(m['gopulse_webhook_request_duration_seconds_count{outcome="4xx"}'], 2)
        self.assertEqual(m['gopulse_webhook_request_duration_seconds_count{outcome="5xx"}'], 2)
        self.assertEqual(m["gopulse_messages_sent_total"], 0)
        self.promtool_check(self.scrape(svc))

    def test_links_down_show_and_the_scrape_still_answers(self):
        svc = self.start()
        self.redis.stop()
        try:
            wait_until(lambda: parse(self.scrape(svc))["gopulse_redis_up"] == 0, 10, 0.1,
                       "gopulse_redis_up 0")
            wait_until(lambda: parse(self.scrape(svc))["gopulse_redis_reconnects_total"] >= 1,
                       10, 0.1, "a Redis reconnect counted")
        finally:
            self.redis.start()
        wait_until(lambda: parse(self.scrape(svc))["gopulse_redis_up"] == 1, 15, 0.1,
                   "gopulse_redis_up 1 again")

    def test_readme_lists_every_family(self):
        svc = self.start()
        families = set(re.findall(r"^# TYPE (\S+) ", self.scrape(svc), re.M))
        self.assertIn("gopulse_messages_sent_total", families)
        section = readme_section("Monitoring")
        for name in sorted(families):
            with self.subTest(metric=name):
                self.assertIn(f"`{name}`", section)

    def test_readme_alert_rules_pass_promtool(self):
        section = readme_section("Monitoring")
        blocks = re.findall(r"```yaml\n(groups:.*?)```", section, re.S)
        self.assertEqual(len(blocks), 1, "one ```yaml block of alert rules (groups:)")
        for alert in ("GopulseBacklogGrowing", "GopulseCircuitOpen", "GopulseFailureRate"):
            self.assertIn(f"alert: {alert}", blocks[0])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "rules.yml")
            with open(path, "w") as f:
                f.write(blocks[0])
            p = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True,
                               text=True, timeout=30)
        self.assertEqual(p.returncode, 0, f"promtool check rules:\n{p.stdout}{p.stderr}")


class PrometheusServerTest(MessagesTest):
    """A real Prometheus (loopback, temp dir, 1 s scrapes) scrapes the service while
    messages flow; its query API must see gopulse_messages_sent_total rise by the
    number sent."""

    FAST = FAST

    def setUp(self):
        super().setUp()
        self.create_schema()
        self.prom = None
        self.prom_dir = tempfile.mkdtemp(prefix="gopulse-prom-")

    def tearDown(self):
        if self.prom is not None:
            self.prom.terminate()
            try:
                self.prom.wait(10)
            except subprocess.TimeoutExpired:
                self.prom.kill()
                self.prom.wait()
            self.prom_log.close()
        if self._test_failed():
            print(f"prometheus log: {os.path.join(self.prom_dir, 'prometheus.log')}")
        else:
            shutil.rmtree(self.prom_dir, ignore_errors=True)
        super().tearDown()

    def start_prometheus(self, target_port: int) -> int:
        port = free_port()
        cfg = os.path.join(self.prom_dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: gopulse\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{target_port}']\n")
        self.prom_log = open(os.path.join(self.prom_dir, "prometheus.log"), "w")
        self.prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}",
             f"--storage.tsdb.path={os.path.join(self.prom_dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self.prom_log, stderr=subprocess.STDOUT, cwd=self.prom_dir)
        return port

    def query(self, port: int, expr: str) -> float | None:
        q = urllib.parse.urlencode({"query": expr})
        try:
            code, _, body = http_request("127.0.0.1", port, "GET", f"/api/v1/query?{q}")
        except OSError:  # still starting
            return None
        if code != 200:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def test_prometheus_sees_sent_total_rise(self):
        svc = self.start(AUTOSTART="false")
        port = self.start_prometheus(svc.port)
        wait_until(lambda: self.query(port, 'up{job="gopulse"}') == 1, 30, 0.5,
                   "Prometheus scraping the service (up == 1)")
        # [v]: a sample of 0 is an answer too.
        before = wait_until(lambda: (lambda v: [v] if v is not None else None)(
            self.query(port, "gopulse_messages_sent_total")), 10, 0.5, "a first sample")[0]
        self.insert(7)
        svc.post("/messages/start")
        self.wait_counts({"sent": 7})
        wait_until(lambda: self.query(port, "gopulse_messages_sent_total") == before + 7, 15, 0.5,
                   f"Prometheus seeing gopulse_messages_sent_total at {before} + 7")
        rise = self.query(port, "max_over_time(gopulse_messages_sent_total[5m]) - "
                          "min_over_time(gopulse_messages_sent_total[5m])")
        self.assertEqual(rise, 7)
