/* cacheheal.c - cache entries missed during a Redis outage, rewritten
 * from PostgreSQL (see cacheheal.h). */
#include <stdbool.h>
#include <stdlib.h>

#include "cache.h"
#include "cacheheal.h"
#include "log.h"
#include "store.h"
#include "timing.h"
#include "util.h"

/* Rows per page, and the Redis writes still unanswered below which the
 * next page is read: bounds what one pass holds in memory. */
#define CACHEHEAL_PAGE 500
#define CACHEHEAL_PENDING_MAX 100

struct cacheheal {
	struct pg_conn *pg;
	struct redis_client *rc;
	int64_t ttl_ms;
	struct event *ev_tick;
	bool querying;	  /* a page is being read */
	bool in_pass;	  /* a pass is under way */
	int64_t since_ms; /* this pass's start (wall clock) */
	uint64_t misses;  /* cache_miss_count() when it began */
	char *cursor;	  /* the last row's sent_at, NULL before any */
	int64_t after_id; /* and its id */
	uint64_t written; /* entries written by this pass */
	bool finishing;	  /* every page read; its writes not all answered */
	/* Until its pass is done, when this process started: an instance
	 * killed between committing a sent outcome and writing its entry
	 * never wrote it, and no survivor knows, so each start rewrites what
	 * was sent since TIMING_CACHE_HEAL_MARGIN_MS before it (a restart
	 * within that covers its predecessor's last writes). */
	int64_t start_ms;
	bool start_pass; /* this pass covers the start's */
};

static void cacheheal_next(struct cacheheal *h);

static void
cacheheal_end_pass(struct cacheheal *h)
{
	free(h->cursor);
	h->cursor = NULL;
	h->after_id = 0;
	h->in_pass = false;
}

static void
cacheheal_on_page(void *arg, const struct cached *rows, size_t n,
    const char *err)
{
	struct cacheheal *h = arg;

	h->querying = false;
	if (err != NULL) {
		/* The database is away: the same page next tick. */
		log_debug("cacheheal", "cannot read sent messages, will retry",
		    "{s:s}", "reason", err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (cache_put_sent(h->rc, rows[i].id, rows[i].response_id,
			rows[i].sent_at, rows[i].ttl_ms) != 0) {
			/* Redis went again: the pass starts over once it is
			 * back (the miss keeps cache_missed_since set). */
			cacheheal_end_pass(h);
			return;
		}
		h->written++;
	}
	if (n == CACHEHEAL_PAGE) {
		free(h->cursor);
		h->cursor = xstrdup(rows[n - 1].cursor);
		h->after_id = rows[n - 1].id;
		cacheheal_next(h);
		return;
	}
	h->finishing = true;
}

/* Every page was written: once Redis has answered all of it, the pass is
 * done if no write was missed meanwhile, its own included; otherwise the
 * next one starts over from the same point. */
static void
cacheheal_finish(struct cacheheal *h)
{
	bool missed;

	if (redis_pending(h->rc) > 0)
		return;
	h->finishing = false;
	cacheheal_end_pass(h);
	if (cache_miss_count() != h->misses)
		return;
	missed = cache_missed_since() != 0;
	cache_missed_rewritten();
	if (h->start_pass)
		h->start_ms = 0;
	if (missed)
		log_info("cacheheal",
		    "cache entries missed while redis was down rewritten",
		    "{s:I}", "written", (json_int_t)h->written);
	else if (h->written > 0)
		log_info("cacheheal",
		    "cache entries sent shortly before start rewritten",
		    "{s:I}", "written", (json_int_t)h->written);
}

static void
cacheheal_next(struct cacheheal *h)
{
	if (h->querying || !h->in_pass ||
	    redis_pending(h->rc) > CACHEHEAL_PENDING_MAX)
		return;
	if (store_sent_since(h->pg, h->since_ms, h->ttl_ms, h->cursor,
		h->after_id, CACHEHEAL_PAGE, cacheheal_on_page, h) == 0)
		h->querying = true;
}

static void
cacheheal_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct cacheheal *h = arg;
	int64_t since = cache_missed_since();

	UNUSED(fd);
	UNUSED(what);
	if (h->finishing) {
		cacheheal_finish(h);
		return;
	}
	if (h->in_pass) {
		cacheheal_next(h);
		return;
	}
	/* Writes in flight may still fail: begin once Redis has answered
	 * them all, so that their misses count towards this pass. */
	if (h->start_ms != 0 && (since == 0 || h->start_ms < since))
		since = h->start_ms;
	if (since == 0 || !redis_is_ready(h->rc) || redis_pending(h->rc) > 0 ||
	    !pg_is_ready(h->pg))
		return;
	h->in_pass = true;
	h->start_pass = h->start_ms != 0;
	h->since_ms = since - TIMING_CACHE_HEAL_MARGIN_MS;
	h->misses = cache_miss_count();
	h->written = 0;
	if (h->start_pass)
		log_debug("cacheheal",
		    "rewriting cache entries sent shortly before start",
		    "{s:I}", "since_ms", (json_int_t)h->since_ms);
	else
		log_info("cacheheal",
		    "rewriting cache entries missed while redis was down",
		    "{s:I}", "since_ms", (json_int_t)h->since_ms);
	cacheheal_next(h);
}

struct cacheheal *
cacheheal_new(struct event_base *base, struct pg_conn *pg,
    struct redis_client *rc, int64_t ttl_ms)
{
	struct cacheheal *h = xcalloc(1, sizeof(*h));
	struct timeval tv = util_tv(TIMING_CACHE_HEAL_MS);

	h->pg = pg;
	h->rc = rc;
	h->ttl_ms = ttl_ms;
	h->start_ms = util_wall_ms();
	h->ev_tick = event_new(base, -1, EV_PERSIST, cacheheal_on_tick, h);
	event_add(h->ev_tick, &tv);
	return h;
}

void
cacheheal_free(struct cacheheal *h)
{
	if (h == NULL)
		return;
	event_free(h->ev_tick);
	free(h->cursor);
	free(h);
}
