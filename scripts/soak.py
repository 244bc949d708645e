#!/usr/bin/env python3
"""Fault soak (issue 11 item 5): two instances under steady production while faults are
injected at seeded random times; invariants checked at the end.

    make soak                          # SOAK_SECONDS=300, SOAK_SEED random (printed first)
    SOAK_SECONDS=120 SOAK_SEED=7 make soak

Real PostgreSQL, Redis and webhook receiver from test/integration/harness.py. Production is
the driver's own: a POST /messages (with an Idempotency-Key) every PRODUCE_EVERY seconds,
alternately to each instance (to the other one when the first cannot take it), so every
message the service acknowledged is known and production can be stopped before the end.

Faults, one at a time, in a seeded shuffled order (each type once before any repeats),
separated by seeded random gaps: PostgreSQL restart, PostgreSQL frozen (SIGSTOP) 5 s,
Redis SIGKILLed and restarted, Redis frozen 5 s, the receiver answering 503 for 5 s,
hanging for 5 s, resetting connections for 5 s, SIGKILL of one instance and its restart.
After each fault the driver measures how long recovery took (both /ready 200 with the
fault's dependency ready, the backlog created before the fault's end sent, the cache
complete). Faults stop QUIET_S before the end; production stops, everything settles.

Invariants (each printed with its measured value and bound; exit 1 when one is broken):
  - every acknowledged message is in the database, and every row is sent (none failed,
    none pending), and the receiver accepted each one at least once
  - repeats (extra accepted deliveries of one message) <= messages leased at the kills
  - no row holds a live lease
  - every sent message has its Redis entry
  - each instance's RSS within 5 MB of its start (5 s after ready; after its restart)
  - /health p99 < 50 ms per instance, sampled every 100 ms by a separate process over the
    whole run (samples while that instance is SIGKILLed and restarting are left out)
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test" / "integration"))
import harness  # noqa: E402
from harness import REPO, Service, free_port, shared_postgres, shared_receiver, shared_redis  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS") or 300)
SEED = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
PRODUCE_EVERY = 0.1  # s: 10 messages a second, alternately to each instance
FAULT_S = 5.0  # how long a freeze or a receiver misbehaviour lasts
QUIET_S = 20.0  # no fault starts within this much of the end
RECOVERY_MAX_S = 60.0
HEALTH_P99_MS = 50.0
RSS_BOUND_KB = 5 * 1024
WARMUP_S = 5.0

ENV = {
    "PRODUCER_INTERVAL": "0",  # the driver produces (see above)
    "SCHEDULER_INTERVAL": "200ms",
    "SCHEDULER_BATCH_SIZE": "0",
    "RETRY_BASE_DELAY": "200ms",
    "WEBHOOK_TIMEOUT": "2s",
    "MAX_ATTEMPTS": "5",
    "CIRCUIT_FAILURES": "5",
    "CIRCUIT_PROBE_INTERVAL": "2s",
    "CACHE_TTL": "1h",
    "LOG_LEVEL": "info",
}
WEBHOOK_CONCURRENCY = 64  # the default; a kill can cost at most this many + a batch
# The receiver's normal answer: 202 after 200 ms, like a real one, so that a kill finds
# requests in flight (an instant receiver leaves almost none, and repeats go untested).
RECEIVER_OK = {"mode": "slow", "delay_ms": 200}

FAULTS = ["pg_restart", "pg_freeze", "redis_kill", "redis_freeze", "recv_5xx", "recv_hang",
          "recv_reset", "kill9"]

T0 = time.time()


def say(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def call(port: int, method: str, path: str, body=None, headers=None, timeout=3.0):
    """-> (status, parsed JSON or None); never records (the harness would, for openapi)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


# The /health sampler runs in its own process, so that the driver's work (psql, JSON of
# thousands of requests) never shows up as service latency.
SAMPLER = r"""
import socket, sys, time
port, out = int(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
req = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
nxt = time.time()
while True:
    t = time.time()
    status = -1
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
            s.sendall(req)
            buf = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                buf += b
            if buf.startswith(b"HTTP/1.1 "):
                status = int(buf[9:12])
    except OSError:
        pass
    out.write(f"{t:.3f} {(time.time() - t) * 1000:.3f} {status}\n")
    nxt += 0.1
    time.sleep(max(0.0, nxt - time.time()))
"""


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Instance:
    """One service instance on a fixed port, restartable; keeps every process it ran."""

    def __init__(self, name: str, env: dict, logdir: str):
        self.name, self.env, self.logdir = name, dict(env), logdir
        self.port = free_port()
        self.env["PORT"] = str(self.port)
        self.procs: list[Service] = []
        self.down: list[list[float]] = []  # [kill time, ready again] windows
        self.svc: Service | None = None
        self.rss_start = 0
        self.rss_start_at = 0.0
        self.start()

    def start(self) -> None:
        self.svc = Service(self.env, port=self.port, log_dir=self.logdir, name=self.name,
                           health_timeout=20)
        harness._record_ports.discard(self.port)
        self.procs.append(self.svc)
        self.rss_start = 0

    def take_rss_baseline(self) -> None:
        self.rss_start = rss_kb(self.svc.pid)
        self.rss_start_at = time.time()

    def logs(self) -> list[dict]:
        out = []
        for p in self.procs:
            out.extend(p.logs())
        return out


class Soak:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        # A persistent Redis (fsynced AOF): the kill tests the service's misses and their
        # heal. Without persistence a restarted Redis is empty, and nothing rewrites that.
        os.environ["REDIS_APPENDONLY"] = "yes"
        self.pg = shared_postgres()
        self.redis = shared_redis()
        self.receiver = shared_receiver()
        self.receiver.set(**RECEIVER_OK)
        self.db = "soak"
        self.dsn = self.pg.create_db(self.db)
        self.logdir = harness.tmp_root()
        env = dict(ENV, DATABASE_DSN=self.dsn, REDIS_ADDR=self.redis.addr,
                   WEBHOOK_HOST=self.receiver.url, WEBHOOK_PATH=self.receiver.path,
                   BIND_ADDR="127.0.0.1")
        self.inst = [Instance("gopulse-a", env, self.logdir)]
        self.inst[0].svc.wait_log("database ready", timeout=20)  # schema applied once, first
        self.inst.append(Instance("gopulse-b", env, self.logdir))
        self.acked: dict[int, float] = {}  # id -> when the POST was answered
        self.produce_errors = 0
        self.producing = True
        self.faults: list[dict] = []
        self.kills: list[dict] = []
        self.samplers: list[tuple[Instance, subprocess.Popen, str]] = []
        self.ready_seen: list[tuple[float, str, str]] = []

    # ------------------------------------------------------------ helpers

    def q(self, sql: str) -> list[tuple]:
        return self.pg.psql(self.db, sql)

    def q1(self, sql: str) -> int:
        return int(self.q(sql)[0][0])

    def missing_cache(self, ids: list[int]) -> list[int]:
        """The ids among ids without a Redis entry (an error raises)."""
        out = []
        script = ("local m = {} for i, k in ipairs(KEYS) do "
                  "if redis.call('EXISTS', k) == 0 then m[#m + 1] = k end end return m")
        for i in range(0, len(ids), 2000):
            chunk = ids[i:i + 2000]
            res = self.redis.cli("EVAL", script, str(len(chunk)),
                                 *[f"message:{x}" for x in chunk], timeout=5)
            out.extend(int(line.split(":")[1]) for line in res.split() if line)
        return out

    def sent_ids(self, before: float | None = None, after: float | None = None) -> list[int]:
        cond = f" AND sent_at <= to_timestamp({before})" if before else ""
        cond += f" AND sent_at >= to_timestamp({after})" if after else ""
        return [int(r[0]) for r in self.q(f"SELECT id FROM messages WHERE status = 'sent'{cond}")]

    # ------------------------------------------------------------ /ready, as an operator sees it

    def ready_watcher(self) -> None:
        """Every 200 ms, each instance's /ready as (status, database, redis, circuit)."""
        while self.producing:
            for inst in self.inst:
                t = time.time()
                try:
                    st, body = call(inst.port, "GET", "/ready", timeout=1.0)
                    body = body or {}
                    state = f"{st} db={body.get('database')} redis={body.get('redis')} " \
                            f"circuit={body.get('circuit')}"
                except OSError:
                    state = "no answer"
                self.ready_seen.append((t, inst.name, state))
            time.sleep(0.2)

    # ------------------------------------------------------------ production

    def producer(self) -> None:
        n = 0
        while self.producing:
            n += 1
            t = time.time()
            first = n % 2
            for idx in (first, 1 - first):
                inst = self.inst[idx]
                try:
                    st, body = call(inst.port, "POST", "/messages",
                                    {"recipient": f"+90555{n % 10**7:07d}",
                                     "content": f"soak {SEED} {n}"},
                                    {"Idempotency-Key": f"soak-{SEED}-{n}"}, timeout=2.0)
                except OSError:
                    continue
                if st == 201 and body and "id" in body:
                    self.acked[int(body["id"])] = time.time()
                    break
            else:
                self.produce_errors += 1
            time.sleep(max(0.0, t + PRODUCE_EVERY - time.time()))

    # ------------------------------------------------------------ faults

    def inject(self, kind: str) -> dict:
        f = {"kind": kind, "start": time.time()}
        say(f"fault {kind}")
        if kind == "pg_restart":
            self.pg.restart("fast")
        elif kind == "pg_freeze":
            self.pg.freeze()
            time.sleep(FAULT_S)
            self.pg.thaw()
        elif kind == "redis_kill":
            os.kill(self.redis.pid(), signal.SIGKILL)
            time.sleep(2.0)
            self.redis.start()
        elif kind == "redis_freeze":
            self.redis.freeze()
            time.sleep(FAULT_S)
            self.redis.thaw()
        elif kind in ("recv_5xx", "recv_hang", "recv_reset"):
            mode = {"recv_5xx": dict(mode="status", status=503),
                    "recv_hang": dict(mode="hang"),
                    "recv_reset": dict(mode="reset")}[kind]
            self.receiver.set(**mode)
            time.sleep(FAULT_S)
            self.receiver.set(**RECEIVER_OK)
        elif kind == "kill9":
            inst = self.inst[self.rng.randrange(2)]
            leased = self.q1("SELECT count(*) FROM messages WHERE status = 'pending' "
                             "AND lease_token IS NOT NULL AND lease_until > now()")
            t_kill = time.time()
            inst.down.append([t_kill - 0.05, float("inf")])
            inst.svc.kill9()
            # The dead process's claims keep their lease until it runs out: counted
            # now they are exactly what it had in flight (plus the survivor's own).
            time.sleep(0.3)
            leased = max(leased, self.q1(
                "SELECT count(*) FROM messages WHERE status = 'pending' "
                "AND lease_token IS NOT NULL AND lease_until > now()"))
            time.sleep(0.7)
            inst.start()
            inst.down[-1][1] = time.time()
            f.update(instance=inst.name, leased=leased, restart_ready_s=time.time() - t_kill)
            self.kills.append({"t": t_kill, "instance": inst.name, "leased": leased})
            threading.Timer(WARMUP_S, inst.take_rss_baseline).start()
        f["end"] = time.time()
        return f

    def measure_recovery(self, f: dict) -> None:
        """Times from the fault's end: both /ready 200 (and the fault's dependency ready),
        every message created before the end sent, the cache complete for what was sent."""
        end, kind = f["end"], f["kind"]
        want_ready, want_backlog = None, None
        want_cache = kind in ("redis_kill", "redis_freeze", "kill9")
        cache_ids = None
        deadline = end + RECOVERY_MAX_S
        while time.time() < deadline and (want_ready is None or want_backlog is None
                                           or (want_cache and "cache_s" not in f)):
            now = time.time()
            if want_ready is None:
                ok = True
                for inst in self.inst:
                    try:
                        st, body = call(inst.port, "GET", "/ready", timeout=1.0)
                    except OSError:
                        ok = False
                        break
                    if st != 200 or not body:
                        ok = False
                    elif kind.startswith("redis") and body.get("redis") != "ready":
                        ok = False
                    elif kind.startswith("recv") and body.get("circuit") != "closed":
                        ok = False
                if ok:
                    want_ready = now - end
            if want_backlog is None:
                try:
                    left = self.q1("SELECT count(*) FROM messages WHERE status <> 'sent' "
                                   f"AND created_at <= to_timestamp({end})")
                except Exception:
                    left = -1
                if left == 0:
                    want_backlog = time.time() - end
            if want_cache:
                try:
                    if cache_ids is None and "cache_s" not in f:
                        # What this fault could have missed: sent while it lasted
                        # or just before (a kill between commit and cache write).
                        cache_ids = self.sent_ids(end, f["start"] - 5)
                    if cache_ids is not None:
                        cache_ids = self.missing_cache(cache_ids)
                        if not cache_ids:
                            f["cache_s"] = time.time() - end
                            cache_ids = None
                except Exception:
                    pass
            time.sleep(0.1)
        f["ready_s"], f["backlog_s"] = want_ready, want_backlog
        if want_cache and "cache_s" not in f:
            f["cache_s"] = None
        f["recovered"] = time.time()
        say("  recovered: " + ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
            for k, v in f.items() if k.endswith("_s") or k in ("instance", "leased")))

    # ------------------------------------------------------------ run

    def run(self) -> int:
        start = time.time()
        end_at = start + SECONDS
        for inst in self.inst:
            path = os.path.join(self.logdir, f"health-{inst.name}.txt")
            p = subprocess.Popen([sys.executable, "-c", SAMPLER, str(inst.port), path],
                                 start_new_session=True)
            self.samplers.append((inst, p, path))
        prod = threading.Thread(target=self.producer, daemon=True)
        prod.start()
        threading.Thread(target=self.ready_watcher, daemon=True).start()
        time.sleep(WARMUP_S)
        for inst in self.inst:
            inst.take_rss_baseline()
        say(f"baseline RSS: " + ", ".join(f"{i.name} {i.rss_start} kB" for i in self.inst))
        bag: list[str] = []
        while time.time() + self.rng.uniform(3, 8) < end_at - QUIET_S:
            gap = self.rng.uniform(3, 8)
            time.sleep(gap)
            if time.time() >= end_at - QUIET_S:
                break
            if not bag:
                bag = FAULTS[:]
                self.rng.shuffle(bag)
            f = self.inject(bag.pop())
            self.measure_recovery(f)
            self.faults.append(f)
        while time.time() < end_at - 5:
            time.sleep(0.2)
        self.producing = False
        prod.join()
        say(f"production stopped: {len(self.acked)} acknowledged, "
            f"{self.produce_errors} not taken by either instance")
        return self.settle_and_check(start)

    def settle_and_check(self, start: float) -> int:
        t = time.time()
        while time.time() - t < 120:
            if self.q1("SELECT count(*) FROM messages WHERE status = 'pending'") == 0:
                break
            time.sleep(0.2)
        settle_sent = time.time() - t
        t = time.time()
        missing = None
        while time.time() - t < 60:
            try:
                missing = self.missing_cache(self.sent_ids())
            except Exception:
                missing = None
            if missing == []:
                break
            time.sleep(0.5)
        settle_cache = time.time() - t
        say(f"settled: all sent after {settle_sent:.1f}s, cache after {settle_cache:.1f}s")
        time.sleep(1.0)
        stop_t = time.time()
        for _, p, _ in self.samplers:
            p.send_signal(signal.SIGTERM)
            p.wait()
        rss_end = {i.name: rss_kb(i.svc.pid) for i in self.inst}

        results: list[tuple[str, bool, str]] = []

        def check(name: str, ok: bool, detail: str) -> None:
            results.append((name, ok, detail))

        rows = {int(r[0]): (r[1], r[2]) for r in self.q(
            "SELECT id, status, response_id FROM messages")}
        by_status: dict[str, int] = {}
        for st, _ in rows.values():
            by_status[st] = by_status.get(st, 0) + 1
        lost = [i for i in self.acked if i not in rows]
        check("acknowledged messages in the database", not lost,
              f"{len(self.acked) - len(lost)}/{len(self.acked)} (missing: {lost[:10]})")
        check("every row sent (none failed, none pending)",
              by_status.get("sent", 0) == len(rows) and rows,
              f"{by_status} of {len(rows)} rows; bound: all sent, 0 failed")

        reqs = self.receiver.requests()
        accepted: dict[int, list[dict]] = {}
        attempts = 0
        for r in reqs:
            wid = (r.get("headers") or {}).get("webhook-id", "")
            if not wid.startswith("msg_"):
                continue
            attempts += 1
            if r.get("status") is not None and 200 <= r["status"] < 300:
                accepted.setdefault(int(wid[4:]), []).append(r)
        unseen = [i for i in rows if i not in accepted]
        bad_id = [i for i, (st, rid) in rows.items()
                  if st == "sent" and i in accepted
                  and rid not in {r.get("message_id") for r in accepted[i]}]
        check("every message accepted by the receiver at least once", not unseen and not bad_id,
              f"{len(rows) - len(unseen)}/{len(rows)} (never accepted: {unseen[:10]}; "
              f"response_id not among its answers: {bad_id[:10]})")
        repeats = {i: len(v) - 1 for i, v in accepted.items() if len(v) > 1}
        n_repeats = sum(repeats.values())
        bound = sum(k["leased"] for k in self.kills)
        # A repeat a kill explains: its first acceptance before a kill, its second after.
        kill_ts = [k["t"] for k in self.kills]
        explained = 0
        for i in repeats:
            ts = sorted(harness.received_time(r) for r in accepted[i])
            if any(ts[0] <= kt <= ts[-1] for kt in kill_ts):
                explained += 1
        check("repeats only for messages in flight at a kill",
              n_repeats <= bound and explained == len(repeats),
              f"{n_repeats} repeat(s) of {len(repeats)} message(s), {explained} straddling a kill; "
              f"bound: {bound} leased at {len(self.kills)} kill(s) "
              f"(ids: {sorted(repeats)[:10]})")
        live = self.q1("SELECT count(*) FROM messages WHERE lease_token IS NOT NULL "
                       "OR (status = 'pending' AND lease_until > now())")
        check("no row with a live lease", live == 0, f"{live}; bound: 0")
        try:
            miss = self.missing_cache(self.sent_ids())
        except Exception as e:
            miss = [f"error: {e}"]
        check("cache complete", not miss, f"{len(rows) - len(miss)}/{len(rows)} keys "
              f"(missing: {miss[:10]})")
        for inst in self.inst:
            d = rss_end[inst.name] - inst.rss_start
            check(f"{inst.name} RSS within 5 MB of its start", abs(d) <= RSS_BOUND_KB,
                  f"{inst.rss_start} -> {rss_end[inst.name]} kB ({d:+d} kB, since "
                  f"{inst.rss_start_at - start:.0f}s); bound: ±{RSS_BOUND_KB} kB")
        self.health = {}
        for inst, _, path in self.samplers:
            lat, errors, excluded = [], 0, 0
            with open(path) as f:
                for line in f:
                    ts, ms, st = line.split()
                    ts, ms = float(ts), float(ms)
                    if ts > stop_t:
                        continue
                    if any(a <= ts <= b for a, b in inst.down):
                        excluded += 1
                        continue
                    if int(st) != 200:
                        errors += 1
                        ms = max(ms, 2000.0)  # a failed probe counts as a slow one
                    lat.append(ms)
            lat.sort()
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("inf")
            p50 = statistics.median(lat) if lat else float("inf")
            self.health[inst.name] = (len(lat), p50, p99, lat[-1] if lat else 0, errors, excluded)
            check(f"{inst.name} /health p99 < {HEALTH_P99_MS:g} ms", p99 < HEALTH_P99_MS,
                  f"p99 {p99:.1f} ms (p50 {p50:.1f}, max {lat[-1] if lat else 0:.1f}, "
                  f"{len(lat)} samples, {errors} not 200, {excluded} left out while killed)")

        # Per fault: deliveries accepted while it lasted, and the first one after its end.
        times = sorted(harness.received_time(r) for v in accepted.values() for r in v)
        import bisect
        for f in self.faults:
            a, b = bisect.bisect_left(times, f["start"]), bisect.bisect_left(times, f["end"])
            f["during"] = b - a
            f["first_s"] = times[b] - f["end"] if b < len(times) else None
        self.report(results, attempts, n_repeats)
        return 0 if all(ok for _, ok, _ in results) else 1

    def report(self, results, attempts, n_repeats) -> None:
        print("\n== faults (worst of each type, seconds from the fault's end: first delivery "
              "accepted; both /ready 200 with the dependency ready; everything created before "
              "the end sent; cache complete)")
        by_kind: dict[str, list[dict]] = {}
        for f in self.faults:
            by_kind.setdefault(f["kind"], []).append(f)
        for kind in FAULTS:
            fs = by_kind.get(kind, [])
            if not fs:
                print(f"  {kind:13s} not injected")
                continue

            def worst(key):
                vals = [f.get(key) for f in fs if key in f]
                if not vals:
                    return "-"
                if any(v is None for v in vals):
                    return "NOT REACHED"
                return f"{max(vals):.2f}"
            extra = ""
            if kind == "kill9":
                extra = f" restart→ready {worst('restart_ready_s')}, leased " + \
                    "/".join(str(f["leased"]) for f in fs)
            during = "/".join(str(f["during"]) for f in fs)
            print(f"  {kind:13s} x{len(fs)}  delivered during {during}  first after "
                  f"{worst('first_s')}  ready {worst('ready_s')}  backlog "
                  f"{worst('backlog_s')}  cache {worst('cache_s')}{extra}")
        print("\n== /ready during each fault type (from its start until recovered; "
              "times seen, both instances)")
        for kind in FAULTS:
            seen: dict[str, int] = {}
            for f in by_kind.get(kind, []):
                for t, _, state in self.ready_seen:
                    if f["start"] <= t <= f["recovered"]:
                        seen[state] = seen.get(state, 0) + 1
            if seen:
                print(f"  {kind}: " + "; ".join(
                    f"{k} x{n}" for k, n in sorted(seen.items(), key=lambda kv: -kv[1])))
        print("\n== what the logs said during each fault type (level component: msg)")
        logs = []
        for inst in self.inst:
            logs.extend((harness.log_time(e), inst.name, e) for e in inst.logs() if "ts" in e)
        for kind in FAULTS:
            seen: dict[str, int] = {}
            for f in by_kind.get(kind, []):
                for t, _, e in logs:
                    if not f["start"] - 0.05 <= t <= f["recovered"]:
                        continue
                    msg = e.get("msg", "")
                    if e.get("level") in ("warn", "error") or any(
                            w in msg for w in ("ready", "back", "closed", "opened", "rewritten",
                                               "connected", "lost")):
                        key = f"{e.get('level')} {e.get('component')}: {e.get('msg')}"
                        seen[key] = seen.get(key, 0) + 1
            if seen:
                print(f"  {kind}:")
                for k, n in sorted(seen.items(), key=lambda kv: -kv[1])[:12]:
                    print(f"    {n:5d}  {k}")
        print(f"\n== {len(self.acked)} messages, {attempts} webhook requests, "
              f"{len(self.faults)} faults, {len(self.kills)} kills, seed {SEED}, "
              f"{SECONDS}s")
        for name, ok, detail in results:
            print(f"  {'ok  ' if ok else 'FAIL'}  {name}: {detail}")
        bad = [n for n, ok, _ in results if not ok]
        print(f"\nsoak: {'PASS' if not bad else 'FAIL'} (seed {SEED}, {SECONDS}s"
              + (f"; broken: {', '.join(bad)}" if bad else "") + ")"
              + f"; replay: SOAK_SEED={SEED} SOAK_SECONDS={SECONDS} make soak", flush=True)


def main() -> int:
    print(f"soak: seed {SEED}, {SECONDS}s (replay: SOAK_SEED={SEED} SOAK_SECONDS={SECONDS} "
          "make soak)", flush=True)
    soak = None
    try:
        soak = Soak()
        return soak.run()
    finally:
        if soak is not None:
            for _, p, _ in soak.samplers:
                if p.poll() is None:
                    p.kill()
            if harness.KEEP_TMP:
                print(f"soak: logs in {soak.logdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
