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
 * its own index scan). Every read in a statement arrived before it was
 * sent, so none sees older data than a statement of its own would. An
 * idle service sends each read at once, alone.
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

#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "pgpool.h"
#include "redis.h"
#include "scheduler.h"
#include "service.h"
#include "store.h"
#include "streak.h"
#include "util.h"

/* Most reads one statement answers. */
#define SERVICE_BATCH_MAX 32

/* One read, waiting here or in a statement. */
struct service_read {
	STAILQ_ENTRY(service_read) next;
	service_list_cb cb;
	void *arg;
	struct store_page page;
};

STAILQ_HEAD(service_read_list, service_read);

/* The reads one statement answers, in order. */
struct service_batch {
	struct service *svc;
	struct service_read_list reads;
};

struct service {
	struct pg_conn *pg;
	struct pgpool *api;
	struct redis_client *redis;
	struct sched *sched;
	bool shutting_down;
	struct event *ev_send; /* sends waiting reads, from the loop */
	struct service_read_list waiting; /* reads not sent yet */
	size_t batches;			  /* statements of reads in flight */
	size_t queries;			  /* reads waiting or in flight */
	size_t max_queries;		  /* the bound on them */
	size_t refused; /* SVC_BUSY answers since the bound was hit */
	struct streak list_failing;
};

static void service_on_send(evutil_socket_t fd, short what, void *arg);
static void service_fail_waiting(struct service *svc, enum svc_err err);

struct service *
service_new(struct event_base *base, struct pg_conn *pg, struct pgpool *api,
    struct redis_client *redis, struct sched *sched, size_t max_queries)
{
	struct service *svc = xcalloc(1, sizeof(*svc));

	svc->ev_send = event_new(base, -1, 0, service_on_send, svc);
	STAILQ_INIT(&svc->waiting);
	svc->pg = pg;
	svc->api = api;
	svc->redis = redis;
	svc->sched = sched;
	svc->max_queries = max_queries > 0 ? max_queries : 1;
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
service_db_err(struct streak *s, const char *err)
{
	(void)streak_hit(s, "{s:s}", "reason", err);
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

/* Answers r (msgs are borrowed for the call) and gives its place back. */
static void
service_read_finish(struct service *svc, struct service_read *r,
    enum svc_err err, const struct message *msgs, size_t n)
{
	r->cb(r->arg, err, msgs, n);
	free(r);
	svc->queries--;
	if (svc->refused > 0 && svc->queries <= svc->max_queries / 2) {
		log_info("service", "API queries below their limit again",
		    "{s:I}", "refused", (json_int_t)svc->refused);
		svc->refused = 0;
	}
}

static void
service_fail_list(struct service *svc, struct service_read_list *reads,
    enum svc_err err)
{
	struct service_read *r;

	while ((r = STAILQ_FIRST(reads)) != NULL) {
		STAILQ_REMOVE_HEAD(reads, next);
		service_read_finish(svc, r, err, NULL, 0);
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
    size_t npages, const char *err)
{
	struct service_batch *b = arg;
	struct service *svc = b->svc;
	struct service_read *r;
	size_t page = 0, at = 0;

	svc->batches--;
	if (err != NULL) {
		service_fail_list(svc, &b->reads,
		    service_db_err(&svc->list_failing, err));
	} else {
		streak_end(&svc->list_failing);
		while ((r = STAILQ_FIRST(&b->reads)) != NULL) {
			size_t n = counts[page++];

			assert(page <= npages);
			STAILQ_REMOVE_HEAD(&b->reads, next);
			service_read_finish(svc, r, SVC_OK, msgs + at, n);
			at += n;
		}
	}
	free(b);
	service_send_reads(svc);
}

/* Sends waiting reads while a connection has no statement of them in
 * flight, up to SERVICE_BATCH_MAX in each. Runs from the loop (never
 * inside service_list_sent), so it may answer reads. */
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

			STAILQ_REMOVE_HEAD(&svc->waiting, next);
			STAILQ_INSERT_TAIL(&b->reads, r, next);
			pages[n++] = r->page;
		}
		if (store_list_sent(pg, pages, n, service_on_listed, b) != 0) {
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
service_list_sent(struct service *svc, int limit, int offset,
    service_list_cb cb, void *arg)
{
	struct service_read *r;
	enum svc_err err;

	if (pgpool_ready(svc->api) == 0 && !pg_is_ready(svc->pg))
		return SVC_UNAVAILABLE;
	if ((err = service_admit(svc)) != SVC_OK)
		return err;
	r = xmalloc(sizeof(*r));
	r->cb = cb;
	r->arg = arg;
	r->page.limit = limit;
	r->page.offset = offset;
	svc->queries++;
	STAILQ_INSERT_TAIL(&svc->waiting, r, next);
	event_active(svc->ev_send, EV_TIMEOUT, 0);
	return SVC_OK;
}
