/* service.c - everything the REST API may ask of the service, over the
 * drivers, the store and the scheduler. */
#include <stdlib.h>

#include "log.h"
#include "pg.h"
#include "redis.h"
#include "scheduler.h"
#include "service.h"
#include "store.h"
#include "util.h"

struct service {
	struct pg_conn *pg;
	struct redis_client *redis;
	struct sched *sched;
	bool shutting_down;
};

/* One asynchronous call on its way through the store. */
struct service_call {
	union {
		service_list_cb list;
	} cb;
	void *arg;
};

struct service *
service_new(struct pg_conn *pg, struct redis_client *redis, struct sched *sched)
{
	struct service *svc = xcalloc(1, sizeof(*svc));

	svc->pg = pg;
	svc->redis = redis;
	svc->sched = sched;
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
	st->shutting_down = svc->shutting_down;
	st->ready = !svc->shutting_down && pg_is_ready(svc->pg);
	st->database = pg_state_name(pg_get_state(svc->pg));
	st->redis = redis_state_name(redis_get_state(svc->redis));
	st->sending = sched_is_active(svc->sched);
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

/* A store error is a database that is down or failed the query: either
 * way the caller can only try again later. */
static enum svc_err
service_db_err(const char *what, const char *err)
{
	log_warn("service", what, "{s:s}", "reason", err);
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
	free(c);
}

enum svc_err
service_list_sent(struct service *svc, int limit, int offset,
    service_list_cb cb, void *arg)
{
	struct service_call *c;

	if (!pg_is_ready(svc->pg))
		return SVC_UNAVAILABLE;
	c = xmalloc(sizeof(*c));
	c->cb.list = cb;
	c->arg = arg;
	if (store_list_sent(svc->pg, limit, offset, service_on_listed, c) !=
	    0) {
		free(c);
		return SVC_UNAVAILABLE;
	}
	return SVC_OK;
}
