/* redis.c - one hiredis 0.14 async connection driven by the event loop.
 *
 * hiredis 0.14 has no connect or command timeouts, and freeing a context
 * inside its own callbacks is a use-after-free there (fixed in 1.1). So:
 * our own deadlines, a PING watchdog, and a context dropped inside a
 * hiredis callback is freed later from a 0-ms event.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "log.h"
#include "metrics.h"
#include "reconnect.h"
#include "redis.h"
#include "timing.h"
#include "util.h"

enum redis_op_kind { OP_USER, OP_AUTH, OP_SELECT, OP_HELLO_PING, OP_PING };

/* The privdata of one command, freed when hiredis calls it back (once:
 * reply, or NULL as the context goes); its caller may have been answered
 * before that, by the deadline. */
struct redis_op {
	TAILQ_ENTRY(redis_op) next; /* in waiting while unanswered */
	struct redis_client *rc;
	enum redis_op_kind kind;
	unsigned gen; /* connection it was sent on */
	redis_reply_cb cb;
	void *arg;
	int64_t deadline_ms; /* 0: none */
	bool answered;
};

TAILQ_HEAD(redis_op_list, redis_op);

struct redis_client {
	enum redis_state state;
	struct event_base *base;
	struct resolver *res;
	char *host;
	int port;
	char *password;
	int db;
	int64_t op_timeout_ms;
	char ip[RESOLVE_IP_MAX];
	redisAsyncContext *ac;
	redisAsyncContext *dying; /* dropped inside a callback */
	struct resolve_req *resolving;
	struct event *ev_timer;	   /* retry backoff, connect deadline */
	struct event *ev_deadline; /* oldest waiting command */
	struct event *ev_watchdog;
	struct event *ev_drop; /* frees dying from the loop */
	/* User commands not answered yet, oldest first. They share one
	 * timeout, so this is also deadline order: one timer suffices. */
	struct redis_op_list waiting;
	size_t pending;
	unsigned gen;
	struct reconnect reconnect;
	int in_callback; /* hiredis callbacks on the stack */
	int in_user;	 /* caller callbacks on the stack */
	bool ping_out;	 /* watchdog PING not answered yet */
	/* The server's refusal last warned about in this outage ("AUTH
	 * failed: WRONGPASS ..."): a new one is news even mid-outage. */
	char refusal[128];
};

static void redis_fail(struct redis_client *rc, const char *reason);

/* clang-format off */
static const char *const redis_state_names[] = {
	"disconnected", "resolving", "connecting", "ready", "closed",
};
/* clang-format on */

const char *
redis_state_name(enum redis_state s)
{
	assert((size_t)s < ARRAY_LEN(redis_state_names));
	return redis_state_names[s];
}

enum redis_state
redis_get_state(const struct redis_client *rc)
{
	return rc->state;
}

bool
redis_is_ready(const struct redis_client *rc)
{
	return rc->state == RC_READY;
}

size_t
redis_pending(const struct redis_client *rc)
{
	return rc->pending;
}

static void
redis_op_answer(struct redis_op *op, const redisReply *reply, const char *err)
{
	struct redis_client *rc = op->rc;

	if (op->answered)
		return;
	op->answered = true;
	TAILQ_REMOVE(&rc->waiting, op, next);
	rc->pending--;
	rc->in_user++;
	op->cb(op->arg, err ? NULL : reply, err);
	rc->in_user--;
}

static void
redis_deadline_arm(struct redis_client *rc)
{
	struct redis_op *op = TAILQ_FIRST(&rc->waiting);
	struct timeval tv;
	int64_t left;

	if (op == NULL || op->deadline_ms == 0)
		return;
	left = op->deadline_ms - util_now_ms();
	tv = util_tv(left > 0 ? left : 0);
	event_add(rc->ev_deadline, &tv);
}

static void
redis_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct redis_client *rc = arg;
	int64_t now = util_now_ms();
	struct redis_op *op;

	UNUSED(fd);
	UNUSED(what);
	while ((op = TAILQ_FIRST(&rc->waiting)) != NULL &&
	    op->deadline_ms != 0 && op->deadline_ms <= now)
		redis_op_answer(op, NULL, "timeout");
	redis_deadline_arm(rc);
}

static void redis_on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Hands one command to hiredis with a fresh op as its privdata. */
static struct redis_op *
redis_send(struct redis_client *rc, enum redis_op_kind kind, int argc,
    const char **argv, const size_t *argvlen)
{
	struct redis_op *op = xcalloc(1, sizeof(*op));

	op->rc = rc;
	op->kind = kind;
	op->gen = rc->gen;
	if (redisAsyncCommandArgv(rc->ac, redis_on_reply, op, argc, argv,
		argvlen) == REDIS_OK)
		return op;
	free(op);
	return NULL;
}

/* These change the reply pattern (several replies per command, or
 * pushes); the one-callback-per-command model can't carry them. */
static bool
redis_cmd_refused(const char *name, size_t len)
{
	/* clang-format off */
	static const char *const refused[] = {
		"subscribe", "psubscribe", "ssubscribe", "unsubscribe",
		"punsubscribe", "sunsubscribe", "monitor",
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		if (strlen(refused[i]) == len &&
		    strncasecmp(name, refused[i], len) == 0)
			return true;
	return false;
}

int
redis_command(struct redis_client *rc, redis_reply_cb cb, void *arg, int argc,
    const char **argv, const size_t *argvlen)
{
	struct redis_op *op;

	if (rc->state != RC_READY || argc <= 0 || cb == NULL ||
	    redis_cmd_refused(argv[0], argvlen ? argvlen[0] : strlen(argv[0])))
		return -1;
	/* hiredis only buffers here and asks for a write event, so every
	 * command of this loop iteration leaves in one write. */
	if ((op = redis_send(rc, OP_USER, argc, argv, argvlen)) == NULL)
		return -1;
	op->cb = cb;
	op->arg = arg;
	if (rc->op_timeout_ms > 0)
		op->deadline_ms = util_now_ms() + rc->op_timeout_ms;
	TAILQ_INSERT_TAIL(&rc->waiting, op, next);
	rc->pending++;
	/* An early wake-up (its op was answered) just re-arms. */
	if (!event_pending(rc->ev_deadline, EV_TIMEOUT, NULL))
		redis_deadline_arm(rc);
	return 0;
}

static void
redis_ready(struct redis_client *rc)
{
	struct timeval tv = util_tv(TIMING_REDIS_WATCHDOG_MS);

	rc->state = RC_READY;
	metrics.redis.ready = 1;
	rc->refusal[0] = '\0';
	reconnect_succeeded(&rc->reconnect);
	event_del(rc->ev_timer);
	event_add(rc->ev_watchdog, &tv);
	log_info("redis", "redis ready", "{s:s, s:s, s:i, s:i}", "host",
	    rc->host, "address", rc->ip, "port", rc->port, "db", rc->db);
}

/* AUTH, SELECT and PING of the handshake, and the watchdog's PING. */
static void
redis_on_internal(struct redis_client *rc, struct redis_op *op,
    const redisReply *reply)
{
	char *reason;

	if (reply->type == REDIS_REPLY_ERROR) {
		/* Wrong password, NOAUTH, bad db number, LOADING... */
		reason = xasprintf("%s failed: %s",
		    op->kind == OP_AUTH	      ? "AUTH" :
			op->kind == OP_SELECT ? "SELECT" :
						"PING",
		    reply->str);
		redis_fail(rc, reason);
		free(reason);
	} else if (op->kind == OP_HELLO_PING) {
		redis_ready(rc);
	} else if (op->kind == OP_PING) {
		rc->ping_out = false;
	}
}

/* hiredis is tearing the link down itself (refused, EOF, error) and
 * frees the context after this callback. In onConnect ac->err is still 0:
 * the text is the inner context's. */
static void
redis_link_lost(struct redis_client *rc, const redisAsyncContext *ac,
    const char *what)
{
	char *reason = xasprintf("%s: %s", what,
	    ac->c.errstr[0] != '\0' ? ac->c.errstr : "closed");

	rc->in_callback++;
	rc->ac = NULL;
	redis_fail(rc, reason);
	free(reason);
	rc->in_callback--;
}

static void
redis_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct redis_op *op = privdata;
	struct redis_client *rc = op->rc;
	const redisReply *reply = r;
	bool current = ac == rc->ac && op->gen == rc->gen;

	rc->in_callback++;
	/* The first NULL of a dying link: fail the rest with its reason. */
	if (reply == NULL && current)
		redis_link_lost(rc, ac, "connection lost");
	if (op->kind == OP_USER) {
		if (reply == NULL)
			redis_op_answer(op, NULL, "connection lost");
		else if (reply->type == REDIS_REPLY_ERROR)
			redis_op_answer(op, NULL, reply->str);
		else
			redis_op_answer(op, reply, NULL);
	} else if (reply != NULL && current) {
		redis_on_internal(rc, op, reply);
	}
	free(op);
	rc->in_callback--;
}

static void
redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_client *rc = ac->data;

	/* On success the handshake, already queued, goes out now. */
	if (rc != NULL && rc->ac == ac && status != REDIS_OK)
		redis_link_lost(rc, ac, "connect");
}

/* Only a link that hiredis dropped with no command in flight gets here;
 * otherwise redis_on_reply saw the loss first. */
static void
redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_client *rc = ac->data;

	UNUSED(status);
	if (rc != NULL && rc->ac == ac)
		redis_link_lost(rc, ac, "connection lost");
}

static void
redis_on_drop(evutil_socket_t fd, short what, void *arg)
{
	struct redis_client *rc = arg;
	redisAsyncContext *ac = rc->dying;

	UNUSED(fd);
	UNUSED(what);
	rc->dying = NULL;
	if (ac != NULL)
		redisAsyncFree(ac);
}

/* Frees the context now, or from the loop when a hiredis callback is on
 * the stack. Pending commands on it are called back with NULL. */
static void
redis_dispose(struct redis_client *rc, redisAsyncContext *ac)
{
	ac->data = NULL;
	if (rc->in_callback == 0) {
		redisAsyncFree(ac);
		return;
	}
	/* Never two: a new link waits for the retry timer, after this. */
	if (rc->dying != NULL)
		redisAsyncFree(rc->dying);
	rc->dying = ac;
	event_active(rc->ev_drop, EV_TIMEOUT, 0);
}

static void
redis_schedule_retry(struct redis_client *rc)
{
	int64_t delay = reconnect_next_delay_ms(&rc->reconnect);
	struct timeval tv = util_tv(delay);

	event_add(rc->ev_timer, &tv);
	metrics.redis.reconnects++;
	log_debug("redis", "reconnect scheduled", "{s:I}", "delay_ms",
	    (json_int_t)delay);
}

/* Leaves the link and the attempt behind. The state changes first, so a
 * callback that issues a command gets -1 instead of joining the list
 * being emptied; then the waiting commands fail and the context goes. */
static void
redis_drop(struct redis_client *rc, enum redis_state next, const char *err)
{
	redisAsyncContext *ac = rc->ac;
	struct redis_op *op;

	if (rc->state == RC_READY)
		metrics.redis.ready = 0;
	rc->state = next;
	rc->ac = NULL;
	rc->gen++;
	rc->ping_out = false;
	event_del(rc->ev_timer);
	event_del(rc->ev_watchdog);
	if (rc->resolving != NULL) {
		resolve_cancel(rc->resolving);
		rc->resolving = NULL;
	}
	while ((op = TAILQ_FIRST(&rc->waiting)) != NULL)
		redis_op_answer(op, NULL, err);
	if (ac != NULL)
		redis_dispose(rc, ac);
}

/* The server refused the handshake (AUTH, SELECT, PING answered an
 * error) for a reason not yet warned about in this outage. A link that
 * was lost warns "connection lost"; the reason it cannot come back (a
 * password changed meanwhile: WRONGPASS) comes with a later attempt and
 * must not stay at debug. Repeats of the same refusal stay at debug. */
static bool
redis_new_refusal(struct redis_client *rc, const char *reason)
{
	static const char *const kinds[] = { "AUTH failed", "SELECT failed",
		"PING failed" };
	bool refused = false;

	for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
		if (strncmp(reason, kinds[i], strlen(kinds[i])) == 0)
			refused = true;
	if (!refused ||
	    strncmp(rc->refusal, reason, sizeof(rc->refusal) - 1) == 0)
		return false;
	snprintf(rc->refusal, sizeof(rc->refusal), "%s", reason);
	return true;
}

/* The one funnel for every failure of the link: log why, fail what waits,
 * drop the context, come back later. */
static void
redis_fail(struct redis_client *rc, const char *reason)
{
	enum redis_state was = rc->state;
	bool refusal;
	char *err;

	if (was == RC_CLOSED)
		return;
	/* Both run, always: each records what it has seen. */
	refusal = redis_new_refusal(rc, reason);
	if (reconnect_failed(&rc->reconnect, was == RC_READY) == LOG_WARN ||
	    refusal)
		log_warn("redis",
		    was == RC_READY ? "redis connection lost" :
				      "redis connection failed",
		    "{s:s, s:s, s:I}", "state", redis_state_name(was), "reason",
		    reason, "attempt",
		    (json_int_t)reconnect_attempts(&rc->reconnect));
	else
		log_debug("redis", "redis connection failed", "{s:s, s:s}",
		    "state", redis_state_name(was), "reason", reason);
	err = xasprintf("redis unavailable: %s", reason);
	redis_drop(rc, RC_DISCONNECTED, err);
	free(err);
	/* Unless a callback closed the client meanwhile. */
	if (rc->state == RC_DISCONNECTED)
		redis_schedule_retry(rc);
}

static void
redis_connect(struct redis_client *rc)
{
	const char *auth[] = { "AUTH", rc->password };
	const char *ping[] = { "PING" };
	const char *sel[] = { "SELECT", NULL };
	char db[16], *reason;
	struct timeval tv = util_tv(TIMING_REDIS_CONNECT_MS);
	redisAsyncContext *ac;

	rc->state = RC_CONNECTING;
	log_debug("redis", "redis connecting", "{s:s, s:i}", "address", rc->ip,
	    "port", rc->port);
	ac = redisAsyncConnect(rc->ip, rc->port);
	if (ac == NULL) {
		redis_fail(rc, "out of memory");
		return;
	}
	if (ac->err || redisLibeventAttach(ac, rc->base) != REDIS_OK) {
		/* No callback can exist yet: the context is ours to free. */
		reason = xasprintf("connect: %s",
		    ac->err ? ac->errstr : "cannot attach to the event loop");
		redisAsyncFree(ac);
		redis_fail(rc, reason);
		free(reason);
		return;
	}
	ac->data = rc;
	rc->ac = ac;
	redisAsyncSetConnectCallback(ac, redis_on_connect);
	redisAsyncSetDisconnectCallback(ac, redis_on_disconnect);
	if (redisEnableKeepAlive(&ac->c) != REDIS_OK) {
		/* hiredis would treat the recorded error as fatal on the
		 * next write; keepalive is only a nicety here. */
		log_debug("redis", "keepalive not enabled", "{s:s}", "reason",
		    ac->c.errstr);
		ac->c.err = 0;
		ac->c.errstr[0] = '\0';
	}
	/* Buffered until the socket connects; they precede any command. */
	snprintf(db, sizeof(db), "%d", rc->db);
	sel[1] = db;
	if ((rc->password[0] != '\0' &&
		redis_send(rc, OP_AUTH, 2, auth, NULL) == NULL) ||
	    (rc->db != 0 && redis_send(rc, OP_SELECT, 2, sel, NULL) == NULL) ||
	    redis_send(rc, OP_HELLO_PING, 1, ping, NULL) == NULL) {
		redis_fail(rc, "cannot queue the handshake");
		return;
	}
	event_add(rc->ev_timer, &tv);
}

static void
redis_on_resolved(void *arg, const char *ip, const char *err)
{
	struct redis_client *rc = arg;
	char *reason;

	rc->resolving = NULL;
	if (ip == NULL) {
		reason = xasprintf("resolve %s: %s", rc->host, err);
		redis_fail(rc, reason);
		free(reason);
		return;
	}
	snprintf(rc->ip, sizeof(rc->ip), "%s", ip);
	redis_connect(rc);
}

/* Resolved on every attempt: a restarted container may have a new IP. */
static void
redis_attempt(struct redis_client *rc)
{
	if (resolve_is_numeric(rc->host)) {
		snprintf(rc->ip, sizeof(rc->ip), "%s", rc->host);
		redis_connect(rc);
		return;
	}
	if (rc->res == NULL) {
		redis_fail(rc, "a host name needs a resolver");
		return;
	}
	rc->state = RC_RESOLVING;
	rc->resolving = resolve_host(rc->res, rc->host, TIMING_REDIS_RESOLVE_MS,
	    redis_on_resolved, rc);
	if (rc->resolving == NULL)
		redis_fail(rc, "resolver shutting down");
}

/* Waiting to retry, or waiting for a connect to finish: one at a time. */
static void
redis_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis_client *rc = arg;

	UNUSED(fd);
	UNUSED(what);
	if (rc->state == RC_DISCONNECTED)
		redis_attempt(rc);
	else if (rc->state == RC_CONNECTING)
		redis_fail(rc, "connect timed out");
}

/* A frozen server (SIGSTOP, a stuck host) keeps the TCP link up and
 * answers nothing; keepalive alone takes minutes to notice. */
static void
redis_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct redis_client *rc = arg;
	const char *ping[] = { "PING" };

	UNUSED(fd);
	UNUSED(what);
	if (rc->state != RC_READY)
		return;
	if (rc->ping_out) {
		redis_fail(rc, "no PING reply within 5 s (server frozen?)");
		return;
	}
	if (redis_send(rc, OP_PING, 1, ping, NULL) == NULL) {
		redis_fail(rc, "cannot send PING");
		return;
	}
	rc->ping_out = true;
}

/* ---- public ---- */

struct redis_client *
redis_new(struct event_base *base, struct resolver *res, const char *host,
    int port, const char *password, int db, int64_t op_timeout_ms)
{
	struct redis_client *rc = xcalloc(1, sizeof(*rc));
	size_t len = strlen(host);

	rc->base = base;
	rc->res = res;
	/* "[::1]" as written in REDIS_ADDR: the brackets only guard the
	 * colons from the port. */
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
		rc->host = xstrndup(host + 1, len - 2);
	else
		rc->host = xstrdup(host);
	rc->port = port;
	rc->password = xstrdup(password ? password : "");
	rc->db = db;
	rc->op_timeout_ms = op_timeout_ms;
	TAILQ_INIT(&rc->waiting);
	rc->ev_timer = evtimer_new(base, redis_on_timer, rc);
	rc->ev_deadline = evtimer_new(base, redis_on_deadline, rc);
	rc->ev_watchdog = event_new(base, -1, EV_PERSIST, redis_on_watchdog,
	    rc);
	rc->ev_drop = event_new(base, -1, 0, redis_on_drop, rc);
	return rc;
}

void
redis_start(struct redis_client *rc)
{
	if (rc->state == RC_DISCONNECTED && rc->ac == NULL &&
	    !event_pending(rc->ev_timer, EV_TIMEOUT, NULL))
		redis_attempt(rc);
}

void
redis_close(struct redis_client *rc)
{
	if (rc->state == RC_CLOSED)
		return;
	event_del(rc->ev_deadline);
	redis_drop(rc, RC_CLOSED, "shutting down");
	log_info("redis", "redis closed", NULL);
}

void
redis_free(struct redis_client *rc)
{
	if (rc == NULL)
		return;
	if (rc->in_callback > 0 || rc->in_user > 0) {
		/* Whatever is on the stack would touch freed memory. */
		log_error("redis", "redis_free called from a redis callback",
		    NULL);
		abort();
	}
	redis_close(rc);
	redis_on_drop(-1, 0, rc);
	event_free(rc->ev_timer);
	event_free(rc->ev_deadline);
	event_free(rc->ev_watchdog);
	event_free(rc->ev_drop);
	free(rc->host);
	free(rc->password);
	free(rc);
}
