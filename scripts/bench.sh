#!/usr/bin/env bash
# `make bench`: the service's performance, each figure beside a ceiling measured in
# the same run on the same machine (these machines are shared and noisy, so only
# the ratios compare across runs).  Issue 8 lists the figures and their targets.
#
#   drain        BENCH_MESSAGES pending messages -> sent + cached, to an nginx
#                receiver, vs the reference pipeline (../shared/bench/pipeline_ref.c)
#                run before and after the service on the same PostgreSQL, Redis
#                and nginx (mean of the two); exactly once (nginx requests, rows
#                sent, cache keys); CPU seconds per 1,000 messages of both
#   /health      wrk -t1 -cBENCH_CONNECTIONS vs ../shared/bench/evhttp_hello.c
#   /messages    GET /messages?limit=10 over the sent rows, wrk as above, vs
#                pgbench -c1 -M prepared of the SELECT the service runs (taken
#                from PostgreSQL's log of a real request); then each request a
#                random page of the first 100, against pgbench drawing OFFSET alike
#   latency      p50/p99/max of GET /messages?limit=10 and GET /health, sampled
#                from outside at a fixed rate while a second drain runs
#   memory       RSS and anonymous memory (/proc/PID/smaps_rollup): idle, after
#                the drain, and with BENCH_INFLIGHT webhook requests in flight
#                against build/webhook-receiver --mode hang
#   start-up     exec -> first GET /health 200, median of BENCH_STARTS starts
#   scale-out    the combined drain rate of 1 and 2 instances sharing one database,
#                direct and through PgBouncer (pool_mode=transaction), each
#                BENCH_SCALE_MESSAGES messages, exactly once
#   history      the drain with ATTEMPT_HISTORY=true against =false (issue 9:
#                within 5 %), alternated, two of each, BENCH_MESSAGES each
#
# Prints a Markdown table and saves it, with the machine, the commit and the
# library versions, as bench/results/<date>-<commit>.md.  Without ../shared/bench
# (a clone on its own) the reference pipeline and evhttp_hello are skipped with a
# note; everything else still runs.
#
# Environment:
#   BENCH_MESSAGES     backlog drained (default 100000)
#   BENCH_SECONDS      duration of each wrk and pgbench run (default 5)
#   BENCH_QUICK=1      check the script: 5000 messages, 2 s, 3 starts; the result
#                      goes to build/bench/results/ instead of bench/results/
#   BENCH_CONNECTIONS  wrk connections (50)     BENCH_CONCURRENCY  WEBHOOK_CONCURRENCY
#   BENCH_INFLIGHT     in-flight requests (1000)    of the drain and the reference (64)
#   BENCH_STARTS       start-ups timed (7)      BENCH_SAMPLE_HZ    sampler rate per URL (50)
#   BENCH_LOG_LEVEL    the service's LOG_LEVEL (info)
#   BENCH_SCALE_MESSAGES  backlog of each scale-out drain (BENCH_MESSAGES / 2)
#   BENCH_POOL_SIZE    PgBouncer's default_pool_size for the scale-out (4)
#   BENCH_REF_DIR      where pipeline_ref.c and evhttp_hello.c are (../shared/bench;
#                      `none`: run without them)
#   BENCH_RESULTS_DIR  where the result file goes     BENCH_KEEP_TMP=1  keep logs
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/services.sh
. scripts/services.sh

say() { echo "bench: $*" >&2; }
die() {
	echo "bench: FAILED: $*" >&2
	exit 1
}
posint() { # NAME VALUE: a positive integer or die
	[[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"
}

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	N=${BENCH_MESSAGES:-5000} SECS=${BENCH_SECONDS:-2} STARTS=${BENCH_STARTS:-3}
	results_dir=${BENCH_RESULTS_DIR:-build/bench/results}
else
	N=${BENCH_MESSAGES:-100000} SECS=${BENCH_SECONDS:-5} STARTS=${BENCH_STARTS:-7}
	results_dir=${BENCH_RESULTS_DIR:-bench/results}
fi
CONNS=${BENCH_CONNECTIONS:-50}
CONC=${BENCH_CONCURRENCY:-64}
INFLIGHT=${BENCH_INFLIGHT:-1000}
HZ=${BENCH_SAMPLE_HZ:-50}
LOGLVL=${BENCH_LOG_LEVEL:-info}
SCALE_N=${BENCH_SCALE_MESSAGES:-$((N / 2))}
POOL=${BENCH_POOL_SIZE:-4}
for v in N SECS STARTS CONNS CONC INFLIGHT HZ SCALE_N POOL; do posint "$v" "${!v}"; done
# Every wait below is bounded; a drain gets a minute plus 2 ms per message.
DRAIN_TIMEOUT=$((60 + N / 500))

# The reference programs: ../shared/bench beside the repository, or beside the
# main checkout when this is a `git worktree`.
ref_dir=${BENCH_REF_DIR:-}
if [ "$ref_dir" = none ]; then
	ref_dir=""
elif [ -z "$ref_dir" ]; then
	main_wt=$(git worktree list --porcelain 2>/dev/null | sed -n '1s/^worktree //p')
	for d in "$root/../shared/bench" ${main_wt:+"$main_wt/../shared/bench"}; do
		if [ -f "$d/pipeline_ref.c" ]; then
			ref_dir=$(cd "$d" && pwd)
			break
		fi
	done
fi
[ -z "$ref_dir" ] || [ -f "$ref_dir/pipeline_ref.c" ] || die "BENCH_REF_DIR=$ref_dir has no pipeline_ref.c"

./scripts/install-deps.sh build dev bench
make --no-print-directory all >/dev/null || die "make failed"
# The Swagger UI assets, which the service loads at start-up: memory is measured
# with them, as deployed.  An existing node_modules is used as it is (-o: no npm ci).
if [ ! -f web/swagger/swagger-ui-bundle.js ]; then
	if [ -d node_modules/swagger-ui-dist ]; then
		make --no-print-directory -o node_modules/.gopulse-installed swagger-ui >/dev/null
	elif command -v npm >/dev/null 2>&1; then
		make --no-print-directory swagger-ui >/dev/null
	fi || say "could not install the Swagger UI assets (make swagger-ui)"
fi
swagger_note="with the Swagger UI assets"
[ -f web/swagger/swagger-ui-bundle.js ] || swagger_note="**without** the Swagger UI assets (make swagger-ui failed)"
for tool in wrk nginx pgbench psql redis-cli; do
	command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh bench)"
done
pgbouncer_bin >/dev/null || die "pgbouncer not found (scripts/install-deps.sh dev)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
SVC_BIN=$root/build/gopulse-messages
RECV_BIN=$root/build/webhook-receiver

# The ceilings, built with the flags of ../shared/bench/README.md.
mkdir -p build/bench
if [ -n "$ref_dir" ]; then
	if [ ! -x build/bench/pipeline_ref ] || [ "$ref_dir/pipeline_ref.c" -nt build/bench/pipeline_ref ]; then
		# shellcheck disable=SC2046  # pkg-config output is a list of flags
		cc -O2 -o build/bench/pipeline_ref "$ref_dir/pipeline_ref.c" \
			$(pkg-config --cflags --libs libevent libcurl hiredis libpq jansson) ||
			die "cannot build $ref_dir/pipeline_ref.c"
	fi
	if [ ! -x build/bench/evhttp_hello ] || [ "$ref_dir/evhttp_hello.c" -nt build/bench/evhttp_hello ]; then
		# shellcheck disable=SC2046
		cc -O2 -o build/bench/evhttp_hello "$ref_dir/evhttp_hello.c" \
			$(pkg-config --cflags --libs libevent) || die "cannot build $ref_dir/evhttp_hello.c"
	fi
else
	say "no ../shared/bench: the drain and /health ceilings are skipped"
fi
# The floor of start-up: a program that returns at once, linked with every library the
# service links (--no-as-needed keeps them all), so exec and the dynamic loader do the
# same work (on these VMs a page fault costs about 12 us and the libraries take ~550).
printf 'int main(void) { return 0; }\n' >build/bench/libs_only.c
# shellcheck disable=SC2046
cc -O2 -o build/bench/libs_only build/bench/libs_only.c -Wl,--no-as-needed \
	$(pkg-config --libs libevent libpq hiredis libcurl jansson libcrypto) -lm ||
	die "cannot build the start-up floor"

tmp=$(mktemp -d /tmp/gopulse-bench.XXXXXX)
chmod 755 "$tmp" # PostgreSQL runs as `postgres` when we are root
pids=()          # everything we started in the background, stopped on exit
stop_pid() { # PID [SECONDS]: SIGTERM, SIGKILL after SECONDS (5), reaped
	local pid=$1 i limit=$((${2:-5} * 10))
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < limit; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM HUP
	set +e
	for pid in "${pids[@]}"; do stop_pid "$pid" 3; done
	redis_stop "$tmp/redis" >/dev/null 2>&1
	pgbouncer_stop "$tmp/bouncer" >/dev/null 2>&1
	pg_stop "$tmp/pg" >/dev/null 2>&1
	if [ "${BENCH_KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
		say "logs kept in $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---------------------------------------------------------------------------
# Helpers in Python (stdlib only): timing, sampling, /proc readings.
cat >"$tmp/bench.py" <<'PY'
import http.client, json, os, re, signal, socket, subprocess, sys, time

def get(host, port, path, method="GET", timeout=5.0):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()

def ticks(pid):
    """utime + stime of pid in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")

class Redis:
    def __init__(self, port, db):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")
        self.cmd(f"SELECT {db}")
    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        reply = self.f.readline().decode().strip()
        if reply.startswith("-"):
            raise RuntimeError(reply)
        return reply
    def dbsize(self):
        return int(self.cmd("DBSIZE")[1:])

def cmd_wait(url_port, path, timeout, pid):
    """Wait for 200 on path; fail early when pid dies."""
    end = time.monotonic() + float(timeout)
    while time.monotonic() < end:
        if pid != "0" and not os.path.exists(f"/proc/{pid}"):
            sys.exit(f"process {pid} exited")
        try:
            if get("127.0.0.1", int(url_port), path, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.02)
    sys.exit(f"no 200 from {path} within {timeout}s")

def cmd_mem(pid):
    """RSS and anonymous memory in KiB: rss anon pss."""
    v = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[2] == "kB":
                v[p[0].rstrip(":")] = int(p[1])
    print(v.get("Rss", 0), v.get("Anonymous", 0), v.get("Pss", 0))

def cmd_startup(port, runs, log, *argv):
    """exec argv -> first 200 from GET /health, in ms, once per run (the first is
    a warm-up); prints median min max."""
    out = []
    for i in range(int(runs) + 1):
        with open(log, "ab") as lf:
            t0 = time.monotonic()
            p = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT)
            ok = False
            while time.monotonic() - t0 < 10 and p.poll() is None:
                try:
                    s = socket.create_connection(("127.0.0.1", int(port)), timeout=1)
                except OSError:
                    time.sleep(0.001)
                    continue
                try:
                    s.sendall(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                    head = s.recv(64)
                finally:
                    s.close()
                if head.startswith(b"HTTP/1.1 200"):
                    ok = True
                    break
            ms = (time.monotonic() - t0) * 1000
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if not ok:
                sys.exit(f"start {i}: no 200 from /health within 10 s (exit {p.returncode})")
            if i > 0:
                out.append(ms)
            time.sleep(0.2)  # the port is free again before the next start
    out.sort()
    print("%.1f %.1f %.1f" % (out[len(out) // 2], out[0], out[-1]))

def cmd_exec_time(runs, *argv):
    """exec argv until it exits, in ms, once per run (the first is a warm-up); prints
    the median and the minor page faults of the child."""
    out = []
    for i in range(int(runs) + 1):
        t0 = time.monotonic()
        _, status, usage = os.wait4(os.posix_spawn(argv[0], list(argv), os.environ), 0)
        ms = (time.monotonic() - t0) * 1000
        if status != 0:
            sys.exit(f"{argv[0]} exited with status {status}")
        if i > 0:
            out.append((ms, usage.ru_minflt))
    out.sort()
    print("%.1f %d" % out[len(out) // 2])

def cmd_drain(pid, svc_port, redis_port, redis_db, target, timeout, marks):
    """POST /messages/start, then wait until the service's Redis db holds target
    keys (each sent message is cached after its row is written).  Prints
    elapsed_s cpu_s; t0/t1 (CLOCK_MONOTONIC) go to the marks file."""
    r = Redis(int(redis_port), redis_db)
    target, timeout = int(target), float(timeout)
    c0 = ticks(pid)
    t0 = time.monotonic()
    st, body = get("127.0.0.1", int(svc_port), "/messages/start", "POST")
    if st != 200:
        sys.exit(f"POST /messages/start: {st} {body[:200]!r}")
    last, last_change = -1, t0
    while True:
        n = r.dbsize()
        now = time.monotonic()
        if n >= target:
            break
        if n != last:
            last, last_change = n, now
        if not os.path.exists(f"/proc/{pid}"):
            sys.exit(f"the service exited during the drain ({n} of {target} cached)")
        if now - last_change > 15 or now - t0 > timeout:
            sys.exit(f"drain stalled or timed out: {n} of {target} cached after {now - t0:.1f} s")
        time.sleep(0.005)
    t1 = time.monotonic()
    c1 = ticks(pid)
    with open(marks, "w") as f:
        f.write(f"{t0} {t1}\n")
    print("%.3f %.2f" % (t1 - t0, c1 - c0))

def cmd_sample(port, path, hz, out, stop, limit):
    """GET path at a fixed rate on one keep-alive connection until the stop file
    exists; one line per request: start (CLOCK_MONOTONIC) ms status."""
    period, end = 1.0 / float(hz), time.monotonic() + float(limit)
    conn, nxt = None, time.monotonic()
    with open(out, "w") as f:
        while not os.path.exists(stop) and time.monotonic() < end:
            nxt += period
            t = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                st = resp.status
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close(); conn = None
            except (OSError, http.client.HTTPException):
                st = 0
                if conn is not None:
                    conn.close()
                conn = None
            f.write("%.6f %.3f %d\n" % (t, (time.monotonic() - t) * 1000, st))
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            else:
                nxt = time.monotonic()

def cmd_stats(file, marks):
    """p50 p99 max n bad, over the samples started within the drain."""
    t0, t1 = map(float, open(marks).read().split())
    lat, bad = [], 0
    for line in open(file):
        t, ms, st = line.split()
        if t0 <= float(t) <= t1:
            lat.append(float(ms))
            bad += st != "200"
    if not lat:
        print("- - - 0 0"); return
    lat.sort()
    q = lambda p: lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))]
    print("%.1f %.1f %.1f %d %d" % (q(0.50), q(0.99), lat[-1], len(lat), bad))

FALLBACK = ("SELECT id, recipient, content, status, to_char(sent_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), retry_count, to_char(created_at AT TIME ZONE "
            "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), response_id FROM messages WHERE "
            "status = 'sent' ORDER BY sent_at DESC, id DESC LIMIT $1 OFFSET $2", ["10", "0"])

def cmd_pgbench_script(pglog, offset, out):
    """The last SELECT ... LIMIT that PostgreSQL logged (log_statement=all) after
    offset, as a pgbench script; prints the -D arguments and where it came from."""
    with open(pglog, errors="replace") as f:
        f.seek(int(offset))
        lines = f.read().split("\n")
    found = None
    i = 0
    while i < len(lines):
        m = re.search(r"LOG:\s+(?:execute [^:]*|statement): (.*)", lines[i])
        if not m:
            i += 1; continue
        sql = [m.group(1)]
        i += 1
        while i < len(lines) and lines[i].startswith("\t"):
            sql.append(lines[i].strip()); i += 1
        params = []
        if i < len(lines) and "DETAIL:  parameters:" in lines[i]:
            params = [None if v == "NULL" else v[1:-1].replace("''", "'")
                      for _, v in re.findall(r"\$(\d+) = (NULL|'(?:[^']|'')*')", lines[i])]
        text = " ".join(sql)
        if re.match(r"\s*select\b", text, re.I) and re.search(r"\blimit\b", text, re.I):
            found = (text, params)
    source = "logged by PostgreSQL for GET /messages?limit=10"
    if found is None:
        found, source = FALLBACK, "not logged; the statement of src/store.c store_list_sent"
    text, params = found
    # pgbench takes :name anywhere as a variable, so colons inside string literals
    # become \x3a in an E'' literal (the same constant); $n become :pn.
    parts = re.split(r"((?:(?<!\w)[eE])?'(?:[^']|'')*')", text)
    out_sql = []
    for k, p in enumerate(parts):
        if k % 2:
            e = p[0] if p[0] in "eE" else ""
            body = p[len(e) + 1:-1]
            if ":" in body:
                if not e:
                    body = body.replace("\\", "\\\\")
                p = "E'" + body.replace(":", "\\x3a") + "'"
        else:
            p = re.sub(r"\$(\d+)", r":p\1", p)
        out_sql.append(p)
    with open(out, "w") as f:
        f.write("".join(out_sql).rstrip().rstrip(";") + ";\n")
    args = []
    for k, v in enumerate(params, 1):
        args.append(f"-Dp{k}={v if v is not None else ''}")
    print(" ".join(args))
    print(source, file=sys.stderr)

def cmd_drain_many(redis_port, redis_db, target, timeout, *pid_ports):
    """cmd_drain for several instances on one backlog: POST /messages/start to all
    at once, wait until the Redis db holds target keys.  Prints elapsed_s cpu_s
    (the instances' CPU summed)."""
    import threading
    pairs = list(zip(pid_ports[0::2], pid_ports[1::2]))
    r = Redis(int(redis_port), redis_db)
    target, timeout = int(target), float(timeout)
    c0 = sum(ticks(pid) for pid, _ in pairs)
    answers = []
    posts = [threading.Thread(target=lambda p=port: answers.append(
        get("127.0.0.1", int(p), "/messages/start", "POST")[0])) for _, port in pairs]
    t0 = time.monotonic()
    for t in posts:
        t.start()
    for t in posts:
        t.join()
    if answers != [200] * len(pairs):
        sys.exit(f"POST /messages/start answered {answers}")
    last, last_change = -1, t0
    while True:
        n = r.dbsize()
        now = time.monotonic()
        if n >= target:
            break
        if n != last:
            last, last_change = n, now
        for pid, _ in pairs:
            if not os.path.exists(f"/proc/{pid}"):
                sys.exit(f"instance {pid} exited during the drain ({n} of {target} cached)")
        if now - last_change > 15 or now - t0 > timeout:
            sys.exit(f"drain stalled or timed out: {n} of {target} cached after {now - t0:.1f} s")
        time.sleep(0.005)
    t1 = time.monotonic()
    c1 = sum(ticks(pid) for pid, _ in pairs)
    print("%.3f %.2f" % (t1 - t0, c1 - c0))

cmds = {"wait": cmd_wait, "mem": cmd_mem, "startup": cmd_startup, "exec_time": cmd_exec_time, "drain": cmd_drain,
        "drain_many": cmd_drain_many,
        "sample": cmd_sample, "stats": cmd_stats, "pgbench_script": cmd_pgbench_script}
cmds[sys.argv[1]](*sys.argv[2:])
PY
bpy() { "$PY" "$tmp/bench.py" "$@"; }

# ---------------------------------------------------------------------------
# PostgreSQL, Redis, nginx on free ports.
say "starting PostgreSQL, Redis and nginx ($N messages, wrk ${SECS}s x $CONNS connections)"
pg_port=$(free_port) redis_port=$(free_port) sink_port=$(free_port)
mkdir -p "$tmp/pg" "$tmp/redis" "$tmp/nginx"
pg_init "$tmp/pg" >/dev/null || die "initdb"
pg_start "$tmp/pg" "$pg_port" >/dev/null || die "PostgreSQL did not start"
redis_start "$tmp/redis" "$redis_port" >/dev/null || die "Redis did not start"
for db in bench ref aux; do pg_createdb "$tmp/pg" "$pg_port" "$db" >/dev/null || die "createdb $db"; done
# The server's own psql: /usr/bin/psql is a Perl wrapper (60 ms of CPU a call).
PSQL=$(pg_bin)/psql
psql_db() { # DB psql-args...
	local db=$1
	shift
	PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -t -A -h 127.0.0.1 -p "$pg_port" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# nginx as ../shared/bench/README.md has it, plus a stub_status location that
# counts the requests (access_log stays off).
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1; daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http { access_log off; default_type application/json; keepalive_requests 100000000;
  client_body_temp_path $tmp/nginx/body; proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi; uwsgi_temp_path $tmp/nginx/uwsgi; scgi_temp_path $tmp/nginx/scgi;
  server { listen 127.0.0.1:$sink_port backlog=4096;
    location = /nginx_status { stub_status; }
    location / { return 202 '{"message":"Accepted","messageId":"\$request_id"}'; } } }
EOF
nginx -e "$tmp/nginx/error.log" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx/stdout.log" 2>&1 &
pids+=($!)
nginx_pid=$!
bpy wait "$sink_port" /nginx_status 10 "$nginx_pid" || {
	tail -5 "$tmp/nginx/error.log" >&2
	die "nginx did not answer on port $sink_port"
}
nginx_requests() { # the total request count of nginx (this request included)
	curl -fsS "http://127.0.0.1:$sink_port/nginx_status" | awk 'NR == 3 { print $3 }'
}

# The service's environment, nothing inherited but PATH: svc_env sets svc_vars.
svc_env() { # PORT DB REDIS_DB WEBHOOK_HOST CONCURRENCY [VAR=VALUE...]
	local port=$1 db=$2 rdb=$3 host=$4 conc=$5
	shift 5
	svc_vars=(PATH="$PATH" PORT="$port" BIND_ADDR=127.0.0.1 LOG_LEVEL="$LOGLVL"
		DATABASE_DSN="postgres://postgres@127.0.0.1:$pg_port/$db?sslmode=disable"
		REDIS_ADDR="127.0.0.1:$redis_port" REDIS_DB="$rdb" WEBHOOK_HOST="$host"
		PRODUCER_INTERVAL=0 SCHEDULER_BATCH_SIZE=0 AUTOSTART=false
		WEBHOOK_CONCURRENCY="$conc" SWAGGER_DIR="$root/web/swagger" "$@")
}
svc_start() { # LOG PORT ...svc_env args: starts the service, sets svc_pid, waits for /ready
	local log=$1 port=$2
	shift
	svc_env "$@"
	# env execs the service, so $! is the service's own pid (what /proc is read for).
	env -i "${svc_vars[@]}" "$SVC_BIN" >"$log" 2>&1 &
	svc_pid=$!
	pids+=("$svc_pid")
	bpy wait "$port" /ready 30 "$svc_pid" || {
		tail -20 "$log" >&2
		die "the service on port $port did not become ready"
	}
	[ "$(readlink "/proc/$svc_pid/exe")" = "$SVC_BIN" ] || die "pid $svc_pid is not $SVC_BIN"
}
mem() { bpy mem "$1"; } # PID -> "rss_kib anon_kib pss_kib"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "" || a == "-") print "—"; else printf "%.2f", a / b }'; }
msgs_per_s() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
cpu_per_k() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.3f", c / n * 1000 }'; }
wrk_rps() { # URL [WRK ARGS...] -> "req/s non2xx"; output kept in $tmp/wrk-*.txt
	local url=$1 out
	shift
	out="$tmp/wrk-$(date +%s%N).txt"
	timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 5s "$@" "$url" >"$out" 2>&1 ||
		die "wrk $url failed: $(tail -3 "$out")"
	awk '/^Requests\/sec:/ { r = $2 } /Non-2xx or 3xx responses:/ { b = $NF }
		END { if (r == "") exit 1; print r, b + 0 }' "$out" || die "no Requests/sec from wrk $url"
}
pgbench_tps() { # SCRIPT -> tps of pgbench -c1 -M prepared running it on bench
	local out=${1%.sql}-pgbench.txt tps
	# shellcheck disable=SC2086  # pgb_args is a list of -Dname=value
	timeout $((SECS + 30)) pgbench -n -c1 -M prepared -T "$SECS" -f "$1" $pgb_args \
		-h 127.0.0.1 -p "$pg_port" -U postgres bench >"$out" 2>&1 ||
		die "pgbench $1 failed: $(tail -5 "$out")"
	tps=$(awk '/^tps = / { printf "%.0f", $3 }' "$out")
	[ -n "$tps" ] || die "no tps in pgbench's output: $(tail -5 "$out")"
	echo "$tps"
}

# ---------------------------------------------------------------------------
# Schemas: the service's (applied before it starts, so the backlog can be
# inserted first; the service's own migration then finds it in place), and the
# reference's own table in its own database.
for db in bench aux; do
	for f in sql/*.sql; do psql_db "$db" -f "$f" >/dev/null || die "applying $f to $db"; done
done
if [ -n "$ref_dir" ]; then
	say "loading the reference's 100,000 rows"
	psql_db ref -f "$ref_dir/ref_schema.sql" >/dev/null || die "ref_schema.sql"
fi
insert_backlog() { # DB COUNT: COUNT pending messages, then VACUUM ANALYZE
	psql_db "$1" -c "INSERT INTO messages (recipient, content)
		SELECT '+90555' || lpad(g::text, 7, '0'),
		       'Your verification code is ' || (g % 1000000) || '. Do not share it with anyone.'
		FROM generate_series(1, $2) g" >/dev/null || die "inserting $2 messages into $1"
	psql_db "$1" -c "VACUUM ANALYZE messages" >/dev/null
}
ref_runs=() ref_cpus=() ref_busy=() ref_lines=()
run_reference() { # one reference drain of N messages; appends msgs/s and CPU s
	local out line
	[ -n "$ref_dir" ] || return 0
	psql_db ref -f "$ref_dir/ref_reset.sql" >/dev/null || die "ref_reset.sql"
	out=$tmp/ref-${#ref_runs[@]}.txt
	timeout "$DRAIN_TIMEOUT" build/bench/pipeline_ref \
		"host=127.0.0.1 port=$pg_port user=postgres dbname=ref" \
		"http://127.0.0.1:$sink_port/hook" "$redis_port" "$N" batch 100 "$CONC" >"$out" 2>&1 ||
		die "the reference pipeline failed: $(tail -3 "$out")"
	line=$(grep 'msgs/s=' "$out" | tail -1)
	[[ $line =~ msgs=([0-9]+)\ elapsed=([0-9.]+)s\ msgs/s=([0-9]+).*sim_cpu=([0-9.]+)\ us/msg\ \(([0-9]+)% ]] ||
		die "cannot read the reference's output: $line"
	[ "${BASH_REMATCH[1]}" -eq "$N" ] || die "the reference delivered ${BASH_REMATCH[1]} of $N"
	ref_runs+=("${BASH_REMATCH[3]}")
	# us/msg -> CPU seconds per 1,000 messages; the busy share of one core
	ref_cpus+=("$(awk -v u="${BASH_REMATCH[4]}" 'BEGIN { printf "%.3f", u / 1000 }')")
	ref_busy+=("${BASH_REMATCH[5]}")
	ref_lines+=("$line")
	say "reference: ${BASH_REMATCH[3]} msgs/s, ${BASH_REMATCH[4]} us CPU per message"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_begin=$(date +%s)

# ---------------------------------------------------------------------------
say "start-up: exec -> first GET /health 200, median of $STARTS (after one warm-up)"
st_port=$(free_port)
svc_env "$st_port" aux 2 "http://127.0.0.1:$sink_port" "$CONC"
read -r start_med start_min start_max < <(env -i "${svc_vars[@]}" \
	"$PY" "$tmp/bench.py" startup "$st_port" "$STARTS" "$tmp/startup.log" "$SVC_BIN") ||
	die "start-up timing failed: $(tail -5 "$tmp/startup.log")"
# The same for the bare evhttp server: what exec and a first answer cost here now.
hello_start=""
if [ -n "$ref_dir" ]; then
	read -r hello_start _ < <(bpy startup "$st_port" "$STARTS" "$tmp/startup-hello.log" \
		"$root/build/bench/evhttp_hello" "$st_port") ||
		die "evhttp_hello start-up timing failed: $(tail -5 "$tmp/startup-hello.log")"
fi

read -r libs_start libs_faults < <(bpy exec_time "$STARTS" "$root/build/bench/libs_only") ||
	die "timing build/bench/libs_only failed"

say "reference pipeline, run 1"
run_reference

say "drain 1: $N messages, WEBHOOK_CONCURRENCY=$CONC, to nginx"
insert_backlog bench "$N"
svc_port=$(free_port)
svc_start "$tmp/service.log" "$svc_port" bench 1 "http://127.0.0.1:$sink_port" "$CONC" WEBHOOK_PATH=/hook
svc1=$svc_pid
sleep 1
read -r idle_rss idle_anon _ < <(mem "$svc1")
nginx_before=$(nginx_requests)
read -r drain_s drain_cpu < <(bpy drain "$svc1" "$svc_port" "$redis_port" 1 "$N" "$DRAIN_TIMEOUT" "$tmp/marks1") ||
	{
		tail -20 "$tmp/service.log" >&2
		die "drain 1"
	}
nginx_after=$(nginx_requests)
nginx_posts=$((nginx_after - nginx_before - 1))
read -r sent_rows pending_rows failed_rows < <(psql_db bench -F' ' -c "SELECT count(*) FILTER (WHERE status = 'sent'),
	count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'failed') FROM messages")
cache_keys=$(redis-cli -p "$redis_port" -n 1 --scan --pattern 'message:*' | wc -l)
drain_rate=$(msgs_per_s "$N" "$drain_s")
drain_cpu_k=$(cpu_per_k "$drain_cpu" "$N")
drain_busy=$(awk -v c="$drain_cpu" -v s="$drain_s" 'BEGIN { printf "%.0f", c / s * 100 }')
say "service: $drain_rate msgs/s ($N in ${drain_s}s), $drain_cpu CPU s; nginx saw $nginx_posts, $sent_rows rows sent, $cache_keys cache keys"
sleep 1
read -r after_rss after_anon _ < <(mem "$svc1")

say "reference pipeline, run 2"
run_reference

say "GET /health: the service, then evhttp_hello (wrk -t1 -c$CONNS -d${SECS}s)"
read -r health_rps health_bad < <(wrk_rps "http://127.0.0.1:$svc_port/health")
hello_rps="" hello_bad=0
if [ -n "$ref_dir" ]; then
	hello_port=$(free_port)
	build/bench/evhttp_hello "$hello_port" >"$tmp/hello.log" 2>&1 &
	hello_pid=$!
	pids+=("$hello_pid")
	bpy wait "$hello_port" / 10 "$hello_pid" || die "evhttp_hello did not answer"
	read -r hello_rps hello_bad < <(wrk_rps "http://127.0.0.1:$hello_port/")
	stop_pid "$hello_pid"
fi

say "GET /messages?limit=10 over $sent_rows sent rows, then pgbench -c1 -M prepared of its SELECT"
# Log the statements for a moment (a reload reaches the service's idle session
# before its next command), take the SELECT of a real request, stop logging.
pglog=$tmp/pg/pg.log
psql_db bench -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
log_off=$(stat -c %s "$pglog")
for _ in 1 2 3; do curl -fsS -o /dev/null "http://127.0.0.1:$svc_port/messages?limit=10" || die "GET /messages?limit=10"; done
sleep 0.3
psql_db bench -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
pgb_args=$(bpy pgbench_script "$pglog" "$log_off" "$tmp/list.sql" 2>"$tmp/list-source.txt")
list_source=$(cat "$tmp/list-source.txt")
list_rows=$(curl -fsS "http://127.0.0.1:$svc_port/messages?limit=10" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin)["messages"]))')
read -r list_rps list_bad < <(wrk_rps "http://127.0.0.1:$svc_port/messages?limit=10")
pgb_tps=$(pgbench_tps "$tmp/list.sql")
# Every client above asks for the same page, which reads waiting together share
# (one index scan for all). The same again with each request its own page, one of
# the first 100 at random, and pgbench drawing its OFFSET the same way.
cat >"$tmp/pages.lua" <<'LUA'
math.randomseed(os.time())
request = function()
	return wrk.format("GET", "/messages?limit=10&offset=" .. 10 * math.random(0, 99))
end
LUA
read -r pages_rps pages_bad < <(wrk_rps "http://127.0.0.1:$svc_port/" -s "$tmp/pages.lua")
if [ -n "$pgb_args" ] && grep -q ':p2' "$tmp/list.sql"; then
	{ echo '\set p2 10 * random(0, 99)'; cat "$tmp/list.sql"; } >"$tmp/pages.sql"
	pgb_pages_tps=$(pgbench_tps "$tmp/pages.sql")
else
	pgb_pages_tps="" # the statement was not logged with its OFFSET as $2
fi

say "drain 2: $N more messages while GET /messages?limit=10 and GET /health are sampled at $HZ/s each"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$svc_port/messages/stop" || die "POST /messages/stop"
insert_backlog bench "$N"
samplers=()
for s in list:/messages?limit=10 health:/health; do
	# Not through bpy: a backgrounded function is a subshell, and $! must be python.
	"$PY" "$tmp/bench.py" sample "$svc_port" "${s#*:}" "$HZ" "$tmp/sample-${s%%:*}.txt" \
		"$tmp/sample.stop" "$DRAIN_TIMEOUT" &
	samplers+=($!)
	pids+=($!)
done
sleep 0.5
read -r drain2_s _ < <(bpy drain "$svc1" "$svc_port" "$redis_port" 1 "$((2 * N))" "$DRAIN_TIMEOUT" "$tmp/marks2") ||
	die "drain 2"
touch "$tmp/sample.stop"
for p in "${samplers[@]}"; do wait "$p" || die "a latency sampler failed"; done
read -r lp50 lp99 lmax ln lbad < <(bpy stats "$tmp/sample-list.txt" "$tmp/marks2")
read -r hp50 hp99 hmax hn hbad < <(bpy stats "$tmp/sample-health.txt" "$tmp/marks2")
drain2_rate=$(msgs_per_s "$N" "$drain2_s")
read -r end_rss end_anon _ < <(mem "$svc1")
stop_pid "$svc1" 15

say "memory with $INFLIGHT webhook requests in flight (webhook-receiver --mode hang)"
recv_port=$(free_port)
"$RECV_BIN" --bind 127.0.0.1 --port "$recv_port" --mode hang --quiet >"$tmp/receiver.log" 2>&1 &
recv_pid=$!
pids+=("$recv_pid")
bpy wait "$recv_port" /_requests 10 "$recv_pid" || die "the webhook receiver did not answer"
insert_backlog aux $((INFLIGHT + INFLIGHT / 5))
svc2_port=$(free_port)
svc_start "$tmp/service-inflight.log" "$svc2_port" aux 2 "http://127.0.0.1:$recv_port" "$INFLIGHT" \
	WEBHOOK_TIMEOUT=120s SHUTDOWN_TIMEOUT=1s
svc2=$svc_pid
sleep 1
read -r idle2_rss idle2_anon _ < <(mem "$svc2")
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$svc2_port/messages/start" || die "POST /messages/start"
in_flight=0
for _ in $(seq 300); do # 30 s at most
	in_flight=$(curl -fsS "http://127.0.0.1:$recv_port/_requests" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["count"])')
	[ "$in_flight" -ge "$INFLIGHT" ] && break
	sleep 0.1
done
sleep 1
read -r fl_rss fl_anon _ < <(mem "$svc2")
stop_pid "$svc2" 5
stop_pid "$recv_pid" 5

# ---------------------------------------------------------------------------
# Scale-out: 1 and 2 instances on one database, direct and through PgBouncer in
# transaction mode (as README "Running many instances" has it), each draining
# SCALE_N messages to nginx; the rate is combined (all instances, one clock).
say "scale-out: $SCALE_N messages, 1 and 2 instances, direct and through PgBouncer (default_pool_size=$POOL)"
pg_createdb "$tmp/pg" "$pg_port" scale >/dev/null || die "createdb scale"
for f in sql/*.sql; do psql_db scale -f "$f" >/dev/null || die "applying $f to scale"; done
bouncer_port=$(free_port)
pgbouncer_start "$tmp/bouncer" "$bouncer_port" "$pg_port" default_pool_size="$POOL" \
	max_client_conn=100 >/dev/null || die "PgBouncer did not start"
scale_notes=() scale_once=yes
declare -A scale_rate=()
for how in direct pgbouncer; do
	dsn="postgres://postgres@127.0.0.1:$pg_port/scale?sslmode=disable"
	[ "$how" = pgbouncer ] && dsn="postgres://postgres@127.0.0.1:$bouncer_port/scale?sslmode=disable"
	for k in 1 2; do
		psql_db scale -c "TRUNCATE messages RESTART IDENTITY" >/dev/null || die "truncate scale"
		insert_backlog scale "$SCALE_N"
		redis-cli -p "$redis_port" -n 3 FLUSHDB >/dev/null || die "FLUSHDB 3"
		args=() logs=()
		for ((j = 1; j <= k; j++)); do
			p=$(free_port)
			log="$tmp/scale-$how-$k-$j.log"
			svc_start "$log" "$p" scale 3 "http://127.0.0.1:$sink_port" "$CONC" \
				WEBHOOK_PATH=/hook DATABASE_DSN="$dsn"
			args+=("$svc_pid" "$p")
			logs+=("$log")
		done
		before=$(nginx_requests)
		read -r s_s s_cpu < <(bpy drain_many "$redis_port" 3 "$SCALE_N" "$DRAIN_TIMEOUT" "${args[@]}") ||
			die "scale-out drain ($how, $k instances)"
		posts=$(($(nginx_requests) - before - 1))
		sent=$(psql_db scale -c "SELECT count(*) FROM messages WHERE status = 'sent'")
		keys=$(redis-cli -p "$redis_port" -n 3 --scan --pattern 'message:*' | wc -l)
		for ((j = 0; j < k; j++)); do stop_pid "${args[$((2 * j))]}" 15; done
		rate=$(msgs_per_s "$SCALE_N" "$s_s")
		scale_rate[$how-$k]=$rate
		shares=""
		for log in "${logs[@]}"; do shares+="${shares:+ / }$(grep -c '"msg":"message sent"' "$log" || true)"; done
		ok=yes
		[ "$posts" -eq "$SCALE_N" ] && [ "$sent" -eq "$SCALE_N" ] && [ "$keys" -eq "$SCALE_N" ] || ok=no
		[ "$ok" = yes ] || scale_once="**no**"
		scale_notes+=("$how, $k instance(s): $rate msg/s in ${s_s} s, CPU $s_cpu s; nginx POSTs / rows sent / cache keys $posts / $sent / $keys ($ok); sent per instance $shares")
		say "scale-out $how x$k: $rate msgs/s; nginx $posts, rows $sent, keys $keys; per instance $shares"
	done
done
bouncer_pools=$(PGCONNECT_TIMEOUT=5 "$PSQL" -X -q -A -t -F' ' -h 127.0.0.1 -p "$bouncer_port" -U postgres -d pgbouncer \
	-c "SHOW POOLS" 2>/dev/null | awk '$1 == "scale" { print $10 + $11 " server connections open" }')
pgb_version=$("$(pgbouncer_bin)" --version | head -1)
pgbouncer_stop "$tmp/bouncer" >/dev/null 2>&1

# ---------------------------------------------------------------------------
# Attempt history (issue 9): the same drain with ATTEMPT_HISTORY off and on,
# alternated (off, on, off, on) on one fresh database so drift hits both alike;
# the history rows go in by the outcome write's own statement.
say "attempt history: 4 drains of $N messages, ATTEMPT_HISTORY=false/true alternated"
pg_createdb "$tmp/pg" "$pg_port" hist >/dev/null || die "createdb hist"
for f in sql/*.sql; do psql_db hist -f "$f" >/dev/null || die "applying $f to hist"; done
declare -A hist_sum=() hist_runs=()
hist_notes=()
for mode in false true false true; do
	psql_db hist -c "TRUNCATE messages, delivery_attempts RESTART IDENTITY" >/dev/null || die "truncate hist"
	insert_backlog hist "$N"
	redis-cli -p "$redis_port" -n 4 FLUSHDB >/dev/null || die "FLUSHDB 4"
	p=$(free_port)
	svc_start "$tmp/hist-$mode-${#hist_notes[@]}.log" "$p" hist 4 "http://127.0.0.1:$sink_port" "$CONC" \
		WEBHOOK_PATH=/hook ATTEMPT_HISTORY="$mode"
	read -r h_s _ < <(bpy drain "$svc_pid" "$p" "$redis_port" 4 "$N" "$DRAIN_TIMEOUT" "$tmp/marks-hist") ||
		die "attempt history drain ($mode)"
	stop_pid "$svc_pid" 15
	rate=$(msgs_per_s "$N" "$h_s")
	rows=$(psql_db hist -c "SELECT count(*) FROM delivery_attempts")
	hist_sum[$mode]=$((${hist_sum[$mode]:-0} + rate))
	hist_runs[$mode]="${hist_runs[$mode]:+${hist_runs[$mode]} / }$rate"
	hist_notes+=("ATTEMPT_HISTORY=$mode: $rate msg/s, $rows attempt rows")
	say "attempt history $mode: $rate msgs/s, $rows attempt rows"
done
hist_off=$((hist_sum[false] / 2))
hist_on=$((hist_sum[true] / 2))

t_total=$(($(date +%s) - t_begin))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# The report.
n_fmt() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; } # 100000 -> 100,000
ref_mean="" ref_cpu_mean=""
if [ "${#ref_runs[@]}" -eq 2 ]; then
	ref_mean=$(awk -v a="${ref_runs[0]}" -v b="${ref_runs[1]}" 'BEGIN { printf "%.0f", (a + b) / 2 }')
	ref_cpu_mean=$(awk -v a="${ref_cpus[0]}" -v b="${ref_cpus[1]}" 'BEGIN { printf "%.3f", (a + b) / 2 }')
fi
r_drain=$(ratio "$drain_rate" "$ref_mean")
r_health=$(ratio "$health_rps" "$hello_rps")
r_list=$(ratio "$list_rps" "$pgb_tps")
r_cpu=$(ratio "$drain_cpu_k" "$ref_cpu_mean")
met() { # RATIO-or-value CONDITION (awk, x = the value)
	[ "$1" = "—" ] || [ "$1" = "-" ] && { echo "—"; return; }
	awk -v x="$1" "BEGIN { print ($2) ? \"yes\" : \"**no**\" }"
}
once_ok=no
[ "$nginx_posts" -eq "$N" ] && [ "$sent_rows" -eq "$N" ] && [ "$cache_keys" -eq "$N" ] && once_ok=yes
[ "$once_ok" = yes ] || once_ok="**no**"
commit=$(git rev-parse --short HEAD)
dirty=""
# Documentation and earlier results do not change what is measured.
git diff --quiet HEAD -- . ':(exclude)*.md' ':(exclude)bench/results' 2>/dev/null ||
	dirty=" (with uncommitted changes to the code)"
date_s=$(date -u +%Y-%m-%d)
na="— (no ../shared/bench)"

report=$tmp/report.md
{
	echo "# make bench: $date_s, commit $commit$dirty"
	echo
	echo "| figure | ours | ceiling, same run | ratio | target | met |"
	echo "|---|---|---|---|---|---|"
	if [ -n "$ref_mean" ]; then
		echo "| drain $(n_fmt "$N") messages to nginx (rows \`sent\`, cache keys set), msg/s | $(n_fmt "$drain_rate") | reference pipeline: $(n_fmt "$ref_mean") (before $(n_fmt "${ref_runs[0]}"), after $(n_fmt "${ref_runs[1]}")) | $r_drain | ≥ 0.90 | $(met "$r_drain" 'x >= 0.90') |"
	else
		echo "| drain $(n_fmt "$N") messages to nginx (rows \`sent\`, cache keys set), msg/s | $(n_fmt "$drain_rate") | $na | — | ≥ 0.90 | — |"
	fi
	echo "| exactly once: nginx POSTs / rows \`sent\` / cache keys | $(n_fmt "$nginx_posts") / $(n_fmt "$sent_rows") / $(n_fmt "$cache_keys") | $(n_fmt "$N") messages | — | all = $(n_fmt "$N") | $once_ok |"
	if [ -n "$ref_mean" ]; then
		echo "| CPU seconds per 1,000 messages (busy share of one core) | $drain_cpu_k ($drain_busy %) | reference: $ref_cpu_mean (${ref_cpus[0]} / ${ref_cpus[1]}; ${ref_busy[0]} / ${ref_busy[1]} %) | $r_cpu | — | — |"
	else
		echo "| CPU seconds per 1,000 messages (busy share of one core) | $drain_cpu_k ($drain_busy %) | $na | — | — | — |"
	fi
	if [ -n "$hello_rps" ]; then
		echo "| \`GET /health\`, wrk $CONNS connections, req/s | $(n_fmt "${health_rps%.*}") | bare evhttp \`evhttp_hello.c\`: $(n_fmt "${hello_rps%.*}") | $r_health | ≥ 0.90 | $(met "$r_health" 'x >= 0.90') |"
	else
		echo "| \`GET /health\`, wrk $CONNS connections, req/s | $(n_fmt "${health_rps%.*}") | $na | — | ≥ 0.90 | — |"
	fi
	echo "| \`GET /messages?limit=10\` over $(n_fmt "$sent_rows") sent rows, wrk $CONNS connections, req/s | $(n_fmt "${list_rps%.*}") | \`pgbench -c1 -M prepared\` of the same SELECT: $(n_fmt "$pgb_tps") | $r_list | ≥ 1.5 | $(met "$r_list" 'x >= 1.5') |"
	if [ -n "$pgb_pages_tps" ]; then
		echo "| the same, each request a page of its own (\`offset\` 0–990 at random), req/s | $(n_fmt "${pages_rps%.*}") | pgbench, \`OFFSET\` drawn the same way: $(n_fmt "$pgb_pages_tps") | $(ratio "$pages_rps" "$pgb_pages_tps") | — | — |"
	else
		echo "| the same, each request a page of its own (\`offset\` 0–990 at random), req/s | $(n_fmt "${pages_rps%.*}") | $na | — | — | — |"
	fi
	r_hist=$(ratio "$hist_on" "$hist_off")
	echo "| drain with attempt history (\`ATTEMPT_HISTORY=true\`), msg/s, mean of 2 | $(n_fmt "$hist_on") (${hist_runs[true]}) | without: $(n_fmt "$hist_off") (${hist_runs[false]}) | $r_hist | ≥ 0.95 | $(met "$r_hist" 'x >= 0.95') |"
	echo "| \`GET /messages?limit=10\` during a $(n_fmt "$N") drain, p50 / p99 / max ms | $lp50 / $lp99 / $lmax | — | — | p99 ≤ 20 ms | $(met "$lp99" 'x <= 20') |"
	echo "| \`GET /health\` during the drain, p50 / p99 / max ms | $hp50 / $hp99 / $hmax | — | — | max ≤ 50 ms | $(met "$hmax" 'x <= 50') |"
	echo "| RSS idle, MiB | $(mib "$idle_rss") | — | — | ≤ 12 | $(met "$(mib "$idle_rss")" 'x <= 12') |"
	echo "| private (anonymous) memory idle, MiB (\`smaps_rollup\`) | $(mib "$idle_anon") | — | — | ≤ 2 | $(met "$(mib "$idle_anon")" 'x <= 2') |"
	echo "| RSS with $(n_fmt "$in_flight") webhook requests in flight (\`WEBHOOK_CONCURRENCY=$INFLIGHT\`), MiB (anonymous) | $(mib "$fl_rss") ($(mib "$fl_anon")) | — | — | ≤ 20 | $(met "$(mib "$fl_rss")" 'x <= 20') |"
	echo "| RSS after the $(n_fmt "$N") drain, MiB (anonymous) | $(mib "$after_rss") ($(mib "$after_anon")) | idle: $(mib "$idle_rss") | +$(mib $((after_rss - idle_rss))) | ≤ idle + 2 | $(met "$(mib $((after_rss - idle_rss)))" 'x <= 2') |"
	if [ -n "$hello_start" ]; then
		echo "| start-up, exec → first \`GET /health\` 200, ms (median of $STARTS) | $start_med | bare evhttp \`evhttp_hello.c\`: $hello_start | $(ratio "$start_med" "$hello_start") | ≤ 20 | $(met "$start_med" 'x <= 20') |"
	else
		echo "| start-up, exec → first \`GET /health\` 200, ms (median of $STARTS) | $start_med | $na | — | ≤ 20 | $(met "$start_med" 'x <= 20') |"
	fi
	echo "| start-up floor: exec → exit of an empty program linked with the service's libraries, ms (minor page faults) | $libs_start ($libs_faults) | — | — | — | — |"
	echo "| start-up less that floor: the service's own work, ms | $(awk -v a="$start_med" -v b="$libs_start" 'BEGIN { printf "%.1f", a - b }') | — | — | — | — |"
	sc="scale-out: drain $(n_fmt "$SCALE_N") messages,"
	echo "| $sc 1 instance, direct, msg/s | $(n_fmt "${scale_rate[direct-1]}") | — | — | — | — |"
	echo "| $sc 2 instances, direct, combined msg/s | $(n_fmt "${scale_rate[direct-2]}") | 1 instance, direct: $(n_fmt "${scale_rate[direct-1]}") | $(ratio "${scale_rate[direct-2]}" "${scale_rate[direct-1]}") | — | — |"
	echo "| $sc 1 instance through PgBouncer (\`pool_mode=transaction\`, pool $POOL), msg/s | $(n_fmt "${scale_rate[pgbouncer-1]}") | 1 instance, direct: $(n_fmt "${scale_rate[direct-1]}") | $(ratio "${scale_rate[pgbouncer-1]}" "${scale_rate[direct-1]}") | — | — |"
	echo "| $sc 2 instances through PgBouncer, combined msg/s | $(n_fmt "${scale_rate[pgbouncer-2]}") | 2 instances, direct: $(n_fmt "${scale_rate[direct-2]}") | $(ratio "${scale_rate[pgbouncer-2]}" "${scale_rate[direct-2]}") | — | — |"
	echo "| scale-out exactly once: nginx POSTs = rows \`sent\` = cache keys = $(n_fmt "$SCALE_N"), each of the 4 drains | see notes | — | — | all equal | $scale_once |"
	echo
	echo "Notes"
	echo
	echo "- The service drained with \`WEBHOOK_CONCURRENCY=$CONC\`, \`LOG_LEVEL=$LOGLVL\` (log to a file), \`SCHEDULER_BATCH_SIZE=0\`, timed from \`POST /messages/start\` until Redis held a cache key for every message (each is written after its row is \`sent\`); the reference used batch 100 and $CONC in flight. After the drain: $pending_rows pending, $failed_rows failed."
	[ -n "$ref_mean" ] && for l in "${ref_lines[@]}"; do echo "- reference: \`$l\`"; done
	echo "- CPU: utime + stime of the service's process over its drain (/proc/PID/stat), and the reference's own getrusage."
	echo "- wrk non-2xx answers: /health $health_bad${hello_rps:+, evhttp_hello $hello_bad}, /messages $list_bad, /messages (random pages) $pages_bad. The page had $list_rows messages. pgbench's statement ($list_source): \`$(head -c 400 "$tmp/list.sql" | tr -d '\n')\` with \`${pgb_args:-no parameters}\`."
	echo "- Latency: one keep-alive connection per URL at $HZ requests/s, measured by the client from sending to the whole answer; $ln and $hn samples fell within the drain, non-200: $lbad and $hbad. That drain (with the samplers) ran at $(n_fmt "$drain2_rate") msg/s."
	echo "- Memory: RSS and Anonymous of /proc/PID/smaps_rollup, $swagger_note. Idle = ready, sending not started, $(n_fmt "$N") pending rows. At the end of the bench (two drains and the wrk runs): $(mib "$end_rss") MiB RSS, $(mib "$end_anon") anonymous. The in-flight instance idled at $(mib "$idle2_rss") MiB ($(mib "$idle2_anon") anonymous) before $(n_fmt "$in_flight") requests hung at the receiver."
	echo "- Start-up: min $start_min, max $start_max ms, \`AUTOSTART=false\`, migrated database."
	echo "- Attempt history: 4 drains of $(n_fmt "$N") on one fresh database (truncated between), \`ATTEMPT_HISTORY\` false, true, false, true: $(IFS=';'; echo "${hist_notes[*]}")."
	echo "- Scale-out: each drain on a fresh backlog of $(n_fmt "$SCALE_N") in one database, \`WEBHOOK_CONCURRENCY=$CONC\` per instance, timed from the \`POST /messages/start\` sent to every instance at once until Redis held every key; $pgb_version with \`pool_mode=transaction\`, \`default_pool_size=$POOL\`, no \`ignore_startup_parameters\` (after the drains: ${bouncer_pools:-no pool row})."
	for l in "${scale_notes[@]}"; do echo "  - $l"; done
	[ -n "$ref_dir" ] || echo "- ../shared/bench is absent: the reference pipeline and evhttp_hello ceilings were skipped."
	echo "- Whole run: ${t_total} s; load average $load_start at the start, $load_end at the end."
	if awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
		echo "- **The machine was busy** (load average above half its $(nproc) CPUs when the run began): absolute figures are low and the ratios noisy; compare ratios across runs, and rerun on a quiet machine to judge a target."
	fi
	echo
	echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) memory, Linux $(uname -r)$(. /etc/os-release 2>/dev/null && echo ", $PRETTY_NAME")."
	echo
	echo "Versions: libevent $(pkg-config --modversion libevent), libpq $(pkg-config --modversion libpq), hiredis $(pkg-config --modversion hiredis), libcurl $(pkg-config --modversion libcurl), jansson $(pkg-config --modversion jansson); $("$(pg_bin)/postgres" --version), $(redis-server --version | awk '{ print "Redis", $3 }' | sed 's/v=//'), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -1 | awk '{ print $1, $2 }'), $(pgbench --version), $(cc --version | head -1)."
	echo
	echo "Settings: BENCH_MESSAGES=$N BENCH_SCALE_MESSAGES=$SCALE_N BENCH_POOL_SIZE=$POOL BENCH_SECONDS=$SECS BENCH_CONNECTIONS=$CONNS BENCH_CONCURRENCY=$CONC BENCH_INFLIGHT=$INFLIGHT BENCH_STARTS=$STARTS BENCH_SAMPLE_HZ=$HZ."
} >"$report"

mkdir -p "$results_dir"
result_file=$results_dir/$date_s-$commit.md
cp "$report" "$result_file"
echo
cat "$report"
echo
say "saved as $result_file"
