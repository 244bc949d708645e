/* backlog.c - the pending backlog for the metrics, counted now and then.
 *
 * One count at a time: the next is armed when the last is answered, so
 * a slow or frozen database never piles them up. While the database is
 * down the gauges keep the last count: gopulse_postgres_up says why it
 * is not moving. */
#include <stdlib.h>

#include "backlog.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "timing.h"
#include "util.h"

/* Until the database first answers (start-up), the count is tried this
 * often rather than once per TIMING_BACKLOG_MS. */
#define BACKLOG_RETRY_MS 1000

struct backlog {
	struct pg_conn *pg;
	struct event *ev_tick;
	bool counting;
	bool stopped;
};

static void
backlog_arm(struct backlog *b, int64_t ms)
{
	struct timeval tv = util_tv(ms);

	if (!b->stopped)
		event_add(b->ev_tick, &tv);
}

static void
backlog_on_counted(void *arg, int64_t pending, int64_t due, const char *err)
{
	struct backlog *b = arg;

	b->counting = false;
	backlog_arm(b, TIMING_BACKLOG_MS);
	if (err != NULL) {
		log_debug("backlog", "backlog count failed", "{s:s}", "reason",
		    err);
		return;
	}
	metrics.pending = pending;
	metrics.due = due;
}

static void
backlog_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct backlog *b = arg;

	UNUSED(fd);
	UNUSED(what);
	if (store_count_backlog(b->pg, backlog_on_counted, b) == 0)
		b->counting = true;
	else
		backlog_arm(b,
		    metrics.pending < 0 ? BACKLOG_RETRY_MS : TIMING_BACKLOG_MS);
}

struct backlog *
backlog_new(struct event_base *base, struct pg_conn *pg)
{
	struct backlog *b = xcalloc(1, sizeof(*b));

	b->pg = pg;
	b->ev_tick = evtimer_new(base, backlog_on_tick, b);
	return b;
}

void
backlog_start(struct backlog *b)
{
	b->stopped = false;
	backlog_arm(b, 0);
}

void
backlog_stop(struct backlog *b)
{
	b->stopped = true;
	event_del(b->ev_tick);
}

bool
backlog_busy(const struct backlog *b)
{
	return b->counting;
}

void
backlog_free(struct backlog *b)
{
	if (b == NULL)
		return;
	event_free(b->ev_tick);
	free(b);
}
