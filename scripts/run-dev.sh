#!/usr/bin/env bash
# `make run`: the service with its own local PostgreSQL, Redis and webhook receiver.
#
# Installs missing packages (as root), builds, then under .run/ (git-ignored) starts a
# PostgreSQL cluster (created once, kept across runs), redis-server and
# build/webhook-receiver on free ports, and runs build/gopulse-messages in the
# foreground.  Ctrl-C stops the service gracefully, then everything else.
#
# The service gets DATABASE_DSN, REDIS_ADDR and WEBHOOK_HOST pointing at the local
# servers; PORT (8080), PRODUCER_INTERVAL (5s), SCHEDULER_INTERVAL (10s) and
# WEBHOOK_PATH (/webhook) can be overridden, and every other variable you set
# (LOG_LEVEL, SCHEDULER_BATCH_SIZE, ...) passes through.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/services.sh
. scripts/services.sh

./scripts/install-deps.sh build dev
make --no-print-directory
# Swagger UI at /swagger/ needs the pinned npm assets; the service runs without.
if command -v npm >/dev/null 2>&1; then
	make --no-print-directory swagger-ui >/dev/null || echo "run-dev: could not fetch the Swagger UI assets (make swagger-ui)" >&2
else
	echo "run-dev: no npm: Swagger UI at /swagger/ stays unavailable (the spec is at /openapi.yaml)" >&2
fi

run="$root/.run"
mkdir -p "$run"
pg_dir="$run/pg"
redis_dir="$run/redis"
receiver_pid_file="$run/receiver.pid"
svc_pid_file="$run/service.pid"
svc_bin=${GOPULSE_BIN:-build/gopulse-messages}

# What is up, so the EXIT trap stops exactly that.
pg_up=0 redis_up=0 receiver_pid="" svc_pid="" signals=0

stop_pid() { # PID: SIGTERM, then SIGKILL after 5 s
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	set +e
	if [ -n "$svc_pid" ] && kill -0 "$svc_pid" 2>/dev/null; then
		echo "run-dev: stopping the service" >&2
		stop_pid "$svc_pid"
	fi
	echo "run-dev: stopping receiver, redis, postgres" >&2
	if [ -n "$receiver_pid" ]; then
		stop_pid "$receiver_pid"
		rm -f "$receiver_pid_file"
	fi
	[ "$redis_up" = 1 ] && redis_stop "$redis_dir"
	[ "$pg_up" = 1 ] && pg_stop "$pg_dir"
	exit "$rc"
}

# Before the service runs a signal just ends the script (the EXIT trap cleans up).
# Once it runs, the signal is forwarded, and we keep waiting: the service drains
# first; a second Ctrl-C is forwarded too (the service then exits at once); a
# third one kills it.
# shellcheck disable=SC2317  # called from traps
on_signal() {
	local sig=$1
	if [ -z "$svc_pid" ]; then
		exit $((128 + $(kill -l "$sig")))
	fi
	signals=$((signals + 1))
	if [ "$signals" -ge 3 ]; then
		echo "run-dev: killing the service" >&2
		kill -KILL "$svc_pid" 2>/dev/null || true
	else
		kill -s "$sig" "$svc_pid" 2>/dev/null || true
	fi
}

trap cleanup EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal TERM' HUP

# Leftovers of a run that was killed hard (kill -9): our pid files hold "PID STARTTIME";
# the start time (in /proc/PID/stat) tells our old process from a reused pid.
proc_start() { # PID
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $20 }'
}
write_pid() { # PID PIDFILE
	echo "$1 $(proc_start "$1")" >"$2"
}
stop_stale() { # PIDFILE
	local pid start
	[ -f "$1" ] || return 0
	read -r pid start <"$1" || true
	if [ -n "${pid:-}" ] && [ -n "${start:-}" ] && [ "$(proc_start "$pid")" = "$start" ]; then
		echo "run-dev: stopping pid $pid left by an earlier run" >&2
		stop_pid "$pid"
	fi
	rm -f "$1"
}
stop_stale "$receiver_pid_file"
stop_stale "$svc_pid_file"
redis_stop "$redis_dir"
pg_stop "$pg_dir"

pg_port=$(free_port)
pg_init "$pg_dir"
pg_up=1
pg_start "$pg_dir" "$pg_port"
pg_createdb "$pg_dir" "$pg_port" gopulse_messages

redis_port=$(free_port)
redis_up=1
redis_start "$redis_dir" "$redis_port"

recv_port=$(free_port)
# setsid: its own session, so the terminal's Ctrl-C does not stop it while the
# service is still delivering; we stop it ourselves after the service.
setsid build/webhook-receiver --bind 127.0.0.1 --port "$recv_port" --path /webhook \
	>"$run/receiver.log" 2>&1 </dev/null &
receiver_pid=$!
write_pid "$receiver_pid" "$receiver_pid_file"
for ((i = 0; ; i++)); do
	if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$recv_port/health" 2>/dev/null; then
		break
	fi
	if ! kill -0 "$receiver_pid" 2>/dev/null || [ "$i" -ge 100 ]; then
		echo "run-dev: webhook receiver did not start; last lines of $run/receiver.log:" >&2
		tail -n 20 "$run/receiver.log" >&2
		exit 1
	fi
	sleep 0.1
done

export DATABASE_DSN="postgres://postgres@127.0.0.1:$pg_port/gopulse_messages?sslmode=disable"
export REDIS_ADDR="127.0.0.1:$redis_port"
export WEBHOOK_HOST="http://127.0.0.1:$recv_port"
export WEBHOOK_PATH=${WEBHOOK_PATH:-/webhook}
export PRODUCER_INTERVAL=${PRODUCER_INTERVAL:-5s}
export SCHEDULER_INTERVAL=${SCHEDULER_INTERVAL:-10s}
export PORT=${PORT:-8080}

cat <<EOF

  GoPulse Messages (dev)
  API        http://localhost:$PORT   (try: curl -s localhost:$PORT/messages)
  Swagger    http://localhost:$PORT/swagger/
  receiver   $WEBHOOK_HOST$WEBHOOK_PATH   (what arrived: curl -s $WEBHOOK_HOST/_requests)
  psql       psql -h 127.0.0.1 -p $pg_port -U postgres gopulse_messages
  redis-cli  redis-cli -p $redis_port
  logs       $run/receiver.log  $pg_dir/pg.log  $redis_dir/redis.log
  producer every $PRODUCER_INTERVAL, scheduler every $SCHEDULER_INTERVAL; Ctrl-C stops everything

EOF

# Not exec: the EXIT trap must still stop the servers after the service ends.  In the
# background only so that `wait` can be interrupted by our traps; setsid so that the
# service gets exactly one SIGINT per Ctrl-C (ours, forwarded), not also the terminal's.
setsid "$svc_bin" </dev/null &
svc_pid=$!
write_pid "$svc_pid" "$svc_pid_file"
while :; do
	set +e
	wait "$svc_pid"
	svc_rc=$?
	set -e
	# wait returns early (status > 128) when a trapped signal arrives; go on waiting
	# until the service itself has exited.
	kill -0 "$svc_pid" 2>/dev/null || break
done
echo "run-dev: service exited with status $svc_rc" >&2
svc_pid=""
rm -f "$svc_pid_file"
exit "$svc_rc"
