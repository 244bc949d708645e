/* service.c - everything the REST API may ask of the service, over the
 * drivers, the store and the scheduler.
 *
 * Reads go to the API's own connections (pgpool), never behind the
 * scheduler's claims and outcome writes on the delivery connection; only
 * while none of them is ready (PostgreSQL restarting, or
 * API_DB_CONNECTIONS=0) do they fall back to the delivery connection,
 * which keeps the API answering rather than failing.
 *
 * Reads are batched: each connection runs at most one statement of reads
 * at a time, and the reads that arrive meanwhile wait here and go out
 * together in the next one (store_list_sent: one parse, one plan, one
 * round trip, one snapshot for up to SERVICE_BATCH_MAX pages, each page
 * its own index scan). Reads of the same page that wait together share
 * it: the statement's one snapshot would give each the same rows anyway,
 * and a listing many clients poll costs one index scan per statement, not
 * one per client. Every read in a statement arrived before it was sent,
 * so none sees older data than a statement of its own would. An idle
 * service sends each read at once, alone.
 *
 * Every read counts against one bound from the moment it is accepted until
 * its callback: past it a call answers SVC_BUSY at once, so a stalled
 * database or a flood of clients holds at most max_queries reads and their
 * requests, never an unbounded queue. A read whose HTTP request already
 * timed out still counts until the database answers it: the bound is on
 * the database's work, not on requests. */
#include <assert.h>
#include <stdlib.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "cache.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "pg.h"
#include "pgpool.h"
#include "redis.h"
#include "scheduler.h"
#include "service.h"
#include "store.h"
#include "timing.h"
#include "streak.h"
#include "util.h"

/* Most pages one statement asks for (reads of a page it already asks for
 * do not count). */
#define SERVICE_BATCH_MAX 32
/* Most failed messages one statement of retry-failed moves: a statement
 * holds the row locks of its batch, and delivery and other requests
 * wait behind none of it for long. */
#define SERVICE_REQUEUE_BATCH 1000

/* One read, waiting here or in a statement. */
struct service_read {
	STAILQ_ENTRY(service_read) next;
	service_list_cb cb;
	void *arg;
	struct store_page page;
	size_t slot; /* which page of its statement answers it */
};

STAILQ_HEAD(service_read_list, service_read);

/* The reads one statement answers, in order. */
struct service_batch {
	struct service *svc;
	struct service_read_list reads;
};

struct service {
	struct event_base *base;
	struct pg_conn *pg;
	struct pgpool *api;
	struct redis_client *redis;
	struct sched *sched;
	bool shutting_down;
	struct event *ev_send;	/* sends waiting reads, from the loop */
	struct event *ev_first; /* the same, first thing: nothing in flight */
	struct service_read_list waiting; /* reads not sent yet */
	size_t batches;			  /* statements of reads in flight */
	size_t queries;			  /* reads waiting or in flight */
	size_t max_queries;		  /* the bound on them */
	size_t refused;		/* SVC_BUSY answers since the bound was hit */
	struct event *ev_sweep; /* deletes expired idempotency keys */
	bool sweeping;		/* a sweep statement is out */
	struct streak list_failing;
};

static void service_on_send(evutil_socket_t fd, short what, void *arg);
static void service_on_sweep(evutil_socket_t fd, short what, void *arg);
static void service_fail_waiting(struct service *svc, enum svc_err err);

struct service *
service_new(struct event_base *base, struct pg_conn *pg, struct pgpool *api,
    struct redis_client *redis, struct sched *sched, size_t max_queries)
{
	struct service *svc = xcalloc(1, sizeof(*svc));

	svc->base = base;
	svc->ev_send = event_new(base, -1, 0, service_on_send, svc);
	svc->ev_first = event_new(base, -1, 0, service_on_send, svc);
	event_priority_set(svc->ev_first, LOOP_PRIO_API_DB);
	STAILQ_INIT(&svc->waiting);
	svc->pg = pg;
	svc->api = api;
	svc->redis = redis;
	svc->sched = sched;
	svc->max_queries = max_queries > 0 ? max_queries : 1;
	svc->ev_sweep = evtimer_new(base, service_on_sweep, svc);
	{
		struct timeval tv = util_tv(TIMING_SWEEP_FIRST_MS);

		event_add(svc->ev_sweep, &tv);
	}
	svc->list_failing = (struct streak)STREAK_INIT(LOG_WARN, "service",
	    "listing messages failed", "listing messages still failing",
	    "listing messages works again");
	return svc;
}

/* After the drivers: their failures have answered every read in flight
 * (and, nothing being ready, the waiting ones); what the loop never got
 * to send is answered here. */
void
service_free(struct service *svc)
{
	if (svc == NULL)
		return;
	service_fail_waiting(svc, SVC_SHUTTING_DOWN);
	event_free(svc->ev_send);
	event_free(svc->ev_first);
	event_free(svc->ev_sweep);
	free(svc);
}

void
service_status(const struct service *svc, struct service_status *st)
{
	st->shutting_down = svc->shutting_down;
	st->ready = !svc->shutting_down && pg_is_ready(svc->pg);
	st->database = pg_state_name(pg_get_state(svc->pg));
	st->redis = redis_state_name(redis_get_state(svc->redis));
	st->sending = sched_is_active(svc->sched);
	st->circuit = sched_circuit(svc->sched);
	st->backlog_pending = metrics.pending;
	st->backlog_due = metrics.due;
	st->api_connections = pgpool_size(svc->api);
	st->api_ready = pgpool_ready(svc->api);
	st->api_queries = svc->queries;
	st->api_queries_max = svc->max_queries;
}

void
service_set_shutting_down(struct service *svc)
{
	svc->shutting_down = true;
}

void
service_start_sending(struct service *svc)
{
	(void)sched_start(svc->sched);
}

void
service_stop_sending(struct service *svc)
{
	(void)sched_stop(svc->sched);
}

void
service_metrics(struct service *svc, struct evbuffer *out)
{
	UNUSED(svc);
	metrics_write(out);
}

/* A store error is a database that is down or failed the query: either
 * way the caller can only try again later. Logged as a streak: a client
 * that polls a database that is down must not fill the log. */
static enum svc_err
service_db_streak(struct streak *s, const char *err)
{
	(void)streak_hit(s, "{s:s}", "reason", err);
	return SVC_UNAVAILABLE;
}

/* The same for a write (one per operator's request, not a flood). */
static enum svc_err
service_db_err(const char *what, const char *err)
{
	log_warn("service", what, "{s:s}", "reason", err);
	return SVC_UNAVAILABLE;
}

/* Where a statement of reads goes: the least busy ready API connection,
 * else the delivery connection if it is ready, else nowhere (NULL). */
static struct pg_conn *
service_read_conn(struct service *svc)
{
	struct pg_conn *pg = pgpool_pick(svc->api);

	if (pg == NULL && pg_is_ready(svc->pg))
		pg = svc->pg;
	return pg;
}

/* Statements of reads that may be in flight at once: one per ready API
 * connection, or the delivery connection's one. */
static size_t
service_read_slots(const struct service *svc)
{
	int n = pgpool_ready(svc->api);

	return n > 0 ? (size_t)n : 1;
}

/* Takes a place under the bound for a new read, or says why not. */
static enum svc_err
service_admit(struct service *svc)
{
	if (svc->queries < svc->max_queries)
		return SVC_OK;
	if (svc->refused++ == 0)
		log_warn("service",
		    "API queries at their limit, answering 503 until some "
		    "finish",
		    "{s:I}", "limit", (json_int_t)svc->max_queries);
	return SVC_BUSY;
}

/* Gives a place under the bound back. */
static void
service_release(struct service *svc)
{
	assert(svc->queries > 0);
	svc->queries--;
	if (svc->refused > 0 && svc->queries <= svc->max_queries / 2) {
		log_info("service", "API queries below their limit again",
		    "{s:I}", "refused", (json_int_t)svc->refused);
		svc->refused = 0;
	}
}

/* Answers r (msgs are borrowed for the call) and gives its place back. */
static void
service_read_finish(struct service *svc, struct service_read *r,
    enum svc_err err, const struct message *msgs, size_t n, const char *next)
{
	r->cb(r->arg, err, msgs, n, next);
	free(r);
	service_release(svc);
}

static void
service_fail_list(struct service *svc, struct service_read_list *reads,
    enum svc_err err)
{
	struct service_read *r;

	while ((r = STAILQ_FIRST(reads)) != NULL) {
		STAILQ_REMOVE_HEAD(reads, next);
		service_read_finish(svc, r, err, NULL, 0, NULL);
	}
}

static void
service_fail_waiting(struct service *svc, enum svc_err err)
{
	struct service_read_list reads = STAILQ_HEAD_INITIALIZER(reads);

	STAILQ_CONCAT(&reads, &svc->waiting);
	service_fail_list(svc, &reads, err);
}

static void service_send_reads(struct service *svc);

static void
service_on_listed(void *arg, const struct message *msgs, const size_t *counts,
    const char *const *next, size_t npages, const char *err)
{
	struct service_batch *b = arg;
	struct service *svc = b->svc;
	struct service_read *r;
	size_t start[SERVICE_BATCH_MAX];

	svc->batches--;
	if (err != NULL) {
		service_fail_list(svc, &b->reads,
		    service_db_streak(&svc->list_failing, err));
	} else {
		streak_end(&svc->list_failing);
		assert(npages <= SERVICE_BATCH_MAX);
		for (size_t p = 0, at = 0; p < npages; at += counts[p++])
			start[p] = at;
		while ((r = STAILQ_FIRST(&b->reads)) != NULL) {
			assert(r->slot < npages);
			STAILQ_REMOVE_HEAD(&b->reads, next);
			service_read_finish(svc, r, SVC_OK,
			    msgs + start[r->slot], counts[r->slot],
			    next[r->slot]);
		}
	}
	free(b);
	/* Not at once: this runs before the rest of the poll's callbacks
	 * (loop.h), and the reads among them go out in the same statement. */
	event_active(svc->ev_send, EV_TIMEOUT, 0);
}

/* A read of the plain sent listing, the kind one statement answers many
 * of; any other goes alone. */
static bool
service_read_batches(const struct service_read *r)
{
	return r->page.filter == MESSAGE_SENT && !r->page.has_after;
}

/* The slot of r's page among the n a batching statement asks for: an
 * identical one's, or a new one (n grows). */
static size_t
service_read_slot(const struct service_read *r, struct store_page *pages,
    size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		if (pages[i].limit == r->page.limit &&
		    pages[i].offset == r->page.offset)
			return i;
	pages[*n] = r->page;
	return (*n)++;
}

/* Sends waiting reads while a connection has no statement of them in
 * flight, up to SERVICE_BATCH_MAX pages in each (only reads that batch share a
 * statement). Runs from the loop (never inside service_list), so it may
 * answer reads. */
static void
service_send_reads(struct service *svc)
{
	while (!STAILQ_EMPTY(&svc->waiting) &&
	    svc->batches < service_read_slots(svc)) {
		struct pg_conn *pg = service_read_conn(svc);
		struct store_page pages[SERVICE_BATCH_MAX];
		struct service_batch *b;
		size_t n = 0;

		if (pg == NULL)
			break;
		b = xmalloc(sizeof(*b));
		b->svc = svc;
		STAILQ_INIT(&b->reads);
		while (n < SERVICE_BATCH_MAX && !STAILQ_EMPTY(&svc->waiting)) {
			struct service_read *r = STAILQ_FIRST(&svc->waiting);

			if (n > 0 &&
			    (!service_read_batches(r) ||
				!service_read_batches(STAILQ_FIRST(&b->reads))))
				break;
			STAILQ_REMOVE_HEAD(&svc->waiting, next);
			STAILQ_INSERT_TAIL(&b->reads, r, next);
			r->slot = service_read_slot(r, pages, &n);
		}
		if ((service_read_batches(STAILQ_FIRST(&b->reads)) ?
			    store_list_sent(pg, pages, n, service_on_listed,
				b) :
			    store_list_page(pg, &pages[0], service_on_listed,
				b)) != 0) {
			service_fail_list(svc, &b->reads, SVC_UNAVAILABLE);
			free(b);
			continue;
		}
		svc->batches++;
	}
	/* Nothing in flight whose end would send them: no connection. */
	if (svc->batches == 0)
		service_fail_waiting(svc, SVC_UNAVAILABLE);
}

static void
service_on_send(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	service_send_reads(arg);
}

enum svc_err
service_list(struct service *svc, enum message_filter filter, int limit,
    int offset, const char *after, service_list_cb cb, void *arg)
{
	struct store_page page = { .limit = limit,
		.offset = offset,
		.filter = filter };
	struct service_read *r;
	enum svc_err err;

	if (after != NULL && store_cursor_parse(after, filter, &page) != 0)
		return SVC_INVALID;
	if (pgpool_ready(svc->api) == 0 && !pg_is_ready(svc->pg))
		return SVC_UNAVAILABLE;
	if ((err = service_admit(svc)) != SVC_OK)
		return err;
	r = xmalloc(sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	r->page = page;
	svc->queries++;
	STAILQ_INSERT_TAIL(&svc->waiting, r, next);
	/* With no statement of reads in flight or about to go, this one goes
	 * out first thing; otherwise it waits with the others (for an answer,
	 * then the rest of the poll), and the next statement carries them
	 * all. */
	if (svc->batches == 0 && !event_pending(svc->ev_send, EV_TIMEOUT, NULL))
		event_active(svc->ev_first, EV_TIMEOUT, 0);
	else
		event_active(svc->ev_send, EV_TIMEOUT, 0);
	return SVC_OK;
}

/* ---------------------------------------------------------------- one
 * statement each: creates, lookups, replays. They count against the same
 * bound as reads and go to the same connections. */

struct service_op {
	struct service *svc;
	union {
		service_message_cb message;
		service_detail_cb detail;
		service_count_cb count;
	} cb;
	void *arg;
	int64_t id;
	char *cache;		/* the Redis entry, for a lookup */
	const char *cache_st;	/* static */
	char *since;		/* for retry-failed */
	size_t total;		/* requeued so far */
	struct event *ev_cache; /* the lookup's deadline on Redis */
	bool cache_pending;	/* its GET has not called back yet */
	bool row_asked;		/* the row's query went out (or failed) */
	bool released;		/* answered: its place is given back */
};

/* An operation with a connection (*pg, for its first statement) and a
 * place under the bound; NULL and *err when there is none. */
static struct service_op *
service_op_start(struct service *svc, void *arg, struct pg_conn **pg,
    enum svc_err *err)
{
	struct service_op *op;

	if ((*pg = service_read_conn(svc)) == NULL) {
		*err = SVC_UNAVAILABLE;
		return NULL;
	}
	if ((*err = service_admit(svc)) != SVC_OK)
		return NULL;
	svc->queries++;
	op = xcalloc(1, sizeof(*op));
	op->svc = svc;
	op->arg = arg;
	return op;
}

/* After the answer. A lookup whose Redis GET is still out stays until
 * that calls back (its callback gets op). */
static void
service_op_free(struct service_op *op)
{
	if (!op->released) {
		op->released = true;
		service_release(op->svc);
	}
	if (op->cache_pending)
		return;
	if (op->ev_cache != NULL)
		event_free(op->ev_cache);
	free(op->cache);
	free(op->since);
	free(op);
}

/* rc of the call that queued op's first statement: when it was not
 * queued, op goes and the caller hears the database is unavailable. */
static enum svc_err
service_op_sent(struct service_op *op, int rc)
{
	if (rc == 0)
		return SVC_OK;
	service_op_free(op);
	return SVC_UNAVAILABLE;
}

static void
service_on_created(void *arg, enum store_created what, const struct message *m,
    const char *err)
{
	struct service_op *op = arg;

	if (err != NULL)
		op->cb.message(op->arg,
		    service_db_err("creating a message failed", err), NULL,
		    false);
	else if (what == STORE_KEY_MISSING) /* expired between two reads */
		op->cb.message(op->arg, SVC_CONFLICT, NULL, false);
	else
		op->cb.message(op->arg,
		    what == STORE_KEY_REUSED ? SVC_CONFLICT : SVC_OK, m,
		    what == STORE_REPLAYED);
	service_op_free(op);
}

enum svc_err
service_create_message(struct service *svc, const char *recipient,
    const char *content, const char *key, service_message_cb cb, void *arg)
{
	struct pg_conn *pg;
	enum svc_err err;
	struct service_op *op = service_op_start(svc, arg, &pg, &err);

	if (op == NULL)
		return err;
	op->cb.message = cb;
	return service_op_sent(op,
	    store_create_message(pg, recipient, content, key,
		TIMING_IDEMPOTENCY_TTL_MS, service_on_created, op));
}

static void
service_on_detail(void *arg, const struct message_detail *d, const char *err)
{
	struct service_op *op = arg;

	if (err != NULL)
		op->cb.detail(op->arg,
		    service_db_err("reading a message failed", err), NULL, NULL,
		    NULL);
	else
		op->cb.detail(op->arg, d != NULL ? SVC_OK : SVC_NOT_FOUND, d,
		    op->cache, op->cache_st);
	service_op_free(op);
}

static void
service_get_row(struct service_op *op)
{
	struct pg_conn *pg = service_read_conn(op->svc);

	op->row_asked = true;
	if (op->ev_cache != NULL)
		event_del(op->ev_cache);
	if (pg == NULL ||
	    store_get_message(pg, op->id, service_on_detail, op) != 0) {
		op->cb.detail(op->arg, SVC_UNAVAILABLE, NULL, NULL, NULL);
		service_op_free(op);
	}
}

static void
service_on_cache(void *arg, const redisReply *reply, const char *err)
{
	struct service_op *op = arg;

	op->cache_pending = false;
	if (op->row_asked) { /* too late: answered "unavailable" */
		if (op->released)
			service_op_free(op);
		return;
	}
	if (err != NULL) {
		op->cache_st = "unavailable";
	} else if (reply->type == REDIS_REPLY_STRING) {
		op->cache = xstrndup(reply->str, reply->len);
		op->cache_st = "hit";
	} else {
		op->cache_st = "miss";
	}
	service_get_row(op);
}

/* Redis waited for no longer than TIMING_CACHE_LOOKUP_MS. */
static void
service_on_cache_late(evutil_socket_t fd, short what, void *arg)
{
	struct service_op *op = arg;

	UNUSED(fd);
	UNUSED(what);
	op->cache_st = "unavailable";
	service_get_row(op);
}

/* Redis first, so the row (borrowed from its result) and the entry are
 * both at hand in one callback. A Redis that is not ready costs nothing;
 * one that is frozen (still ready until its watchdog says otherwise)
 * costs TIMING_CACHE_LOOKUP_MS at most. */
enum svc_err
service_get_message(struct service *svc, int64_t id, service_detail_cb cb,
    void *arg)
{
	struct pg_conn *pg;
	enum svc_err err;
	struct service_op *op = service_op_start(svc, arg, &pg, &err);

	if (op == NULL)
		return err;
	op->cb.detail = cb;
	op->id = id;
	if (cache_get_sent(svc->redis, id, service_on_cache, op) != 0) {
		op->cache_st = "unavailable";
		op->row_asked = true;
		return service_op_sent(op,
		    store_get_message(pg, id, service_on_detail, op));
	}
	op->cache_pending = true;
	op->ev_cache = evtimer_new(svc->base, service_on_cache_late, op);
	{
		struct timeval tv = util_tv(TIMING_CACHE_LOOKUP_MS);

		event_add(op->ev_cache, &tv);
	}
	return SVC_OK;
}

static void
service_on_retried(void *arg, const struct message *m, bool requeued,
    const char *err)
{
	struct service_op *op = arg;

	if (err != NULL) {
		op->cb.message(op->arg,
		    service_db_err("requeuing a message failed", err), NULL,
		    false);
	} else if (m == NULL) {
		op->cb.message(op->arg, SVC_NOT_FOUND, NULL, false);
	} else {
		if (requeued)
			log_info("service", "failed message requeued", "{s:I}",
			    "id", (json_int_t)m->id);
		op->cb.message(op->arg, requeued ? SVC_OK : SVC_CONFLICT, m,
		    false);
	}
	service_op_free(op);
}

enum svc_err
service_retry_message(struct service *svc, int64_t id, service_message_cb cb,
    void *arg)
{
	struct pg_conn *pg;
	enum svc_err err;
	struct service_op *op = service_op_start(svc, arg, &pg, &err);

	if (op == NULL)
		return err;
	op->cb.message = cb;
	return service_op_sent(op,
	    store_retry_message(pg, id, service_on_retried, op));
}

static int service_requeue_batch(struct service_op *op);

static void
service_on_requeued(void *arg, size_t n, const char *err)
{
	struct service_op *op = arg;

	op->total += n;
	if (err == NULL && n == SERVICE_REQUEUE_BATCH &&
	    service_requeue_batch(op) == 0)
		return;
	if (err != NULL || n == SERVICE_REQUEUE_BATCH) {
		/* What moved stays moved; the caller may simply ask again. */
		op->cb.count(op->arg,
		    service_db_err("requeuing failed messages failed",
			err != NULL ? err : "database unavailable"),
		    op->total);
	} else {
		log_info("service", "failed messages requeued", "{s:I}",
		    "count", (json_int_t)op->total);
		op->cb.count(op->arg, SVC_OK, op->total);
	}
	service_op_free(op);
}

static int
service_requeue_batch(struct service_op *op)
{
	struct pg_conn *pg = service_read_conn(op->svc);

	return pg != NULL ?
	    store_retry_failed(pg, op->since, SERVICE_REQUEUE_BATCH,
		service_on_requeued, op) :
	    -1;
}

/* A batch at a time until one comes back short: each statement holds at
 * most SERVICE_REQUEUE_BATCH row locks, and skips rows another instance's
 * statement holds (it requeues those). */
enum svc_err
service_retry_failed(struct service *svc, const char *since,
    service_count_cb cb, void *arg)
{
	struct pg_conn *pg;
	enum svc_err err;
	struct service_op *op = service_op_start(svc, arg, &pg, &err);

	if (op == NULL)
		return err;
	op->cb.count = cb;
	op->since = since != NULL ? xstrdup(since) : NULL;
	return service_op_sent(op, service_requeue_batch(op));
}

/* ---------------------------------------------------------------- sweep */

static void service_sweep_again(struct service *svc, int64_t ms);

static void
service_on_swept(void *arg, size_t n, const char *err)
{
	struct service *svc = arg;

	svc->sweeping = false;
	if (err != NULL) {
		log_warn("service", "deleting expired idempotency keys failed",
		    "{s:s}", "reason", err);
	} else if (n > 0) {
		log_debug("service", "expired idempotency keys deleted",
		    "{s:I}", "count", (json_int_t)n);
	}
	/* A full batch: there may be more, go on at once. */
	service_sweep_again(svc,
	    err == NULL && n == TIMING_SWEEP_BATCH ? 0 : TIMING_SWEEP_EVERY_MS);
}

static void
service_sweep_again(struct service *svc, int64_t ms)
{
	struct timeval tv = util_tv(ms);

	event_add(svc->ev_sweep, &tv);
}

static void
service_on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct service *svc = arg;
	/* Upkeep, not an API read: on the delivery connection, leaving the
	 * API's own to requests. */
	struct pg_conn *pg = pg_is_ready(svc->pg) ? svc->pg : NULL;

	UNUSED(fd);
	UNUSED(what);
	if (svc->sweeping)
		return;
	if (svc->shutting_down || pg == NULL ||
	    store_sweep_keys(pg, TIMING_IDEMPOTENCY_TTL_MS, TIMING_SWEEP_BATCH,
		service_on_swept, svc) != 0) {
		/* The database is away: try again at the next round. */
		service_sweep_again(svc,
		    svc->shutting_down ? TIMING_SWEEP_EVERY_MS :
					 TIMING_SWEEP_FIRST_MS * 10);
		return;
	}
	svc->sweeping = true;
}
