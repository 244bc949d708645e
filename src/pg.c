/* pg.c - one nonblocking PostgreSQL connection driven by the event loop. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "pg.h"
#include "pghosts.h"
#include "reconnect.h"
#include "timing.h"
#include "util.h"

struct pg_op {
	STAILQ_ENTRY(pg_op) next;
	char *sql;
	int nparams;
	char **params;
	bool simple; /* PQsendQuery: multi-statement script */
	pg_result_cb cb;
	void *arg;
};

STAILQ_HEAD(pg_op_list, pg_op);

struct pg_conn {
	enum pg_state state;
	struct event_base *base;
	char *dsn;
	struct resolver *resolver;
	struct pghosts *hosts; /* NULL when libpq looks up no name */
	int64_t query_timeout_ms;
	PGconn *conn;
	struct event *ev_io;	/* one-shot, re-created per connect poll */
	struct event *ev_read;	/* persistent once connected */
	struct event *ev_write; /* one-shot while output is pending */
	struct event *ev_retry;
	struct event *ev_deadline; /* connect or current query */
	struct event *ev_kick;	   /* sends queued work from the loop */
	struct reconnect reconnect;
	struct pg_op_list queue;
	struct pg_op *current;
	PGresult *result; /* kept for the current op until its NULL */
	pg_setup_cb setup;
	void *setup_arg;
};

static void pg_fail(struct pg_conn *pg, const char *reason);
static void pg_send_next(struct pg_conn *pg);
static void pg_on_kick(evutil_socket_t fd, short what, void *arg);

/* clang-format off */
static const char *const pg_state_names[] = {
	"disconnected", "connecting", "setup", "ready", "closed",
};
/* clang-format on */

const char *
pg_state_name(enum pg_state state)
{
	assert((size_t)state < ARRAY_LEN(pg_state_names));
	return pg_state_names[state];
}

enum pg_state
pg_get_state(const struct pg_conn *pg)
{
	return pg->state;
}

bool
pg_is_ready(const struct pg_conn *pg)
{
	return pg->state == PG_READY;
}

size_t
pg_pending(const struct pg_conn *pg)
{
	size_t n = pg->current != NULL;
	const struct pg_op *op;

	STAILQ_FOREACH(op, &pg->queue, next)
		n++;
	return n;
}

static void
pg_op_free(struct pg_op *op)
{
	for (int i = 0; i < op->nparams; i++)
		free(op->params[i]);
	free(op->params);
	free(op->sql);
	free(op);
}

/* libpq error texts end with a newline and may span lines. */
static void
pg_trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (char *p = s; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

static void
pg_op_finish(struct pg_op *op, const PGresult *res, const char *err)
{
	op->cb(op->arg, res, err);
	pg_op_free(op);
}

static void
pg_deadline_arm(struct pg_conn *pg, int64_t ms)
{
	struct timeval tv = util_tv(ms);

	event_add(pg->ev_deadline, &tv);
}

static void
pg_events_free(struct pg_conn *pg)
{
	if (pg->ev_io != NULL) {
		event_free(pg->ev_io);
		pg->ev_io = NULL;
	}
	if (pg->ev_read != NULL) {
		event_free(pg->ev_read);
		pg->ev_read = NULL;
	}
	if (pg->ev_write != NULL) {
		event_free(pg->ev_write);
		pg->ev_write = NULL;
	}
	event_del(pg->ev_deadline);
}

/* Fails the op in flight and everything queued, exactly once each. The
 * queue is detached first so a callback that queries again cannot loop. */
static void
pg_fail_ops(struct pg_conn *pg, const char *reason)
{
	struct pg_op_list ops = STAILQ_HEAD_INITIALIZER(ops);
	struct pg_op *op;

	if (pg->result != NULL) {
		PQclear(pg->result);
		pg->result = NULL;
	}
	if (pg->current != NULL) {
		STAILQ_INSERT_HEAD(&pg->queue, pg->current, next);
		pg->current = NULL;
	}
	STAILQ_CONCAT(&ops, &pg->queue);
	while ((op = STAILQ_FIRST(&ops)) != NULL) {
		STAILQ_REMOVE_HEAD(&ops, next);
		pg_op_finish(op, NULL, reason);
	}
}

static void
pg_disconnect(struct pg_conn *pg)
{
	if (pg->hosts != NULL)
		pghosts_cancel(pg->hosts);
	pg_events_free(pg);
	if (pg->conn != NULL) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
}

static void
pg_schedule_retry(struct pg_conn *pg)
{
	int64_t delay = reconnect_next_delay_ms(&pg->reconnect);
	struct timeval tv = util_tv(delay);

	pg->state = PG_DISCONNECTED;
	event_add(pg->ev_retry, &tv);
	log_debug("pg", "reconnect scheduled", "{s:I}", "delay_ms",
	    (json_int_t)delay);
}

/* The one funnel for every connection failure: log why, fail the ops,
 * drop the connection, come back later. */
static void
pg_fail(struct pg_conn *pg, const char *reason)
{
	char *why = xstrdup(reason);
	char *err;
	enum pg_state was = pg->state;

	pg_trim(why);
	if (reconnect_failed(&pg->reconnect, was >= PG_SETUP) == LOG_WARN)
		log_warn("pg", "database connection failed", "{s:s, s:s, s:I}",
		    "state", pg_state_name(was), "reason", why, "attempt",
		    (json_int_t)reconnect_attempts(&pg->reconnect));
	else
		log_debug("pg", "database connection failed", "{s:s, s:s}",
		    "state", pg_state_name(was), "reason", why);
	pg_disconnect(pg);
	pg->state = PG_DISCONNECTED;
	err = xasprintf("database connection lost: %s", why);
	pg_fail_ops(pg, err);
	free(err);
	free(why);
	if (pg->state == PG_DISCONNECTED)
		pg_schedule_retry(pg);
}

/* ---- query flow ---- */

static void
pg_flush(struct pg_conn *pg)
{
	int r = PQflush(pg->conn);

	if (r < 0)
		pg_fail(pg, PQerrorMessage(pg->conn));
	else if (r > 0)
		event_add(pg->ev_write, NULL);
}

static void
pg_send_next(struct pg_conn *pg)
{
	struct pg_op *op;
	int ok;

	if (pg->current != NULL || (op = STAILQ_FIRST(&pg->queue)) == NULL)
		return;
	STAILQ_REMOVE_HEAD(&pg->queue, next);
	pg->current = op;
	if (op->simple)
		ok = PQsendQuery(pg->conn, op->sql);
	else
		ok = PQsendQueryParams(pg->conn, op->sql, op->nparams, NULL,
		    (const char *const *)op->params, NULL, NULL, 0);
	if (!ok) {
		pg_fail(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg_deadline_arm(pg,
	    pg->query_timeout_ms + TIMING_PG_DEADLINE_MARGIN_MS);
	pg_flush(pg);
}

/* Keeps the first error of a script, else its last result. */
static void
pg_keep_result(struct pg_conn *pg, PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	bool bad = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
	    st == PGRES_NONFATAL_ERROR;

	if (pg->result != NULL && !bad &&
	    PQresultStatus(pg->result) == PGRES_FATAL_ERROR) {
		PQclear(res);
		return;
	}
	if (pg->result != NULL)
		PQclear(pg->result);
	pg->result = res;
}

static void
pg_complete_current(struct pg_conn *pg)
{
	struct pg_op *op = pg->current;
	PGresult *res = pg->result;
	char *err = NULL;

	pg->current = NULL;
	pg->result = NULL;
	event_del(pg->ev_deadline);
	if (res == NULL) {
		err = xstrdup("no result");
	} else {
		ExecStatusType st = PQresultStatus(res);

		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			err = xstrdup(PQresultErrorMessage(res));
			pg_trim(err);
		}
	}
	pg_op_finish(op, res, err);
	free(err);
	PQclear(res);
}

static void
pg_drain_results(struct pg_conn *pg)
{
	while (pg->conn != NULL && !PQisBusy(pg->conn)) {
		PGresult *res = PQgetResult(pg->conn);

		if (pg->current == NULL) {
			/* Nothing asked: whatever came is no answer to us. */
			if (res == NULL)
				break;
			PQclear(res);
			continue;
		}
		if (res != NULL) {
			pg_keep_result(pg, res);
			continue;
		}
		pg_complete_current(pg);
		/* A callback may have queried (sending at once) or the
		 * connection may have gone: re-check before going on. */
		if (pg->state != PG_READY && pg->state != PG_SETUP)
			return;
		pg_send_next(pg);
		if (pg->current == NULL)
			break;
	}
	if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_BAD)
		pg_fail(pg, PQerrorMessage(pg->conn));
}

static void
pg_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *pg = arg;

	UNUSED(fd);
	UNUSED(what);
	if (!PQconsumeInput(pg->conn)) {
		pg_fail(pg, PQerrorMessage(pg->conn));
		return;
	}
	/* libpq asks for this to avoid a deadlock: reading may unblock a
	 * pending write. */
	if (PQisnonblocking(pg->conn) &&
	    event_pending(pg->ev_write, EV_WRITE, NULL)) {
		pg_flush(pg);
		if (pg->conn == NULL)
			return;
	}
	pg_drain_results(pg);
}

static void
pg_on_writable(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	pg_flush(arg);
}

static void
pg_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *pg = arg;

	UNUSED(fd);
	UNUSED(what);
	if (pg->state == PG_CONNECTING)
		pg_fail(pg, "connect timed out");
	else
		pg_fail(pg, "query timed out (server not answering)");
}

/* ---- connecting ---- */

static void
pg_on_notice(void *arg, const PGresult *res)
{
	const char *sev = PQresultErrorField(res,
	    PG_DIAG_SEVERITY_NONLOCALIZED);
	char *msg = xstrdup(PQresultErrorMessage(res));
	enum log_level lvl = LOG_DEBUG;

	UNUSED(arg);
	pg_trim(msg);
	if (sev != NULL && strcmp(sev, "WARNING") == 0)
		lvl = LOG_WARN;
	log_write(lvl, "pg", "server notice", "{s:s?, s:s}", "severity", sev,
	    "notice", msg);
	free(msg);
}

static void
pg_connected(struct pg_conn *pg)
{
	int fd = PQsocket(pg->conn);

	pg_events_free(pg);
	if (PQsetnonblocking(pg->conn, 1) != 0) {
		pg_fail(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg->ev_read = event_new(pg->base, fd, EV_READ | EV_PERSIST,
	    pg_on_readable, pg);
	pg->ev_write = event_new(pg->base, fd, EV_WRITE, pg_on_writable, pg);
	event_add(pg->ev_read, NULL);
	pg->state = PG_SETUP;
	log_info("pg", "database connected", "{s:i, s:s?}", "server_version",
	    PQserverVersion(pg->conn), "host", PQhost(pg->conn));
	if (pg->setup != NULL)
		pg->setup(pg, pg->setup_arg);
	else
		pg_setup_done(pg);
}

static void pg_on_connect_io(evutil_socket_t fd, short what, void *arg);

/* The socket may change between polls (several hosts, SSL fallback), even
 * to a new socket with the same number: re-read it and re-create a one-shot
 * event every time. */
static void
pg_connect_wait(struct pg_conn *pg, PostgresPollingStatusType want)
{
	int fd = PQsocket(pg->conn);

	if (pg->ev_io != NULL) {
		event_free(pg->ev_io);
		pg->ev_io = NULL;
	}
	if (fd < 0) {
		pg_fail(pg, "no socket");
		return;
	}
	pg->ev_io = event_new(pg->base, fd,
	    want == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
	    pg_on_connect_io, pg);
	event_add(pg->ev_io, NULL);
}

static void
pg_on_connect_io(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *pg = arg;
	PostgresPollingStatusType st;

	UNUSED(fd);
	UNUSED(what);
	st = PQconnectPoll(pg->conn);
	switch (st) {
	case PGRES_POLLING_OK:
		pg_connected(pg);
		break;
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
		pg_connect_wait(pg, st);
		break;
	default:
		pg_fail(pg, PQerrorMessage(pg->conn));
		break;
	}
}

static void
pg_connect_start(struct pg_conn *pg)
{
	const char *host = pg->hosts ? pghosts_host(pg->hosts) : NULL;
	const char *hostaddr = pg->hosts ? pghosts_hostaddr(pg->hosts) : NULL;
	const char *port = pg->hosts ? pghosts_port(pg->hosts) : NULL;
	/* After dbname, whose DSN they override; a NULL value is skipped. */
	/* clang-format off */
	const char *keys[] = {
		"dbname", "application_name", "keepalives", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "tcp_user_timeout",
		"host", "hostaddr", "port", NULL,
	};
	const char *vals[] = {
		pg->dsn, "gopulse-messages", "1", "30", "10", "3", "30000",
		host, hostaddr, port, NULL,
	};
	/* clang-format on */

	if (pg->hosts != NULL)
		log_debug("pg", "database connecting", "{s:s, s:s, s:s?}",
		    "host", host, "hostaddr", hostaddr, "port", port);
	pg->conn = PQconnectStartParams(keys, vals, 1);
	if (pg->conn == NULL) {
		log_error("pg", "out of memory", NULL);
		abort();
	}
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		pg_fail(pg, PQerrorMessage(pg->conn));
		return;
	}
	PQsetNoticeReceiver(pg->conn, pg_on_notice, pg);
	/* libpq's documented start: act as if the poll asked to write. */
	pg_connect_wait(pg, PGRES_POLLING_WRITING);
}

static void
pg_on_resolved(void *arg, const char *err)
{
	struct pg_conn *pg = arg;

	if (err != NULL)
		pg_fail(pg, err);
	else
		pg_connect_start(pg);
}

static void
pg_connect(struct pg_conn *pg)
{
	pg->state = PG_CONNECTING;
	pg_deadline_arm(pg, TIMING_PG_CONNECT_MS);
	/* Resolved again on every attempt: a restarted database container
	 * may come back under another address. */
	if (pg->hosts != NULL) {
		if (pghosts_resolve(pg->hosts, pg->resolver,
			TIMING_PG_RESOLVE_MS, pg_on_resolved, pg) != 0)
			pg_fail(pg, "resolver unavailable");
		return;
	}
	pg_connect_start(pg);
}

static void
pg_on_retry(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	pg_connect(arg);
}

/* ---- public ---- */

struct pg_conn *
pg_new(struct event_base *base, struct resolver *res, const char *dsn,
    int64_t query_timeout_ms)
{
	struct pg_conn *pg = xcalloc(1, sizeof(*pg));

	pg->base = base;
	pg->resolver = res;
	pg->dsn = xstrdup(dsn);
	pg->hosts = pghosts_new(dsn);
	pg->query_timeout_ms = query_timeout_ms;
	STAILQ_INIT(&pg->queue);
	pg->ev_retry = evtimer_new(base, pg_on_retry, pg);
	pg->ev_deadline = evtimer_new(base, pg_on_deadline, pg);
	pg->ev_kick = event_new(base, -1, 0, pg_on_kick, pg);
	return pg;
}

void
pg_set_setup(struct pg_conn *pg, pg_setup_cb hook, void *arg)
{
	pg->setup = hook;
	pg->setup_arg = arg;
}

void
pg_start(struct pg_conn *pg)
{
	if (pg->state == PG_DISCONNECTED && pg->conn == NULL)
		pg_connect(pg);
}

/* Sending from the loop, never inside pg_query, means a callback never
 * runs before pg_query has returned to its caller. */
static void
pg_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *pg = arg;

	UNUSED(fd);
	UNUSED(what);
	if (pg->state == PG_READY || pg->state == PG_SETUP)
		pg_send_next(pg);
}

static int
pg_enqueue(struct pg_conn *pg, struct pg_op *op)
{
	STAILQ_INSERT_TAIL(&pg->queue, op, next);
	if (pg->current == NULL)
		event_active(pg->ev_kick, EV_TIMEOUT, 0);
	return 0;
}

int
pg_query(struct pg_conn *pg, const char *sql, int nparams,
    const char *const *params, pg_result_cb cb, void *arg)
{
	struct pg_op *op;

	if (pg->state != PG_READY)
		return -1;
	op = xcalloc(1, sizeof(*op));
	op->sql = xstrdup(sql);
	op->nparams = nparams;
	op->params = xcalloc((size_t)nparams, sizeof(char *));
	for (int i = 0; i < nparams; i++)
		op->params[i] = params[i] ? xstrdup(params[i]) : NULL;
	op->cb = cb;
	op->arg = arg;
	return pg_enqueue(pg, op);
}

int
pg_setup_query(struct pg_conn *pg, const char *script, pg_result_cb cb,
    void *arg)
{
	struct pg_op *op;

	if (pg->state != PG_SETUP)
		return -1;
	op = xcalloc(1, sizeof(*op));
	op->sql = xstrdup(script);
	op->simple = true;
	op->cb = cb;
	op->arg = arg;
	return pg_enqueue(pg, op);
}

void
pg_setup_done(struct pg_conn *pg)
{
	if (pg->state != PG_SETUP)
		return;
	pg->state = PG_READY;
	reconnect_succeeded(&pg->reconnect);
	log_info("pg", "database ready", NULL);
	event_active(pg->ev_kick, EV_TIMEOUT, 0);
}

void
pg_setup_failed(struct pg_conn *pg, const char *reason)
{
	if (pg->state == PG_SETUP)
		pg_fail(pg, reason);
}

void
pg_close(struct pg_conn *pg)
{
	if (pg->state == PG_CLOSED)
		return;
	pg->state = PG_CLOSED;
	event_del(pg->ev_retry);
	pg_disconnect(pg);
	pg_fail_ops(pg, "shutting down");
}

void
pg_free(struct pg_conn *pg)
{
	if (pg == NULL)
		return;
	pg_close(pg);
	event_free(pg->ev_retry);
	event_free(pg->ev_deadline);
	event_free(pg->ev_kick);
	pghosts_free(pg->hosts);
	free(pg->dsn);
	free(pg);
}
