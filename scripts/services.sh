#!/usr/bin/env bash
# Throwaway PostgreSQL and Redis servers on private ports in private directories,
# for `make run` (scripts/run-dev.sh) and the integration tests (test/integration).
#
# As a library:  . scripts/services.sh; pg_init "$dir"; pg_start "$dir" "$port"
# As a CLI:      scripts/services.sh FUNC ARGS...   e.g. scripts/services.sh free_port
#
# Functions return non-zero on failure (and print the server's log tail) instead of
# exiting, so callers decide; they work with or without `set -e` in the caller.
#
#   free_port                    print a free TCP port on 127.0.0.1
#   pg_bin                       print the PostgreSQL bin dir (highest version)
#   pg_init DIR                  initdb DIR/pgdata (no-op if it exists)
#   pg_start DIR PORT            start it on 127.0.0.1:PORT, socket in DIR (no-op if running there)
#   pg_stop DIR [MODE]           stop it (MODE: smart|fast|immediate; default fast; no-op if stopped)
#   pg_createdb DIR PORT NAME    create database NAME unless it exists
#   redis_start DIR PORT         start redis-server on 127.0.0.1:PORT, files in DIR
#                                (REDIS_APPENDONLY=yes: with an fsynced append-only file)
#   redis_stop DIR               stop it (no-op if stopped)
#   pgbouncer_start DIR PORT PG_PORT [NAME=VALUE...]
#                                start pgbouncer on 127.0.0.1:PORT in front of the
#                                PostgreSQL on 127.0.0.1:PG_PORT (every database, trust
#                                auth, pool_mode=transaction), files in DIR; each
#                                NAME=VALUE is a [pgbouncer] setting (default_pool_size=5)
#   pgbouncer_stop DIR           stop it (no-op if stopped)

# How long a start or stop may take before we call it failed, in seconds.
SERVICES_TIMEOUT=${SERVICES_TIMEOUT:-10}

_svc_err() {
	echo "services: $*" >&2
}

_svc_python() {
	# The system interpreter: no pyenv shim delay, always there on Debian.
	if [ -x /usr/bin/python3 ]; then
		/usr/bin/python3 "$@"
	else
		python3 "$@"
	fi
}

_svc_abs() {
	(cd "$1" && pwd)
}

_svc_log_tail() {
	local file=$1
	if [ -f "$file" ]; then
		echo "---- last lines of $file ----" >&2
		tail -n 30 "$file" >&2
		echo "----" >&2
	else
		echo "(no log at $file)" >&2
	fi
}

# True when PID runs: a zombie (exited, parent has not reaped it yet) does not count.
_svc_alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[ "$state" != Z ]
}

free_port() {
	_svc_python -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

pg_bin() {
	local dir best="" best_ver=0 ver
	for dir in /usr/lib/postgresql/*/bin; do
		[ -x "$dir/initdb" ] || continue
		ver=${dir#/usr/lib/postgresql/}
		ver=${ver%%/*}
		ver=${ver%%.*}
		if [ "$ver" -gt "$best_ver" ] 2>/dev/null; then
			best=$dir
			best_ver=$ver
		fi
	done
	if [ -z "$best" ]; then
		# Not Debian's layout: fall back to whatever is on PATH.
		local initdb
		initdb=$(command -v initdb 2>/dev/null) || {
			_svc_err "no PostgreSQL server found (install the 'postgresql' package)"
			return 1
		}
		best=$(dirname "$initdb")
	fi
	echo "$best"
}

# PostgreSQL refuses to run as root, so as root every server-side command runs as the
# `postgres` system user.  cd / first: initdb and pg_ctl fail when they cannot read
# their working directory (root's home, a 0700 temp dir).
_pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

# Where the Unix socket goes: DIR, unless the path is too long for sun_path (107 bytes),
# then no socket at all (everything here connects over TCP anyway).
_pg_socket_opt() {
	local dir=$1 port=$2
	local sock="$dir/.s.PGSQL.$port"
	if [ "${#sock}" -lt 100 ]; then
		printf "%s" "-k '$dir'"
	else
		printf "%s" "-c unix_socket_directories=''"
	fi
}

pg_init() {
	local dir=${1:?usage: pg_init DIR} bin loc
	mkdir -p "$dir" || return 1
	dir=$(_svc_abs "$dir") || return 1
	if [ -f "$dir/pgdata/PG_VERSION" ]; then
		return 0
	fi
	bin=$(pg_bin) || return 1
	if [ "$(id -u)" -eq 0 ]; then
		if ! id postgres >/dev/null 2>&1; then
			_svc_err "running as root but there is no 'postgres' user to run PostgreSQL as"
			return 1
		fi
		chown postgres: "$dir" || return 1
		if ! runuser -u postgres -- test -w "$dir"; then
			_svc_err "user postgres cannot reach $dir (a parent directory is not searchable);" \
				"use a directory under /tmp or make its parents world-searchable (chmod o+x)"
			return 1
		fi
	fi
	# C.UTF-8 sorts like C but keeps UTF-8 character classes; glibc >= 2.35 always has it.
	loc=C
	if grep -qix 'c\.utf-\?8' <<<"$(locale -a 2>/dev/null)"; then
		loc=C.UTF-8
	fi
	# --no-sync: a throwaway cluster does not need to survive a power cut.
	if ! _pg_as_owner "$bin/initdb" -D "$dir/pgdata" -U postgres --auth=trust -E UTF8 \
		--locale="$loc" --no-sync --no-instructions >"$dir/initdb.log" 2>&1; then
		_svc_err "initdb failed in $dir/pgdata"
		_svc_log_tail "$dir/initdb.log"
		return 1
	fi
}

# Prints the pid of the running postmaster of DIR, or fails.
_pg_pid() {
	local dir=$1 pid
	[ -f "$dir/pgdata/postmaster.pid" ] || return 1
	pid=$(head -n 1 "$dir/pgdata/postmaster.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && _svc_alive "$pid" || return 1
	echo "$pid"
}

pg_start() {
	local dir=${1:?usage: pg_start DIR PORT} port=${2:?usage: pg_start DIR PORT} bin running
	dir=$(_svc_abs "$dir") || return 1
	bin=$(pg_bin) || return 1
	if [ ! -f "$dir/pgdata/PG_VERSION" ]; then
		_svc_err "no cluster in $dir/pgdata (run pg_init first)"
		return 1
	fi
	if _pg_pid "$dir" >/dev/null; then
		# Line 4 of postmaster.pid is the port: running on ours is fine, elsewhere is not.
		running=$(sed -n 4p "$dir/pgdata/postmaster.pid")
		if [ "$running" = "$port" ]; then
			return 0
		fi
		_svc_err "PostgreSQL in $dir already runs on port $running (wanted $port); pg_stop it first"
		return 1
	fi
	# fsync/full_page_writes/synchronous_commit off: throwaway data, much faster tests.
	if ! _pg_as_owner "$bin/pg_ctl" start -w -t "$SERVICES_TIMEOUT" -D "$dir/pgdata" \
		-l "$dir/pg.log" -o "-p $port $(_pg_socket_opt "$dir" "$port") \
		-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
		-c synchronous_commit=off" >/dev/null 2>"$dir/pg_ctl.err"; then
		_svc_err "PostgreSQL did not start in $dir on port $port"
		cat "$dir/pg_ctl.err" >&2
		_svc_log_tail "$dir/pg.log"
		return 1
	fi
}

pg_stop() {
	local dir=${1:?usage: pg_stop DIR [MODE]} mode=${2:-fast} bin pid
	[ -d "$dir" ] || return 0
	dir=$(_svc_abs "$dir") || return 1
	pid=$(_pg_pid "$dir") || return 0
	bin=$(pg_bin) || return 1
	# A frozen (SIGSTOPped) server would never act on the stop request.
	kill -CONT "$pid" 2>/dev/null || true
	pkill -CONT -P "$pid" 2>/dev/null || true
	if _pg_as_owner "$bin/pg_ctl" stop -w -t "$SERVICES_TIMEOUT" -D "$dir/pgdata" -m "$mode" \
		>/dev/null 2>"$dir/pg_ctl.err"; then
		return 0
	fi
	# A fast stop waits for busy backends; immediate does not (crash recovery next start).
	if [ "$mode" != immediate ] && _pg_as_owner "$bin/pg_ctl" stop -w -t "$SERVICES_TIMEOUT" \
		-D "$dir/pgdata" -m immediate >/dev/null 2>>"$dir/pg_ctl.err"; then
		return 0
	fi
	_svc_err "PostgreSQL in $dir did not stop"
	cat "$dir/pg_ctl.err" >&2
	_svc_log_tail "$dir/pg.log"
	return 1
}

pg_createdb() {
	local dir=${1:?usage: pg_createdb DIR PORT NAME} port=${2:?usage: pg_createdb DIR PORT NAME}
	local name=${3:?usage: pg_createdb DIR PORT NAME} exists
	local psql=("$(pg_bin)/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
	# :'name' and :"name" make psql quote the name as a literal and as an identifier.
	exists=$(PGCONNECT_TIMEOUT=5 "${psql[@]}" -v name="$name" \
		<<<"SELECT 1 FROM pg_database WHERE datname = :'name'") || return 1
	if [ "$exists" = 1 ]; then
		return 0
	fi
	PGCONNECT_TIMEOUT=5 "${psql[@]}" -v name="$name" <<<'CREATE DATABASE :"name"'
}

# Prints the pid of the running redis-server of DIR, or fails.
_redis_pid() {
	local dir=$1 pid
	[ -f "$dir/redis.pid" ] || return 1
	pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && _svc_alive "$pid" || return 1
	echo "$pid"
}

# True when the server answering on PORT is the one whose pid is in DIR/redis.pid:
# a PONG alone could come from another server that already holds the port.
_redis_is_ours() {
	local dir=$1 port=$2 pid info
	pid=$(_redis_pid "$dir") || return 1
	info=$(redis-cli -p "$port" info server 2>/dev/null) || return 1
	[[ $info == *"process_id:$pid"$'\r'* ]]
}

redis_start() {
	local dir=${1:?usage: redis_start DIR PORT} port=${2:?usage: redis_start DIR PORT} i
	mkdir -p "$dir" || return 1
	dir=$(_svc_abs "$dir") || return 1
	if _redis_pid "$dir" >/dev/null; then
		if _redis_is_ours "$dir" "$port"; then
			return 0
		fi
		_svc_err "redis-server in $dir already runs, but not on port $port; redis_stop it first"
		return 1
	fi
	rm -f "$dir/redis.pid"
	# Only log lines written after this offset belong to this start.
	local offset=0
	[ -f "$dir/redis.log" ] && offset=$(stat -c %s "$dir/redis.log")
	# No persistence: a cache for tests and development only. REDIS_APPENDONLY=yes
	# (the fault soak) keeps every write in an fsynced AOF, so that a SIGKILLed
	# server comes back with its data, as an operator's persistent Redis would.
	if ! redis-server --port "$port" --bind 127.0.0.1 --save '' \
		--appendonly "${REDIS_APPENDONLY:-no}" --appendfsync always \
		--daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
		--dir "$dir" >/dev/null 2>"$dir/redis-start.err"; then
		_svc_err "redis-server did not start in $dir on port $port"
		cat "$dir/redis-start.err" >&2
		_svc_log_tail "$dir/redis.log"
		return 1
	fi
	for ((i = 0; i < SERVICES_TIMEOUT * 10; i++)); do
		if _redis_is_ours "$dir" "$port"; then
			return 0
		fi
		# The daemon logs "aborting" when it cannot listen: fail now, not after the timeout.
		if tail -c +"$((offset + 1))" "$dir/redis.log" 2>/dev/null | grep -q -e aborting -e FATAL; then
			break
		fi
		sleep 0.1
	done
	_svc_err "redis-server in $dir did not answer on port $port"
	_svc_log_tail "$dir/redis.log"
	redis_stop "$dir" || true
	return 1
}

redis_stop() {
	local dir=${1:?usage: redis_stop DIR} pid i
	[ -d "$dir" ] || return 0
	pid=$(_redis_pid "$dir") || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	# SIGCONT: a frozen (SIGSTOPped) server would never act on the SIGTERM.
	kill -CONT "$pid" 2>/dev/null || true
	for ((i = 0; i < SERVICES_TIMEOUT * 10; i++)); do
		_svc_alive "$pid" || { rm -f "$dir/redis.pid"; return 0; }
		sleep 0.1
	done
	_svc_err "redis-server $pid did not stop on SIGTERM; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/redis.pid"
}

pgbouncer_bin() {
	local bin
	bin=$(command -v pgbouncer 2>/dev/null) || bin=/usr/sbin/pgbouncer
	if [ ! -x "$bin" ]; then
		_svc_err "no pgbouncer found (install the 'pgbouncer' package)"
		return 1
	fi
	echo "$bin"
}

# Prints the pid of the running pgbouncer of DIR, or fails.
_pgbouncer_pid() {
	local dir=$1 pid
	[ -f "$dir/pgbouncer.pid" ] || return 1
	pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && _svc_alive "$pid" || return 1
	echo "$pid"
}

# Our own pgbouncer, never the packaged service (/etc/pgbouncer, port 6432, which
# Debian's package may have started): its own ini, port, pid file and log in DIR,
# and no Unix socket. PgBouncer refuses to run as root, so as root it drops to the
# `postgres` user (its `user` setting), like the PostgreSQL of pg_start.
pgbouncer_start() {
	local usage="usage: pgbouncer_start DIR PORT PG_PORT [NAME=VALUE...]"
	local dir=${1:?$usage} port=${2:?$usage} pg_port=${3:?$usage} bin kv i offset=0 psql
	shift 3
	mkdir -p "$dir" || return 1
	dir=$(_svc_abs "$dir") || return 1
	bin=$(pgbouncer_bin) || return 1
	if _pgbouncer_pid "$dir" >/dev/null; then
		if grep -qx "listen_port = $port" "$dir/pgbouncer.ini" 2>/dev/null; then
			return 0
		fi
		_svc_err "pgbouncer in $dir already runs on another port; pgbouncer_stop it first"
		return 1
	fi
	rm -f "$dir/pgbouncer.pid"
	printf '"postgres" ""\n' >"$dir/userlist.txt" || return 1
	{
		echo "[databases]"
		echo "* = host=127.0.0.1 port=$pg_port"
		echo
		echo "[pgbouncer]"
		echo "listen_addr = 127.0.0.1"
		echo "listen_port = $port"
		echo "unix_socket_dir ="
		echo "auth_type = trust"
		echo "auth_file = $dir/userlist.txt"
		echo "admin_users = postgres"
		echo "logfile = $dir/pgbouncer.log"
		echo "pidfile = $dir/pgbouncer.pid"
		echo "pool_mode = transaction"
		echo "default_pool_size = 5"
		for kv in "$@"; do
			# A later line of the same name wins.
			echo "${kv%%=*} = ${kv#*=}"
		done
	} >"$dir/pgbouncer.ini" || return 1
	if [ "$(id -u)" -eq 0 ]; then
		if ! id postgres >/dev/null 2>&1; then
			_svc_err "running as root but there is no 'postgres' user to run pgbouncer as"
			return 1
		fi
		echo "user = postgres" >>"$dir/pgbouncer.ini"
		chown -R postgres: "$dir" || return 1
	fi
	[ -f "$dir/pgbouncer.log" ] && offset=$(stat -c %s "$dir/pgbouncer.log")
	if ! "$bin" -d -q "$dir/pgbouncer.ini" >"$dir/pgbouncer-start.err" 2>&1; then
		_svc_err "pgbouncer did not start in $dir on port $port"
		cat "$dir/pgbouncer-start.err" >&2
		_svc_log_tail "$dir/pgbouncer.log"
		return 1
	fi
	# Ready when its admin console answers (pg_bin's psql: /usr/bin/psql is a Perl
	# wrapper that costs 60 ms a call).
	psql=$(pg_bin)/psql
	for ((i = 0; i < SERVICES_TIMEOUT * 10; i++)); do
		if PGCONNECT_TIMEOUT=2 "$psql" -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres \
			-d pgbouncer -c "SHOW VERSION" >/dev/null 2>&1; then
			return 0
		fi
		if tail -c +"$((offset + 1))" "$dir/pgbouncer.log" 2>/dev/null | grep -q FATAL; then
			break
		fi
		sleep 0.1
	done
	_svc_err "pgbouncer in $dir did not answer on port $port"
	_svc_log_tail "$dir/pgbouncer.log"
	pgbouncer_stop "$dir" || true
	return 1
}

pgbouncer_stop() {
	local dir=${1:?usage: pgbouncer_stop DIR} pid i
	[ -d "$dir" ] || return 0
	pid=$(_pgbouncer_pid "$dir") || return 0
	# SIGTERM: immediate shutdown (1.18); SIGCONT in case a test froze it.
	kill -TERM "$pid" 2>/dev/null || return 0
	kill -CONT "$pid" 2>/dev/null || true
	for ((i = 0; i < SERVICES_TIMEOUT * 10; i++)); do
		_svc_alive "$pid" || { rm -f "$dir/pgbouncer.pid"; return 0; }
		sleep 0.1
	done
	_svc_err "pgbouncer $pid did not stop on SIGTERM; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$dir/pgbouncer.pid"
}

# CLI: run the named function when executed, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	if [ "$#" -eq 0 ]; then
		sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2
		exit 2
	fi
	case $1 in
	free_port | pg_bin | pg_init | pg_start | pg_stop | pg_createdb | redis_start | redis_stop | \
		pgbouncer_bin | pgbouncer_start | pgbouncer_stop)
		"$@"
		;;
	*)
		_svc_err "unknown function '$1'"
		exit 2
		;;
	esac
fi
