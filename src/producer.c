/* producer.c - inserts one fake pending message every interval. */
#include <stdlib.h>

#include "fake.h"
#include "log.h"
#include "metrics.h"
#include "pg.h"
#include "producer.h"
#include "store.h"
#include "streak.h"
#include "util.h"

struct producer {
	struct pg_conn *pg;
	struct event *ev_tick;
	int64_t interval_ms;
	bool in_flight; /* the overlap guard */
	/* Ticks skipped, logged as streaks: a database down for an hour
	 * is one line and a summary a minute, not a line per tick. */
	struct streak busy, down;
};

static void
prod_on_inserted(void *arg, int64_t id, const char *err)
{
	struct producer *p = arg;

	p->in_flight = false;
	if (err != NULL) {
		log_warn("producer", "could not create a message", "{s:s}",
		    "reason", err);
		return;
	}
	metrics.produced++;
	log_info("producer", "Successfully created a new message", "{s:I}",
	    "id", (json_int_t)id);
}

static void
prod_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct producer *p = arg;
	char to[FAKE_PHONE_MAX], content[FAKE_CONTENT_MAX];

	UNUSED(fd);
	UNUSED(what);
	/* A slow insert must not pile up ticks behind it. */
	if (p->in_flight) {
		(void)streak_hit(&p->busy, NULL);
		return;
	}
	streak_end(&p->busy);
	fake_phone(to);
	fake_sentence(content);
	if (store_insert_message(p->pg, to, content, prod_on_inserted, p) !=
	    0) {
		(void)streak_hit(&p->down, NULL);
		return;
	}
	streak_end(&p->down);
	p->in_flight = true;
}

struct producer *
prod_new(struct event_base *base, struct pg_conn *pg, int64_t interval_ms)
{
	struct producer *p = xcalloc(1, sizeof(*p));

	p->pg = pg;
	p->busy = (struct streak)STREAK_INIT(LOG_WARN, "producer",
	    "tick skipped: previous insert still in flight",
	    "ticks still skipped: previous insert still in flight",
	    "inserts keep up with ticks again");
	p->down = (struct streak)STREAK_INIT(LOG_WARN, "producer",
	    "tick skipped: database unavailable",
	    "ticks still skipped: database unavailable",
	    "producer ticks insert again");
	p->interval_ms = interval_ms;
	p->ev_tick = event_new(base, -1, EV_PERSIST, prod_on_tick, p);
	return p;
}

void
prod_start(struct producer *p)
{
	struct timeval tv = util_tv(p->interval_ms);

	if (p->interval_ms <= 0) {
		log_info("producer", "producer off (PRODUCER_INTERVAL=0)",
		    NULL);
		return;
	}
	event_add(p->ev_tick, &tv);
	log_info("producer", "producer started", "{s:I}", "interval_ms",
	    (json_int_t)p->interval_ms);
}

void
prod_stop(struct producer *p)
{
	event_del(p->ev_tick);
}

bool
prod_busy(const struct producer *p)
{
	return p->in_flight;
}

void
prod_free(struct producer *p)
{
	if (p == NULL)
		return;
	event_free(p->ev_tick);
	free(p);
}
