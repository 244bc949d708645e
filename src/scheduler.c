/* scheduler.c - automatic sending.
 *
 * A run claims a window of due messages (at most WEBHOOK_CONCURRENCY),
 * posts them all, and once every one has an outcome written claims the
 * next window, until its quota (SCHEDULER_BATCH_SIZE per tick, or no
 * limit when draining) is used or nothing is due. Ticks that find a run
 * still going are skipped; a drain asked for meanwhile (stop + start
 * during a window) is queued and begins when that run ends. Outcomes are
 * written in batches: everything that completed in one loop iteration
 * goes out as one statement.
 *
 * The scheduler counts only its own posts (the deliveries list): the
 * webhook client may have other users, whose requests must neither
 * shrink our windows nor hold them open. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "outcome.h"
#include "pg.h"
#include "redis.h"
#include "scheduler.h"
#include "store.h"
#include "timing.h"
#include "util.h"
#include "webhook.h"

enum sched_run {
	RUN_IDLE,
	RUN_WAITING, /* for the database, to claim */
	RUN_CLAIMING,
	RUN_SENDING,
};

/* Most ids one run skips after refusals (see sched_refused); past it
 * the run ends and the next one starts with an empty list. */
#define SCHED_SKIP_MAX 1024

/* One POST of ours in flight. It exists only while on s->deliveries:
 * linked right after webhook_post accepts it, unlinked when its callback
 * starts, then freed; in_flight mirrors that for the asserts and is set
 * nowhere else. */
struct delivery {
	TAILQ_ENTRY(delivery) link;
	struct sched *s;
	int64_t id;
	int retry_count;
	bool in_flight;
	char lease_token[40];
};

TAILQ_HEAD(delivery_list, delivery);

struct sched {
	const struct config *cfg;
	struct pg_conn *pg;
	struct webhook *wh;
	struct redis_client *redis;
	struct event *ev_tick;
	struct event *ev_flush;
	struct event *ev_retry; /* claims again after RUN_WAITING */
	bool active;
	bool db_warned; /* one warning per database outage */
	enum sched_run run;
	long long run_left;  /* messages this run may still claim; -1 = all */
	long long window;    /* size of the last claim */
	bool maybe_more;     /* the last claim filled its window */
	bool window_refused; /* the webhook refused a post of this window */
	bool drain_queued;   /* start asked for a drain during a run */
	/* our posts in flight, and how many */
	struct delivery_list deliveries;
	size_t ninflight;
	size_t releasing; /* release statements not yet answered */
	/* ids refused during this run, which its claims leave alone */
	int64_t *skip;
	size_t nskip, cap_skip;
	/* outcomes waiting to be written, and those being written */
	struct outcome *pending;
	size_t npending, cap_pending;
	struct outcome *writing;
	size_t nwriting;
};

static void sched_claim(struct sched *s);
static void sched_run_begin(struct sched *s, long long quota, const char *why);

static void
sched_delivery_link(struct sched *s, struct delivery *d)
{
	assert(!d->in_flight);
	assert(s->ninflight < (size_t)s->cfg->webhook_concurrency);
	TAILQ_INSERT_TAIL(&s->deliveries, d, link);
	d->in_flight = true;
	s->ninflight++;
}

static void
sched_delivery_unlink(struct sched *s, struct delivery *d)
{
	assert(d->in_flight);
	assert(s->ninflight > 0);
	TAILQ_REMOVE(&s->deliveries, d, link);
	d->in_flight = false;
	s->ninflight--;
	assert((s->ninflight == 0) == TAILQ_EMPTY(&s->deliveries));
}

/* Room for n more outcomes in the pending buffer. */
static void
sched_reserve(struct sched *s, size_t n)
{
	size_t cap = s->cap_pending ? s->cap_pending : 16;

	if (s->npending + n <= s->cap_pending)
		return;
	while (cap < s->npending + n)
		cap *= 2;
	s->pending = realloc(s->pending, cap * sizeof(*s->pending));
	if (s->pending == NULL)
		abort();
	s->cap_pending = cap;
}

/* One warning per outage. While the first connect is still under way
 * (boot) there is no outage yet, only a wait. */
static void
sched_db_trouble(struct sched *s, const char *what, const char *reason)
{
	enum pg_state st = pg_get_state(s->pg);

	if (s->db_warned || st == PG_CONNECTING || st == PG_SETUP) {
		log_debug("scheduler", what, "{s:s}", "reason", reason);
		return;
	}
	log_warn("scheduler", what, "{s:s}", "reason", reason);
	s->db_warned = true;
}

/* The run keeps its quota and claims again after delay_ms. */
static void
sched_pause(struct sched *s, int64_t delay_ms)
{
	struct timeval tv = util_tv(delay_ms);

	s->run = RUN_WAITING;
	event_add(s->ev_retry, &tv);
}

/* A drain requested at boot, before the first connect, is not lost. */
static void
sched_wait_db(struct sched *s, const char *reason)
{
	sched_db_trouble(s, "cannot claim, will retry", reason);
	sched_pause(s, TIMING_DB_RETRY_MS);
}

static void
sched_run_end(struct sched *s, const char *why)
{
	if (s->run == RUN_IDLE)
		return;
	/* Runs end only between windows. */
	assert(s->ninflight == 0);
	s->run = RUN_IDLE;
	log_debug("scheduler", "run finished", "{s:s, s:I}", "reason", why,
	    "refused", (json_int_t)s->nskip);
	if (s->active && s->drain_queued) {
		s->drain_queued = false;
		sched_run_begin(s, -1, "drain queued during a run");
	}
}

/* A window is over when every request has an outcome and every outcome
 * is written; only then is the next one claimed, so a window's messages
 * are never claimed twice by our own runs. */
static void
sched_window_check(struct sched *s)
{
	if (s->run != RUN_SENDING || s->ninflight > 0 || s->npending > 0 ||
	    s->writing != NULL || s->releasing > 0)
		return;
	if (!s->active)
		sched_run_end(s, "stopped");
	else if (!s->maybe_more || s->run_left == 0)
		sched_run_end(s, "done");
	else if (s->nskip >= SCHED_SKIP_MAX)
		sched_run_end(s, "too many refused");
	else if (s->window_refused)
		sched_pause(s, TIMING_REFUSED_PAUSE_MS);
	else
		sched_claim(s);
}

static void
sched_arm_flush(struct sched *s, int64_t delay_ms)
{
	struct timeval tv = util_tv(delay_ms);

	if (!event_pending(s->ev_flush, EV_TIMEOUT, NULL))
		event_add(s->ev_flush, &tv);
}

static void
sched_on_recorded(void *arg, const struct recorded *rows, size_t n,
    const char *err)
{
	struct sched *s = arg;
	size_t nwriting = s->nwriting;

	if (err != NULL) {
		/* Keep them: the write is guarded, so trying again is safe
		 * whether or not the lost one committed. */
		sched_db_trouble(s, "could not record outcomes, will retry",
		    err);
		sched_reserve(s, nwriting);
		memcpy(s->pending + s->npending, s->writing,
		    nwriting * sizeof(*s->writing));
		s->npending += nwriting;
		free(s->writing);
		s->writing = NULL;
		s->nwriting = 0;
		sched_arm_flush(s, TIMING_DB_RETRY_MS);
		return;
	}
	s->db_warned = false;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].status == STORE_SENT) {
			log_info("scheduler", "message sent", "{s:I, s:s?}",
			    "id", (json_int_t)rows[i].id, "messageId",
			    rows[i].response_id);
			/* Fire and forget: the cache logs its own failures. */
			(void)cache_put_sent(s->redis, rows[i].id,
			    rows[i].response_id, rows[i].sent_at,
			    s->cfg->cache_ttl_ms);
		} else if (rows[i].status == STORE_FAILED) {
			log_warn("scheduler", "message failed", "{s:I}", "id",
			    (json_int_t)rows[i].id);
		}
	}
	if (n < nwriting)
		log_warn("scheduler", "outcomes not recorded: lease lost",
		    "{s:I}", "count", (json_int_t)(nwriting - n));
	for (size_t i = 0; i < nwriting; i++)
		outcome_fini(&s->writing[i]);
	free(s->writing);
	s->writing = NULL;
	s->nwriting = 0;
	if (s->npending > 0)
		sched_arm_flush(s, 0);
	sched_window_check(s);
}

static enum store_status
sched_store_status(enum outcome_kind kind)
{
	switch (kind) {
	case OUTCOME_SENT:
		return STORE_SENT;
	case OUTCOME_FAILED:
		return STORE_FAILED;
	case OUTCOME_RETRY:
		return STORE_PENDING;
	}
	assert(!"unknown outcome kind");
	return STORE_PENDING;
}

/* The row borrows o's strings: o lives in s->writing until the answer. */
static void
sched_store_row(const struct outcome *o, struct store_outcome *row)
{
	row->id = o->id;
	row->lease_token = o->lease_token;
	row->status = sched_store_status(o->kind);
	row->code = o->code;
	row->response_id = o->response_id;
	row->error = o->error;
	row->retry_count = o->retry_count;
	row->delay_ms = o->delay_ms;
}

static void
sched_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct store_outcome *rows;
	int rc;

	UNUSED(fd);
	UNUSED(what);
	if (s->writing != NULL || s->npending == 0)
		return;
	s->writing = s->pending;
	s->nwriting = s->npending;
	s->pending = NULL;
	s->npending = s->cap_pending = 0;
	rows = xcalloc(s->nwriting, sizeof(*rows));
	for (size_t i = 0; i < s->nwriting; i++)
		sched_store_row(&s->writing[i], &rows[i]);
	rc = store_record_outcomes(s->pg, rows, s->nwriting, sched_on_recorded,
	    s);
	free(rows);
	if (rc != 0)
		sched_on_recorded(s, NULL, 0, "database unavailable");
}

static void
sched_on_delivered(void *arg, const struct webhook_result *res)
{
	struct delivery *d = arg;
	struct sched *s = d->s;
	struct outcome *o;

	sched_delivery_unlink(s, d);
	if (res->aborted) {
		/* Nothing is known: the lease runs out and it is sent again. */
		free(d);
		sched_window_check(s);
		return;
	}
	sched_reserve(s, 1);
	o = &s->pending[s->npending++];
	outcome_decide(o, res, d->retry_count, s->cfg->max_attempts,
	    s->cfg->retry_base_delay_ms);
	memcpy(o->lease_token, d->lease_token, sizeof(o->lease_token));
	if (o->warn_no_id)
		log_warn("scheduler", "webhook accepted without a messageId",
		    "{s:I, s:i}", "id", (json_int_t)d->id, "status",
		    (int)res->http_status);
	if (o->kind != OUTCOME_SENT)
		log_info("scheduler", "delivery attempt failed",
		    "{s:I, s:s, s:s, s:I}", "id", (json_int_t)d->id, "error",
		    o->error, "next", outcome_status(o->kind), "retry_in_ms",
		    (json_int_t)o->delay_ms);
	free(d);
	sched_arm_flush(s, 0);
}

static void
sched_on_released(void *arg, size_t n, const char *err)
{
	struct sched *s = arg;

	assert(s->releasing > 0);
	s->releasing--;
	/* Not kept for a retry: a release only saves time, and a lost one
	 * costs nothing but the wait for its lease to run out. */
	if (err != NULL)
		sched_db_trouble(s, "could not release refused messages", err);
	else
		log_debug("scheduler", "refused messages released", "{s:I}",
		    "count", (json_int_t)n);
	sched_window_check(s);
}

/* The webhook client refuses a post when its global cap is full (another
 * user holds the slots), when the body cannot be built (content that is
 * not valid UTF-8) or while it is being freed; it does not say which, and
 * we need not know. In every case the message was not sent, so waiting
 * for its lease (2 x WEBHOOK_TIMEOUT + 10 s) would only delay it: it is
 * released, due at once, for another instance or the next run. This run
 * skips it: claiming it again at once would fail the same way (a body
 * never becomes valid; a full client stays full for a while), and a
 * window of such messages would spin claim, refuse, release, claim. The
 * refusals go on the claim's skip list, and the next window waits a
 * moment (TIMING_REFUSED_PAUSE_MS) so a full client can drain. */
static void
sched_refused(struct sched *s, int64_t id)
{
	log_warn("scheduler", "webhook refused a request, releasing it",
	    "{s:I}", "id", (json_int_t)id);
	s->window_refused = true;
	if (s->nskip == s->cap_skip) {
		s->cap_skip = s->cap_skip ? 2 * s->cap_skip : 16;
		s->skip = realloc(s->skip, s->cap_skip * sizeof(*s->skip));
		if (s->skip == NULL)
			abort();
	}
	s->skip[s->nskip++] = id;
}

/* One statement for every refusal of the window. */
static void
sched_release(struct sched *s, const struct store_lease *l, size_t n)
{
	if (n == 0)
		return;
	if (store_release(s->pg, l, n, sched_on_released, s) != 0) {
		sched_db_trouble(s, "could not release refused messages",
		    "database unavailable");
		return;
	}
	s->releasing++;
}

static void
sched_on_claimed(void *arg, const struct claimed *rows, size_t n,
    const char *err)
{
	struct sched *s = arg;
	struct store_lease *refused = NULL; /* tokens borrowed from rows */
	size_t nrefused = 0;

	if (err != NULL) {
		if (s->active)
			sched_wait_db(s, err);
		else
			sched_run_end(s, "stopped");
		return;
	}
	assert((long long)n <= s->window);
	s->run = RUN_SENDING;
	s->db_warned = false;
	s->maybe_more = (long long)n == s->window;
	s->window_refused = false;
	if (s->run_left > 0)
		s->run_left -= (long long)n;
	assert(s->run_left >= -1);
	for (size_t i = 0; i < n; i++) {
		struct delivery *d = xcalloc(1, sizeof(*d));

		d->s = s;
		d->id = rows[i].id;
		d->retry_count = rows[i].retry_count;
		snprintf(d->lease_token, sizeof(d->lease_token), "%s",
		    rows[i].lease_token);
		if (webhook_post(s->wh, rows[i].id, rows[i].recipient,
			rows[i].content, sched_on_delivered, d) == 0) {
			sched_delivery_link(s, d);
			continue;
		}
		free(d);
		sched_refused(s, rows[i].id);
		if (refused == NULL)
			refused = xcalloc(n, sizeof(*refused));
		refused[nrefused].id = rows[i].id;
		refused[nrefused].lease_token = rows[i].lease_token;
		nrefused++;
	}
	if (n > 0)
		log_debug("scheduler", "claimed", "{s:I}", "count",
		    (json_int_t)n);
	sched_release(s, refused, nrefused);
	free(refused);
	sched_window_check(s);
}

/* The window is sized from our own budget, never from the client's
 * free slots: another user's requests must not shrink or stop a run. */
static void
sched_claim(struct sched *s)
{
	size_t budget = (size_t)s->cfg->webhook_concurrency;
	long long want;
	int64_t lease = TIMING_LEASE_MS(s->cfg->webhook_timeout_ms);

	assert(s->ninflight <= budget);
	want = (long long)(budget - s->ninflight);
	if (s->run_left >= 0 && s->run_left < want)
		want = s->run_left;
	if (want <= 0) {
		sched_run_end(s, "no capacity");
		return;
	}
	s->run = RUN_CLAIMING;
	s->window = want;
	if (store_claim_due(s->pg, (int)want, lease, s->skip, s->nskip,
		sched_on_claimed, s) != 0)
		sched_wait_db(s, "database unavailable");
}

static void
sched_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;

	UNUSED(fd);
	UNUSED(what);
	if (s->run != RUN_WAITING)
		return;
	if (!s->active)
		sched_run_end(s, "stopped");
	else
		sched_claim(s);
}

static void
sched_run_begin(struct sched *s, long long quota, const char *why)
{
	if (!s->active)
		return;
	if (s->run != RUN_IDLE) {
		if (quota < 0) {
			/* Stop + start during a window: the old run may be a
			 * tick's, with a quota nearly used, or may have seen
			 * its last claim before new messages came. Growing it
			 * in place would depend on where it is; a fresh drain
			 * when it ends claims everything due, always. */
			s->drain_queued = true;
			log_info("scheduler",
			    "drain queued: previous run still "
			    "in progress",
			    "{s:s}", "trigger", why);
			return;
		}
		log_info("scheduler",
		    "tick skipped: previous run still in "
		    "progress",
		    "{s:s}", "trigger", why);
		return;
	}
	assert(s->ninflight == 0 && s->releasing == 0);
	log_debug("scheduler", "run started", "{s:s, s:I}", "trigger", why,
	    "quota", (json_int_t)quota);
	s->run_left = quota;
	s->nskip = 0;
	s->window_refused = false;
	sched_claim(s);
}

static void
sched_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;

	UNUSED(fd);
	UNUSED(what);
	sched_run_begin(s,
	    s->cfg->scheduler_batch_size > 0 ? s->cfg->scheduler_batch_size :
					       -1,
	    "tick");
}

struct sched *
sched_new(struct event_base *base, const struct config *cfg, struct pg_conn *pg,
    struct webhook *wh, struct redis_client *redis)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->pg = pg;
	s->wh = wh;
	s->redis = redis;
	TAILQ_INIT(&s->deliveries);
	s->ev_tick = event_new(base, -1, EV_PERSIST, sched_on_tick, s);
	s->ev_flush = evtimer_new(base, sched_on_flush, s);
	s->ev_retry = evtimer_new(base, sched_on_retry, s);
	return s;
}

bool
sched_start(struct sched *s)
{
	struct timeval tv = util_tv(s->cfg->scheduler_interval_ms);

	if (s->active)
		return false;
	s->active = true;
	event_add(s->ev_tick, &tv);
	log_info("scheduler", "automatic sending started", "{s:I, s:i, s:b}",
	    "interval_ms", (json_int_t)s->cfg->scheduler_interval_ms,
	    "batch_size", s->cfg->scheduler_batch_size, "drain",
	    s->cfg->drain_on_start);
	if (s->cfg->drain_on_start)
		sched_run_begin(s, -1, "drain on start");
	return true;
}

bool
sched_stop(struct sched *s)
{
	if (!s->active)
		return false;
	s->active = false;
	s->drain_queued = false;
	event_del(s->ev_tick);
	if (s->run == RUN_WAITING) {
		event_del(s->ev_retry);
		sched_run_end(s, "stopped");
	}
	log_info("scheduler", "automatic sending stopped", "{s:I}", "in_flight",
	    (json_int_t)s->ninflight);
	return true;
}

bool
sched_is_active(const struct sched *s)
{
	return s->active;
}

bool
sched_busy(const struct sched *s)
{
	return s->run == RUN_CLAIMING || s->ninflight > 0 || s->npending > 0 ||
	    s->writing != NULL || s->releasing > 0;
}

size_t
sched_inflight(const struct sched *s)
{
	return s->ninflight;
}

size_t
sched_unrecorded(const struct sched *s)
{
	return s->npending + s->nwriting;
}

/* The webhook and database are freed first by the app, so every callback
 * that could touch us has already run. */
void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	assert(s->ninflight == 0 && TAILQ_EMPTY(&s->deliveries));
	for (size_t i = 0; i < s->npending; i++)
		outcome_fini(&s->pending[i]);
	free(s->pending);
	for (size_t i = 0; i < s->nwriting; i++)
		outcome_fini(&s->writing[i]);
	free(s->writing);
	free(s->skip);
	event_free(s->ev_tick);
	event_free(s->ev_flush);
	event_free(s->ev_retry);
	free(s);
}
