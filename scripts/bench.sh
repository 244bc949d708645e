#!/usr/bin/env bash
# `make bench`: throughput of the real service, each number as a ratio against a
# reference measured in the same run on the same machine, so runs on different
# machines compare.
#
#   delivery   messages/s from pending to sent (claim, POST, outcome write, cache)
#              vs. the receiver's own POST capacity at the same concurrency (wrk)
#   /health    requests/s of the service vs. the receiver's /health (the same
#              evhttp, no application logic)
#   /messages  requests/s of a database-backed page vs. /health of the service
#
# BENCH_MESSAGES (default 20000), BENCH_SECONDS per wrk run (default 5).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/services.sh
. scripts/services.sh

./scripts/install-deps.sh build dev bench
make --no-print-directory >/dev/null

N=${BENCH_MESSAGES:-20000}
SECS=${BENCH_SECONDS:-5}
CONC=64
tmp=$(mktemp -d /tmp/gopulse-bench.XXXXXX)
chmod 755 "$tmp"
recv_pid="" svc_pid=""
cleanup() {
	set +e
	[ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null
	[ -n "$recv_pid" ] && kill "$recv_pid" 2>/dev/null && wait "$recv_pid" 2>/dev/null
	redis_stop "$tmp/redis" >/dev/null 2>&1
	pg_stop "$tmp/pg" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

pg_port=$(free_port) redis_port=$(free_port) recv_port=$(free_port) svc_port=$(free_port)
mkdir -p "$tmp/pg" "$tmp/redis"
pg_init "$tmp/pg" >/dev/null
pg_start "$tmp/pg" "$pg_port" >/dev/null
pg_createdb "$tmp/pg" "$pg_port" bench >/dev/null
redis_start "$tmp/redis" "$redis_port" >/dev/null
build/webhook-receiver --bind 127.0.0.1 --port "$recv_port" --quiet >"$tmp/receiver.log" 2>&1 &
recv_pid=$!
psql_b() { psql -X -q -t -A -h 127.0.0.1 -p "$pg_port" -U postgres -d bench -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$recv_port/health" >/dev/null && break; sleep 0.1; done

cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"to":"+905551112233","content":"benchmark message"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "msg_1"
LUA
# rps URL [wrk args...]: requests per second wrk measured
rps() {
	local url=$1
	shift
	wrk -t2 -c"$CONC" -d"${SECS}s" "$@" "$url" | awk '/^Requests\/sec:/ {print $2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "== reference: receiver POST capacity (wrk, $CONC connections, ${SECS}s)"
ref_post=$(rps "http://127.0.0.1:$recv_port/webhook" -s "$tmp/post.lua")
curl -fs -X DELETE "http://127.0.0.1:$recv_port/_requests" >/dev/null
ref_health=$(rps "http://127.0.0.1:$recv_port/health")

for f in sql/*.sql; do psql_b -f "$f" >/dev/null 2>&1; done
psql_b -c "INSERT INTO messages (recipient, content)
	SELECT '+1555' || lpad(g::text, 8, '0'), 'benchmark message ' || g
	FROM generate_series(1, $N) g" >/dev/null

echo "== delivery: $N pending messages, drain with WEBHOOK_CONCURRENCY=$CONC"
start=$(date +%s.%N)
env -i PATH="$PATH" PORT="$svc_port" BIND_ADDR=127.0.0.1 \
	DATABASE_DSN="postgres://postgres@127.0.0.1:$pg_port/bench?sslmode=disable" \
	REDIS_ADDR="127.0.0.1:$redis_port" WEBHOOK_HOST="http://127.0.0.1:$recv_port" \
	PRODUCER_INTERVAL=0 SCHEDULER_BATCH_SIZE=0 WEBHOOK_CONCURRENCY=$CONC \
	build/gopulse-messages >"$tmp/service.log" 2>&1 &
svc_pid=$!
while :; do
	sent=$(psql_b -c "SELECT count(*) FROM messages WHERE status = 'sent'")
	[ "$sent" -ge "$N" ] && break
	kill -0 "$svc_pid" 2>/dev/null || { tail -20 "$tmp/service.log"; exit 1; }
	sleep 0.1
done
secs=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.2f", a - b}')
delivery=$(awk -v n="$N" -v s="$secs" 'BEGIN {printf "%.0f", n / s}')
cached=$(redis-cli -p "$redis_port" DBSIZE)
received=$(curl -fs "http://127.0.0.1:$recv_port/_requests" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')

echo "== API (wrk, $CONC connections, ${SECS}s)"
svc_health=$(rps "http://127.0.0.1:$svc_port/health")
svc_list=$(rps "http://127.0.0.1:$svc_port/messages?limit=10")

echo
printf '%-34s %12s %12s %8s\n' "measure" "value" "reference" "ratio"
printf '%-34s %12s %12s %8s\n' "delivery msgs/s (vs receiver POST/s)" "$delivery" "$ref_post" "$(ratio "$delivery" "$ref_post")"
printf '%-34s %12s %12s %8s\n' "GET /health req/s (vs receiver)" "$svc_health" "$ref_health" "$(ratio "$svc_health" "$ref_health")"
printf '%-34s %12s %12s %8s\n' "GET /messages req/s (vs /health)" "$svc_list" "$svc_health" "$(ratio "$svc_list" "$svc_health")"
echo
echo "delivered $N in ${secs}s; receiver saw $received requests; $cached cache entries"
[ "$received" -eq "$N" ] || echo "WARNING: the receiver saw $received requests for $N messages"
