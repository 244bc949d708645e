/* service.c - everything the REST API may ask of the service, over the
 * drivers, the store and the scheduler.
 *
 * Reads go to the API's own connections (pgpool), never behind the
 * scheduler's claims and outcome writes on the delivery connection; only
 * while none of them is ready (PostgreSQL restarting, or
 * API_DB_CONNECTIONS=0) do they fall back to the delivery connection,
 * which keeps the API answering rather than failing. Every API query counts against one bound
 * from the moment it is queued until its callback: past it a call answers
 * SVC_BUSY at once, so a stalled database or a flood of clients holds at
 * most max_queries queries and their requests, never an unbounded queue.
 * A query whose HTTP request already timed out still counts until the
 * database answers it: the bound is on the database's work, not on
 * requests. */
#include <stdlib.h>

#include "log.h"
#include "pg.h"
#include "pgpool.h"
#include "redis.h"
#include "scheduler.h"
#include "service.h"
#include "store.h"
#include "util.h"

struct service {
	struct pg_conn *pg;
	struct pgpool *api;
	struct redis_client *redis;
	struct sched *sched;
	size_t queries;	    /* API queries waiting or running */
	size_t max_queries; /* the bound on them */
	size_t refused;	    /* SVC_BUSY answers since the bound was hit */
};

/* One asynchronous call on its way through the store. */
struct service_call {
	struct service *svc;
	union {
		service_list_cb list;
	} cb;
	void *arg;
};

struct service *
service_new(struct pg_conn *pg, struct pgpool *api, struct redis_client *redis,
    struct sched *sched, size_t max_queries)
{
	struct service *svc = xcalloc(1, sizeof(*svc));

	svc->pg = pg;
	svc->api = api;
	svc->redis = redis;
	svc->sched = sched;
	svc->max_queries = max_queries > 0 ? max_queries : 1;
	return svc;
}

void
service_free(struct service *svc)
{
	free(svc);
}

void
service_status(const struct service *svc, struct service_status *st)
{
	st->ready = pg_is_ready(svc->pg);
	st->database = pg_state_name(pg_get_state(svc->pg));
	st->redis = redis_state_name(redis_get_state(svc->redis));
	st->sending = sched_is_active(svc->sched);
	st->api_connections = pgpool_size(svc->api);
	st->api_ready = pgpool_ready(svc->api);
	st->api_queries = svc->queries;
	st->api_queries_max = svc->max_queries;
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

/* A store error is a database that is down or failed the query: either
 * way the caller can only try again later. */
static enum svc_err
service_db_err(const char *what, const char *err)
{
	log_warn("service", what, "{s:s}", "reason", err);
	return SVC_UNAVAILABLE;
}

/* Where an API query goes: the least busy ready API connection, else the
 * delivery connection if it is ready, else nowhere (NULL). */
static struct pg_conn *
service_read_conn(struct service *svc)
{
	struct pg_conn *pg = pgpool_pick(svc->api);

	if (pg == NULL && pg_is_ready(svc->pg))
		pg = svc->pg;
	return pg;
}

/* Takes a place under the bound for a new API query, or says why not. */
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

static void
service_call_done(struct service_call *c)
{
	struct service *svc = c->svc;

	svc->queries--;
	if (svc->refused > 0 && svc->queries <= svc->max_queries / 2) {
		log_info("service", "API queries below their limit again",
		    "{s:I}", "refused", (json_int_t)svc->refused);
		svc->refused = 0;
	}
	free(c);
}

static struct service_call *
service_call_new(struct service *svc, void *arg)
{
	struct service_call *c = xmalloc(sizeof(*c));

	c->svc = svc;
	c->arg = arg;
	svc->queries++;
	return c;
}

/* The store refused the call (the connection went down meanwhile). */
static enum svc_err
service_call_refused(struct service_call *c)
{
	service_call_done(c);
	return SVC_UNAVAILABLE;
}

static void
service_on_listed(void *arg, const struct message *msgs, size_t n,
    const char *err)
{
	struct service_call *c = arg;

	if (err != NULL)
		c->cb.list(c->arg,
		    service_db_err("listing messages failed", err), NULL, 0);
	else
		c->cb.list(c->arg, SVC_OK, msgs, n);
	service_call_done(c);
}

enum svc_err
service_list_sent(struct service *svc, int limit, int offset,
    service_list_cb cb, void *arg)
{
	struct pg_conn *pg = service_read_conn(svc);
	struct service_call *c;
	enum svc_err err;

	if (pg == NULL)
		return SVC_UNAVAILABLE;
	if ((err = service_admit(svc)) != SVC_OK)
		return err;
	c = service_call_new(svc, arg);
	c->cb.list = cb;
	if (store_list_sent(pg, limit, offset, service_on_listed, c) != 0)
		return service_call_refused(c);
	return SVC_OK;
}
