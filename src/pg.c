/* pg.c - one nonblocking PostgreSQL connection driven by the event loop.
 *
 * Setup (migrations) runs one simple-protocol script at a time. Once it
 * is done the connection enters libpq's pipeline mode: every queued op is
 * sent at once, each in its own Sync segment (one implicit transaction),
 * and results are matched to ops in the order they were sent. An op is
 * complete at its PGRES_PIPELINE_SYNC, not at a NULL: libpq's NULLs only
 * tell the statements of one op apart.
 *
 * The server bounds every statement with statement_timeout. On a direct
 * connection it is set once per session, right after connecting. Through
 * a pooler each segment opens with set_config('statement_timeout', ...,
 * true), for its own transaction only: PgBouncer in transaction mode
 * refuses `options` at startup, and a session SET would leak to the other
 * clients of the pooled server connection. Per segment costs the server a
 * second statement for each, which is why direct connections skip it. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "pghosts.h"
#include "reconnect.h"
#include "timing.h"
#include "util.h"

/* Ops sent and not yet answered, at most (pg_set_pipeline_depth); the
 * rest wait in the queue. It bounds what the server buffers for us, and
 * keeps the watchdog's view simple: the oldest op is always the one the
 * server is working on. */
#define PG_PIPELINE_DEPTH_MAX 32
/* Statements in one op's Sync segment at most: the set_config (through
 * a pooler) and the op's. */
#define PG_OP_STATEMENTS 2

enum pg_op_kind {
	PG_OP_PARAMS, /* extended protocol; pipelined once ready */
	PG_OP_SCRIPT, /* simple protocol, several statements: setup only */
};

/* One allocation per op: the struct, the parameter pointers, then the
 * texts they point to (copied, so callers may pass temporaries). */
struct pg_op {
	STAILQ_ENTRY(pg_op) next;
	enum pg_op_kind kind;
	const char *sql;
	int nparams;
	const char **params;
	pg_result_cb cb;
	void *arg;
	PGresult *result; /* kept until the op completes */
	int nulls;	  /* pipeline: statements of the op that ended */
	bool timed;	  /* its segment opens with the set_config */
};

STAILQ_HEAD(pg_op_list, pg_op);

struct pg_conn {
	enum pg_state state;
	struct event_base *base;
	char *dsn;
	struct resolver *resolver;
	struct pghosts *hosts; /* NULL when libpq looks up no name */
	int64_t query_timeout_ms;
	char *timeout_sql; /* the set_config opening segments when pooled */
	PGconn *conn;
	bool pipeline;		/* in libpq's pipeline mode */
	int depth;		/* Sync segments in flight at most */
	bool pooled;		/* a pooler between us (see pg_on_pid) */
	struct event *ev_io;	/* one-shot, re-created per connect poll */
	struct event *ev_read;	/* persistent once connected */
	struct event *ev_write; /* one-shot while output is pending */
	struct event *ev_retry;
	struct event *ev_deadline; /* connect, or the oldest op sent */
	struct event *ev_kick;	   /* sends queued work from the loop */
	struct reconnect reconnect;
	struct metrics_link *mlink; /* NULL: not counted */
	int priority;		    /* of every event; -1: the base's default */
	struct pg_op_list queue;    /* not sent yet */
	struct pg_op_list sent;	    /* sent, answered in this order */
	size_t nqueued, nsent;
	pg_setup_cb setup;
	void *setup_arg;
};

static void pg_fail(struct pg_conn *pg, const char *reason);
static void pg_send_queued(struct pg_conn *pg);
static int pg_enqueue(struct pg_conn *pg, struct pg_op *op);
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
	return pg->nqueued + pg->nsent;
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

static struct pg_op *
pg_op_new(enum pg_op_kind kind, const char *prefix, const char *sql,
    int nparams, const char *const *params, pg_result_cb cb, void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	size_t slen = strlen(sql) + 1;
	size_t size = sizeof(struct pg_op) + (size_t)nparams * sizeof(char *) +
	    plen + slen;
	struct pg_op *op;
	char *text;

	for (int i = 0; i < nparams; i++)
		if (params[i] != NULL)
			size += strlen(params[i]) + 1;
	op = xmalloc(size);
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->nparams = nparams;
	op->params = (const char **)(void *)(op + 1);
	op->cb = cb;
	op->arg = arg;
	text = (char *)(op->params + nparams);
	op->sql = text;
	if (plen > 0)
		memcpy(text, prefix, plen);
	memcpy(text + plen, sql, slen);
	text += plen + slen;
	for (int i = 0; i < nparams; i++) {
		size_t n;

		if (params[i] == NULL) {
			op->params[i] = NULL;
			continue;
		}
		n = strlen(params[i]) + 1;
		memcpy(text, params[i], n);
		op->params[i] = text;
		text += n;
	}
	return op;
}

static void
pg_op_finish(struct pg_op *op, const char *err)
{
	op->cb(op->arg, op->result, err);
	PQclear(op->result);
	free(op);
}

static void
pg_deadline_arm(struct pg_conn *pg, int64_t ms)
{
	struct timeval tv = util_tv(ms);

	event_add(pg->ev_deadline, &tv);
}

/* The server works through what was sent in order: the watchdog always
 * watches the oldest op, from the moment it became the oldest. */
static void
pg_deadline_rearm(struct pg_conn *pg)
{
	if (STAILQ_EMPTY(&pg->sent))
		event_del(pg->ev_deadline);
	else
		pg_deadline_arm(pg,
		    pg->query_timeout_ms + TIMING_PG_DEADLINE_MARGIN_MS);
}

/* ev, at the connection's priority (loop.h); returned for chaining. */
static struct event *
pg_event_prioritize(const struct pg_conn *pg, struct event *ev)
{
	if (ev != NULL && pg->priority >= 0)
		event_priority_set(ev, pg->priority);
	return ev;
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

/* Fails every op sent or queued, exactly once each. The lists are
 * detached first so a callback that queries again cannot loop. */
static void
pg_fail_ops(struct pg_conn *pg, const char *reason)
{
	struct pg_op_list ops = STAILQ_HEAD_INITIALIZER(ops);
	struct pg_op *op;

	STAILQ_CONCAT(&ops, &pg->sent);
	STAILQ_CONCAT(&ops, &pg->queue);
	pg->nsent = pg->nqueued = 0;
	while ((op = STAILQ_FIRST(&ops)) != NULL) {
		STAILQ_REMOVE_HEAD(&ops, next);
		/* A partial answer must not pass for the op's result. */
		PQclear(op->result);
		op->result = NULL;
		pg_op_finish(op, reason);
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
	pg->pipeline = false;
}

static void
pg_schedule_retry(struct pg_conn *pg)
{
	int64_t delay = reconnect_next_delay_ms(&pg->reconnect);
	struct timeval tv = util_tv(delay);

	pg->state = PG_DISCONNECTED;
	if (pg->mlink != NULL)
		pg->mlink->reconnects++;
	event_add(pg->ev_retry, &tv);
	log_debug("pg", "reconnect scheduled", "{s:I}", "delay_ms",
	    (json_int_t)delay);
}

/* A ready connection leaves the count of ready ones. */
static void
pg_count_down(struct pg_conn *pg, enum pg_state was)
{
	if (was == PG_READY && pg->mlink != NULL)
		pg->mlink->ready--;
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
	pg_count_down(pg, was);
	pg->state = PG_DISCONNECTED;
	err = xasprintf("database connection lost: %s", why);
	pg_fail_ops(pg, err);
	free(err);
	free(why);
	if (pg->state == PG_DISCONNECTED)
		pg_schedule_retry(pg);
}

/* ---- sending ---- */

static void
pg_flush(struct pg_conn *pg)
{
	int r = PQflush(pg->conn);

	if (r < 0)
		pg_fail(pg, PQerrorMessage(pg->conn));
	else if (r > 0)
		event_add(pg->ev_write, NULL);
}

/* Only between setup and the first op: libpq refuses while any result
 * of the setup's simple-protocol scripts is still due. */
static bool
pg_enter_pipeline(struct pg_conn *pg)
{
	if (pg->pipeline)
		return true;
	if (!STAILQ_EMPTY(&pg->sent))
		return false;
	if (PQenterPipelineMode(pg->conn) != 1) {
		pg_fail(pg, "cannot enter pipeline mode");
		return false;
	}
	pg->pipeline = true;
	return true;
}

/* One Sync segment: the timeout (through a pooler), the statement, the
 * Sync. */
static int
pg_send_op(struct pg_conn *pg, struct pg_op *op)
{
	if (op->kind == PG_OP_SCRIPT)
		return PQsendQuery(pg->conn, op->sql);
	op->timed = pg->pooled;
	if (op->timed &&
	    !PQsendQueryParams(pg->conn, pg->timeout_sql, 0, NULL, NULL, NULL,
		NULL, 0))
		return 0;
	return PQsendQueryParams(pg->conn, op->sql, op->nparams, NULL,
		   op->params, NULL, NULL, 0) &&
	    PQpipelineSync(pg->conn);
}

/* Sends what the connection may take now: during setup one script at a
 * time, once ready every queued op up to the depth. */
static void
pg_send_queued(struct pg_conn *pg)
{
	struct pg_op *op;
	bool was_idle = STAILQ_EMPTY(&pg->sent);
	int n = 0;

	if (pg->state == PG_READY && !pg_enter_pipeline(pg))
		return;
	while ((op = STAILQ_FIRST(&pg->queue)) != NULL &&
	    pg->nsent < (pg->pooled ? 1 : (size_t)pg->depth)) {
		if (!pg->pipeline && !STAILQ_EMPTY(&pg->sent))
			break;
		/* Setup scripts never reach a pipeline, nor ops a setup. */
		assert((op->kind == PG_OP_SCRIPT) == !pg->pipeline);
		STAILQ_REMOVE_HEAD(&pg->queue, next);
		pg->nqueued--;
		STAILQ_INSERT_TAIL(&pg->sent, op, next);
		pg->nsent++;
		if (!pg_send_op(pg, op)) {
			pg_fail(pg, PQerrorMessage(pg->conn));
			return;
		}
		n++;
	}
	if (n == 0)
		return;
	if (was_idle)
		pg_deadline_rearm(pg);
	pg_flush(pg);
}

/* ---- results ---- */

static bool
pg_status_bad(ExecStatusType st)
{
	return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
	    st != PGRES_PIPELINE_SYNC;
}

/* Keeps the first error, else the last result. */
static void
pg_keep_result(struct pg_op *op, PGresult *res)
{
	if (op->result != NULL && pg_status_bad(PQresultStatus(op->result))) {
		PQclear(res);
		return;
	}
	PQclear(op->result);
	op->result = res;
}

/* Takes one result for the oldest op sent; true once that op is done. */
static bool
pg_take_result(struct pg_conn *pg, struct pg_op *op, PGresult *res)
{
	if (!pg->pipeline) {
		/* A script's results end with a NULL. */
		if (res == NULL)
			return true;
		pg_keep_result(op, res);
		return false;
	}
	if (res == NULL) {
		op->nulls++;
		return false;
	}
	switch (PQresultStatus(res)) {
	case PGRES_PIPELINE_SYNC:
		PQclear(res);
		return true;
	case PGRES_PIPELINE_ABORTED:
		/* An earlier statement of the op failed: its error is kept. */
		pg_keep_result(op, res);
		return false;
	default:
		/* The set_config's own row is no answer to the caller; an
		 * error of it is (the statement never ran). */
		if (op->timed && op->nulls == 0 &&
		    !pg_status_bad(PQresultStatus(res))) {
			PQclear(res);
			return false;
		}
		pg_keep_result(op, res);
		return false;
	}
}

static void
pg_complete(struct pg_conn *pg, struct pg_op *op)
{
	char *err = NULL;

	STAILQ_REMOVE_HEAD(&pg->sent, next);
	pg->nsent--;
	pg_deadline_rearm(pg);
	if (op->result == NULL) {
		err = xstrdup("no result");
	} else if (PQresultStatus(op->result) == PGRES_PIPELINE_ABORTED) {
		err = xstrdup("pipeline aborted");
	} else if (pg_status_bad(PQresultStatus(op->result))) {
		err = xstrdup(PQresultErrorMessage(op->result));
		pg_trim(err);
	}
	pg_op_finish(op, err);
	free(err);
}

static void
pg_drain_results(struct pg_conn *pg)
{
	struct pg_op *op;

	/* Never past our own FIFO: with nothing expected, libpq answers
	 * NULL forever. A server that dies mid-pipeline never sends the
	 * Sync we wait for: the status is checked on every turn. */
	while (pg->conn != NULL && (op = STAILQ_FIRST(&pg->sent)) != NULL &&
	    !PQisBusy(pg->conn)) {
		if (PQstatus(pg->conn) == CONNECTION_BAD)
			break;
		if (!pg_take_result(pg, op, PQgetResult(pg->conn))) {
			/* Two statements, so two NULLs at most, then the
			 * Sync: more means libpq and we disagree. */
			if (op->nulls > PG_OP_STATEMENTS) {
				pg_fail(pg, "pipeline out of step");
				return;
			}
			continue;
		}
		pg_complete(pg, op);
		/* A callback may have closed the connection or, during
		 * setup, ended it (pipeline mode comes next). */
		if (pg->state != PG_READY && pg->state != PG_SETUP)
			return;
	}
	if (pg->conn == NULL)
		return;
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		pg_fail(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg_send_queued(pg);
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
	if (event_pending(pg->ev_write, EV_WRITE, NULL)) {
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
pg_run_setup(struct pg_conn *pg)
{
	if (pg->setup != NULL)
		pg->setup(pg, pg->setup_arg);
	else
		pg_setup_done(pg);
}

static void
pg_on_session_timeout(void *arg, const PGresult *res, const char *err)
{
	struct pg_conn *pg = arg;

	(void)res;
	if (err != NULL)
		pg_setup_failed(pg, err);
	else
		pg_run_setup(pg);
}

/* The first query of every connection. A pooler answers the startup with
 * its own BackendKeyData (for cancels), so the backend pid libpq got is
 * not the server's. PgBouncer before 1.21 in transaction mode gives the
 * server connection to another client at the first ReadyForQuery, while
 * more of our pipelined segments may already be on it, and that client
 * then gets our answers: through a pooler, one segment at a time,
 * each with its own statement_timeout; directly, one SET for the session. */
static void
pg_on_pid(void *arg, const PGresult *res, const char *err)
{
	struct pg_conn *pg = arg;
	bool was = pg->pooled;
	char *sql;

	if (err != NULL) {
		pg_setup_failed(pg, err);
		return;
	}
	pg->pooled = PQbackendPID(pg->conn) != atoi(PQgetvalue(res, 0, 0));
	log_write(pg->pooled != was ? LOG_INFO : LOG_DEBUG, "pg",
	    pg->pooled ?
		"database reached through a pooler: one query at a time" :
		"database reached directly",
	    "{s:i}", "pipeline_depth", pg->pooled ? 1 : pg->depth);
	if (pg->pooled) {
		pg_run_setup(pg);
		return;
	}
	sql = xasprintf("SET statement_timeout = %lld",
	    (long long)pg->query_timeout_ms);
	(void)pg_enqueue(pg,
	    pg_op_new(PG_OP_SCRIPT, NULL, sql, 0, NULL, pg_on_session_timeout,
		pg));
	free(sql);
}

static void
pg_connected(struct pg_conn *pg)
{
	int fd = PQsocket(pg->conn);

	pg_events_free(pg);
	/* Pipeline mode needs it: in blocking mode it can deadlock. */
	if (PQsetnonblocking(pg->conn, 1) != 0) {
		pg_fail(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg->ev_read = pg_event_prioritize(pg,
	    event_new(pg->base, fd, EV_READ | EV_PERSIST, pg_on_readable, pg));
	pg->ev_write = pg_event_prioritize(pg,
	    event_new(pg->base, fd, EV_WRITE, pg_on_writable, pg));
	event_add(pg->ev_read, NULL);
	pg->state = PG_SETUP;
	log_info("pg", "database connected", "{s:i, s:s?}", "server_version",
	    PQserverVersion(pg->conn), "host", PQhost(pg->conn));
	/* Before the setup hook: nothing may be pipelined before we know. */
	(void)pg_enqueue(pg,
	    pg_op_new(PG_OP_SCRIPT, NULL, "SELECT pg_backend_pid()", 0, NULL,
		pg_on_pid, pg));
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
	pg->ev_io = pg_event_prioritize(pg,
	    event_new(pg->base, fd,
		want == PGRES_POLLING_READING ? EV_READ : EV_WRITE,
		pg_on_connect_io, pg));
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
	pg->depth = PG_PIPELINE_DEPTH_MAX;
	pg->priority = -1;
	pg->timeout_sql =
	    xasprintf("SELECT set_config('statement_timeout', '%lld', true)",
		(long long)query_timeout_ms);
	STAILQ_INIT(&pg->queue);
	STAILQ_INIT(&pg->sent);
	pg->ev_retry = evtimer_new(base, pg_on_retry, pg);
	pg->ev_deadline = evtimer_new(base, pg_on_deadline, pg);
	pg->ev_kick = event_new(base, -1, 0, pg_on_kick, pg);
	return pg;
}

void
pg_set_pipeline_depth(struct pg_conn *pg, int depth)
{
	pg->depth = depth < 1		  ? 1 :
	    depth > PG_PIPELINE_DEPTH_MAX ? PG_PIPELINE_DEPTH_MAX :
					    depth;
}

void
pg_set_metrics(struct pg_conn *pg, struct metrics_link *link)
{
	pg->mlink = link;
}

void
pg_set_priority(struct pg_conn *pg, int priority)
{
	pg->priority = priority;
	pg_event_prioritize(pg, pg->ev_retry);
	pg_event_prioritize(pg, pg->ev_deadline);
	pg_event_prioritize(pg, pg->ev_kick);
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
 * runs before pg_query has returned to its caller; it also sends every op
 * queued in one loop iteration in one write. */
static void
pg_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct pg_conn *pg = arg;

	UNUSED(fd);
	UNUSED(what);
	if (pg->state == PG_READY || pg->state == PG_SETUP)
		pg_send_queued(pg);
}

static int
pg_enqueue(struct pg_conn *pg, struct pg_op *op)
{
	STAILQ_INSERT_TAIL(&pg->queue, op, next);
	pg->nqueued++;
	event_active(pg->ev_kick, EV_TIMEOUT, 0);
	return 0;
}

int
pg_query(struct pg_conn *pg, const char *sql, int nparams,
    const char *const *params, pg_result_cb cb, void *arg)
{
	if (pg->state != PG_READY)
		return -1;
	return pg_enqueue(pg,
	    pg_op_new(PG_OP_PARAMS, NULL, sql, nparams, params, cb, arg));
}

/* Through a pooler the script's own implicit transaction (or the BEGIN
 * block it opens) carries the timeout: a set_config's row comes first,
 * and the caller sees the script's last result (or its first error). */
int
pg_setup_query(struct pg_conn *pg, const char *script, pg_result_cb cb,
    void *arg)
{
	char *prefix;
	int rc;

	if (pg->state != PG_SETUP)
		return -1;
	/* Directly, the session's SET (pg_on_pid) already bounds it. */
	if (!pg->pooled)
		return pg_enqueue(pg,
		    pg_op_new(PG_OP_SCRIPT, NULL, script, 0, NULL, cb, arg));
	prefix = xasprintf("%s;\n", pg->timeout_sql);
	rc = pg_enqueue(pg,
	    pg_op_new(PG_OP_SCRIPT, prefix, script, 0, NULL, cb, arg));
	free(prefix);
	return rc;
}

void
pg_setup_done(struct pg_conn *pg)
{
	if (pg->state != PG_SETUP)
		return;
	pg->state = PG_READY;
	if (pg->mlink != NULL)
		pg->mlink->ready++;
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
	pg_count_down(pg, pg->state);
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
	free(pg->timeout_sql);
	pghosts_free(pg->hosts);
	free(pg->dsn);
	free(pg);
}
