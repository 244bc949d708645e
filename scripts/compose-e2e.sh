#!/usr/bin/env bash
# compose-e2e.sh - the container proof run by .ci/run (as root, Debian 12, no Docker engine).
#
#   1. ../shared/tools/container-check.sh (podman, see ../shared/CONTAINERS.md): the
#      Dockerfile builds; the image runs as uid 10001, answers /health and its HEALTHCHECK
#      is healthy; docker-compose.yml brings up all four services healthy and /health
#      answers on the published port. It runs with -k, so the compose stack stays up for:
#   2. end to end, through the published ports: a message produced inside compose reached
#      the `webhook` service (GET :9090/_requests) with the right body and webhook-id, is
#      listed by GET :8080/messages with the receiver's messageId, and is cached in Redis;
#      /openapi.yaml, /swagger/doc.json and Swagger UI are served; the server and the
#      receiver stop on SIGTERM with exit status 0 well inside stop_grace_period.
#   3. cleanup as container-check.sh does it (everything under CTR_ROOT goes).
#
#   scripts/compose-e2e.sh          env: BASE_CACHE=/var/tmp/bookworm-slim.tar (reuse the
#                                        debootstrapped base), SHARED_DIR (../shared),
#                                        CTR_ROOT (/tmp/ctr-ci), E2E_TIMEOUT (60 s),
#                                        E2E_KEEP=1 (leave the stack up to look at it)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
SHARED_DIR=${SHARED_DIR:-$(cd "$repo/.." && pwd)/shared}
CHECK=$SHARED_DIR/tools/container-check.sh
export CTR_ROOT=${CTR_ROOT:-/tmp/ctr-ci}
PROJECT=cicheck                  # container-check.sh's compose project name
API=http://127.0.0.1:8080 RECEIVER=http://127.0.0.1:9090
TIMEOUT=${E2E_TIMEOUT:-60}

T0=$(date +%s)
fail() { echo "compose-e2e: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (rootful podman)"
[ -x "$CHECK" ] || fail "no $CHECK (set SHARED_DIR)"

# podman with container-check.sh's configuration; drop the no-systemd noise it also filters
P() {
	CONTAINERS_STORAGE_CONF=$CTR_ROOT/storage.conf CONTAINERS_CONF=$CTR_ROOT/containers.conf \
		TMPDIR=$CTR_ROOT/tmp podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}
svc() { P ps -a -q --filter "label=com.docker.compose.project=$PROJECT" \
	--filter "label=com.docker.compose.service=$1" | head -n 1; }

teardown() { # what container-check.sh's own cleanup does
	if [ -f "$CTR_ROOT/containers.conf" ]; then
		P rm -af -t 2 >/dev/null 2>&1 || true
		P system reset -f >/dev/null 2>&1 || true
	fi
	umount -R "$CTR_ROOT/storage/overlay" 2>/dev/null || true
	rm -rf "$CTR_ROOT"
}
on_exit() {
	local rc=$?
	if [ "$rc" != 0 ] && [ -n "${server:-}" ]; then
		echo "--- server log (last 40 lines)"; P logs --tail 40 "$server" 2>&1 || true
	fi
	if [ "${E2E_KEEP:-0}" = 1 ]; then
		echo "compose-e2e: kept the stack; podman needs CONTAINERS_CONF=$CTR_ROOT/containers.conf" \
			"CONTAINERS_STORAGE_CONF=$CTR_ROOT/storage.conf"
	else
		teardown
	fi
	echo "compose-e2e: total $(($(date +%s) - T0)) s, exit $rc"
	exit "$rc"
}

# A run that was killed leaves its containers and ports behind: start clean.
[ -e "$CTR_ROOT" ] && { echo "compose-e2e: removing the leftovers of an earlier run in $CTR_ROOT"; teardown; }
for port in 8080 9090 5433 18080; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		fail "port $port is in use on this machine (compose publishes 8080, 9090, 5433; the image check 18080)"
	fi
done
trap on_exit EXIT

# The compose file takes every setting from this environment: none may leak in from the
# caller's, except the two intervals that make the flow fast enough to watch here.
# The list is every ${VAR:-default} in the file (test_config_docs.py holds those to the
# configuration table), so a new setting needs no edit here.
# shellcheck disable=SC2016,SC2046
unset $(grep -o '\${[A-Z_][A-Z0-9_]*:-' docker-compose.yml | sed 's/^\${//; s/:-$//' | sort -u)
export PRODUCER_INTERVAL=2s SCHEDULER_INTERVAL=3s

echo "=== container-check.sh -k ($(date +%T))"
"$CHECK" -C . -p 8080 -P /health -e '"status":"ok"' -u 10001 \
	-c docker-compose.yml -U "$API/health" -k
T1=$(date +%s)

echo; echo "=== end to end through the published ports ($(date +%T))"
server=$(svc server) webhook=$(svc webhook) redis=$(svc redis)
[ -n "$server" ] && [ -n "$webhook" ] && [ -n "$redis" ] || fail "compose services not found"
P image inspect localhost/gopulse-messages:latest --format 'image size: {{.Size}} bytes'
# the image's version label (Dockerfile ARG VERSION) is the binary's (include/common.h)
label=$(P image inspect localhost/gopulse-messages:latest \
	--format '{{index .Config.Labels "org.opencontainers.image.version"}}')
binver=$(P run --rm localhost/gopulse-messages:latest --version)
echo "label version $label, binary: $binver"
[ "$binver" = "gopulse-messages $label" ] || fail "Dockerfile ARG VERSION=$label, binary says $binver"

# Wait for sent messages; then every one listed must have reached the receiver as posted.
sent=
for _ in $(seq "$TIMEOUT"); do
	sent=$(curl -fsS -m 3 "$API/messages?limit=5" 2>/dev/null) &&
		python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1])["count"] == 0)' "$sent" &&
		break
	sent=
	sleep 1
done
[ -n "$sent" ] || fail "no sent message in GET /messages after $TIMEOUT s"
received=$(curl -fsS -m 3 "$RECEIVER/_requests") || fail "GET :9090/_requests"
ids=$(python3 - "$sent" "$received" <<'EOF'
import json, sys
sent, received = json.loads(sys.argv[1]), json.loads(sys.argv[2])
posts = {}
for r in received["requests"]:
    if r["method"] == "POST" and r["path"] == "/webhook":
        posts.setdefault(r["headers"].get("webhook-id"), []).append(r)
for m in sent["messages"]:
    assert m["status"] == "sent" and m["sent_at"], m
    got = posts.get("msg_%d" % m["id"])
    assert got, "message %d is listed as sent but the receiver never got it" % m["id"]
    r = got[-1]
    assert r["status"] == 202, r
    assert json.loads(r["body"]) == {"to": m["recipient"], "content": m["content"]}, r["body"]
    assert r["headers"].get("content-type", "").startswith("application/json"), r["headers"]
    assert m.get("response_id") == r["message_id"], (m, r["message_id"])
    print(m["id"], m["response_id"])
print("%d sent, %d received" % (sent["count"], received["count"]), file=sys.stderr)
EOF
) || fail "GET /messages and the receiver disagree"
echo "$ids" | sed 's/^/sent and received: message /'
# The cache entry follows the database write by a moment: give it a few seconds.
cached=
for _ in $(seq 10); do
	while read -r id mid; do
		c=$(P exec "$redis" redis-cli GET "message:$id" </dev/null)
		grep -qF "\"$mid\"" <<<"$c" && { cached="message:$id -> $c"; break; }
	done <<<"$ids"
	[ -n "$cached" ] && break
	sleep 1
done
[ -n "$cached" ] || fail "none of the sent messages is cached in Redis"
echo "redis GET $cached"
# Read the whole log first: with pipefail, grep -q quitting early would fail the pipe.
server_log=$(P logs "$server" 2>&1)
grep -q 'Successfully created a new message' <<<"$server_log" || fail "no producer line in the server log"
(exec 3<>/dev/tcp/127.0.0.1/5433) 2>/dev/null || fail "PostgreSQL is not published on 5433"

# API description and Swagger UI, from the image's /usr/share/gopulse-messages/swagger
code() { curl -sS -m 5 -o /dev/null -w '%{http_code} %{content_type}' "$API$1"; }
for path in /openapi.yaml /swagger/doc.json; do
	c=$(code "$path"); echo "GET $path -> $c"; [ "${c%% *}" = 200 ] || fail "GET $path"
done
if [ -f web/swagger/swagger-ui-bundle.js ]; then
	for path in /swagger/ /swagger/swagger-ui-bundle.js; do
		c=$(code "$path"); echo "GET $path -> $c"; [ "${c%% *}" = 200 ] || fail "GET $path"
	done
else
	echo "GET /swagger/ -> $(code /swagger/) (no assets in web/swagger: run make swagger-ui before the build)"
fi

# SIGTERM (the image's STOPSIGNAL): drain, exit 0, long before compose's 15 s grace period
for c in "$server" "$webhook"; do
	t=$(date +%s.%N)
	P stop -t 15 "$c" >/dev/null
	took=$(awk -v a="$(date +%s.%N)" -v b="$t" 'BEGIN{printf "%.1f", a-b}')
	rc=$(P inspect -f '{{.State.ExitCode}}' "$c")
	echo "stop $(P inspect -f '{{.Name}}' "$c"): exit $rc after ${took}s"
	[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM"
	awk -v t="$took" 'BEGIN{exit !(t < 12)}' || fail "SIGTERM took ${took}s"
done
echo; echo "compose-e2e: container-check $((T1 - T0)) s, end to end $(($(date +%s) - T1)) s"
echo "COMPOSE END TO END PASSED"
