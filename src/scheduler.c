/* scheduler.c - automatic sending.
 *
 * A run claims due messages ahead of need. It keeps up to
 * WEBHOOK_CONCURRENCY (its budget) of its own posts in flight, and more
 * claimed and waiting for a slot, so that a request that finishes is
 * replaced at once: curl never waits on the database, even when a claim
 * takes a while. One claim is out at a time, and a large one (fewer
 * statements cost the database less per message). A run goes on until its quota (SCHEDULER_BATCH_SIZE per
 * tick, or no limit when draining) is used or a claim finds fewer due
 * messages than it asked for. Ticks that find a run still going are
 * skipped; a drain asked for meanwhile (stop + start during a run) is
 * queued and begins when that run ends.
 *
 * A claimed message is never claimed again while it is ours: its claim
 * moved its next_attempt_at to the lease's end, and only its outcome (or
 * a release) makes it due again. One that waited longer for a slot than
 * the lease can cover is released, not sent; so are those still waiting
 * when sending stops. Outcomes are written in batches, one statement at
 * a time: those that finish while a write is out go together in the next
 * one.
 *
 * The scheduler counts only its own posts (its slots): the webhook client
 * may have other users, whose requests must neither shrink our budget nor
 * hold our runs open. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "cache.h"
#include "circuit.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "outcome.h"
#include "pacer.h"
#include "pg.h"
#include "redis.h"
#include "scheduler.h"
#include "store.h"
#include "streak.h"
#include "timing.h"
#include "util.h"
#include "webhook.h"

enum sched_run {
	RUN_IDLE,
	RUN_RUNNING,
};

/* Most ids one run skips after refusals (see sched_refused); past it
 * the run ends and the next one starts with an empty list. */
#define SCHED_SKIP_MAX 1024
/* Messages a run holds, in flight or waiting, at most this many budgets.
 * With a fast receiver a claim goes out when two budgets' worth of room
 * is free, so each claim is at least two budgets, and a budget's worth
 * still waits for a slot while it is out. */
#define SCHED_HAND 4
/* How far ahead to claim follows how fast requests finish: the messages
 * waiting should all get a slot within this share of WEBHOOK_TIMEOUT. A
 * slow receiver gets no claims ahead (they would only wait, and be
 * released for waiting too long); a fast one gets SCHED_HAND - 1 budgets. */
#define SCHED_AHEAD_DIV 4
/* Request durations are averaged over about this many (a moving average
 * with weight 1/SCHED_EWMA). */
#define SCHED_EWMA 16
/* An outcome write waits for this many budgets' worth of outcomes (or
 * the timer of TIMING_OUTCOME_FLUSH_MS, or the end of the requests in
 * flight): each statement costs the database about as much again as
 * the rows it writes, so the fewer the better. */
#define SCHED_WRITE_BATCH 2

/* The recipients and contents of one claim's messages, copied out of its
 * result (which dies with the callback) until the last one is posted. */
struct claim_texts {
	size_t refs;
	char text[];
};

enum delivery_state {
	D_FREE,
	D_WAITING, /* claimed, queued for a slot */
	D_FLYING,  /* posted; its callback has not started */
};

/* One message of ours, from its claim to the start of its callback. It
 * is on the free list, on the waiting queue, or in flight with the
 * webhook client: state says which, for the asserts. */
struct delivery {
	TAILQ_ENTRY(delivery) link;
	struct sched *s;
	enum delivery_state state;
	int64_t id;
	int retry_count;
	int64_t claimed_ms;	   /* when its claim went out */
	struct claim_texts *texts; /* while waiting */
	const char *recipient;
	const char *content;
	char lease_token[40];
};

TAILQ_HEAD(delivery_list, delivery);

/* Outcomes in a growing array that keeps its memory between batches. */
struct outcome_buf {
	struct outcome *o;
	size_t n, cap;
};

struct sched {
	const struct config *cfg;
	struct pg_conn *pg;
	struct webhook *wh;
	struct redis_client *redis;
	struct event *ev_tick;
	struct event *ev_flush;
	struct event *ev_retry; /* lets claims go on after a pause */
	bool active;
	bool db_warned; /* one warning per database outage */
	enum sched_run run;
	long long run_left; /* messages this run may still claim; -1 = all */
	bool claiming;	    /* a claim is out */
	long long asked;    /* its size */
	int64_t claim_ms;   /* when it went out */
	bool maybe_more;    /* the last claim got all it asked for */
	bool paused;	    /* no claim until ev_retry fires */
	bool drain_queued;  /* start asked for a drain during a run */
	/* our messages: hand of them, budget of which may fly at once */
	struct delivery *slots;
	struct delivery_list free_slots;
	struct delivery_list waiting;
	size_t budget, hand;
	size_t ninflight, nwaiting;
	int64_t took_ms;  /* average duration of our requests, lately */
	size_t releasing; /* release statements not yet answered */
	/* scratch for one release statement: up to hand leases */
	struct store_lease *leases;
	/* ids refused during this run, which its claims leave alone */
	int64_t *skip;
	size_t nskip, cap_skip;
	/* outcomes waiting to be written, and those being written */
	struct outcome_buf pending;
	struct outcome_buf writing;
	bool write_out;		    /* the writing batch is with the database */
	struct store_outcome *rows; /* the batch as store rows */
	size_t cap_rows;
	/* the receiver's health, and how fast requests may start */
	struct circuit circuit;
	struct pacer pacer;
	struct event *ev_pace;	/* pumps again once the pacer allows */
	struct event *ev_probe; /* the open circuit's next probe */
	bool probe_run;		/* this run claims one message, the probe */
	int64_t opened_ms;	/* when the circuit opened */
	/* What repeats per tick or per message is logged as a streak (one
	 * line, then summaries): ticks skipped while a run is held up (by
	 * a database that is down, say), posts the webhook client refused,
	 * and 2xx answers without a messageId. */
	struct streak ticks_skipped, refusals, no_id;
};

static void sched_check(struct sched *s);

/* Messages may be posted now: sending is on, the circuit lets them through
 * (half open: the probe run's one message), and the receiver did not ask
 * for a pause. Otherwise what waits for a slot is given back. */
static bool
sched_sending(const struct sched *s)
{
	return s->active && s->circuit.state != CIRCUIT_OPEN &&
	    pacer_paused_ms(&s->pacer, util_now_ms()) == 0;
}
static void sched_run_begin(struct sched *s, long long quota, const char *why);

static struct delivery *
sched_slot_take(struct sched *s)
{
	struct delivery *d = TAILQ_FIRST(&s->free_slots);

	assert(d != NULL && d->state == D_FREE);
	TAILQ_REMOVE(&s->free_slots, d, link);
	return d;
}

/* Back to the free list, from the waiting queue (already unlinked) or
 * from flight; its texts are not needed any more. */
static void
sched_slot_free(struct sched *s, struct delivery *d)
{
	if (d->state == D_FLYING) {
		assert(s->ninflight > 0);
		s->ninflight--;
		metrics.webhook_inflight--;
	}
	if (d->texts != NULL && --d->texts->refs == 0)
		free(d->texts);
	d->texts = NULL;
	d->recipient = d->content = NULL;
	d->state = D_FREE;
	TAILQ_INSERT_HEAD(&s->free_slots, d, link);
}

static void
sched_slot_wait(struct sched *s, struct delivery *d)
{
	assert(d->state == D_FREE);
	d->state = D_WAITING;
	TAILQ_INSERT_TAIL(&s->waiting, d, link);
	s->nwaiting++;
	assert(s->ninflight + s->nwaiting <= s->hand);
}

static struct delivery *
sched_slot_unwait(struct sched *s)
{
	struct delivery *d = TAILQ_FIRST(&s->waiting);

	assert(d != NULL && d->state == D_WAITING && s->nwaiting > 0);
	TAILQ_REMOVE(&s->waiting, d, link);
	s->nwaiting--;
	return d;
}

static void
sched_slot_fly(struct sched *s, struct delivery *d)
{
	assert(d->state == D_WAITING);
	d->state = D_FLYING;
	s->ninflight++;
	metrics.webhook_inflight++;
	assert(s->ninflight <= s->budget);
	if (d->texts != NULL && --d->texts->refs == 0)
		free(d->texts);
	d->texts = NULL;
}

/* Room for n more outcomes in b. */
static void
sched_buf_reserve(struct outcome_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 64;

	if (b->n + n <= b->cap)
		return;
	while (cap < b->n + n)
		cap *= 2;
	b->o = realloc(b->o, cap * sizeof(*b->o));
	if (b->o == NULL)
		abort();
	b->cap = cap;
}

static void
sched_buf_fini(struct outcome_buf *b)
{
	for (size_t i = 0; i < b->n; i++)
		outcome_fini(&b->o[i]);
	free(b->o);
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

/* The run keeps its quota and claims again after delay_ms; what is in
 * flight meanwhile goes on. */
static void
sched_pause(struct sched *s, int64_t delay_ms)
{
	struct timeval tv = util_tv(delay_ms);

	s->paused = true;
	event_add(s->ev_retry, &tv);
}

static void
sched_arm_probe(struct sched *s)
{
	struct timeval tv = util_tv(circuit_probe_in_ms(&s->circuit,
	    util_now_ms()));

	event_add(s->ev_probe, &tv);
}

static void
sched_run_end(struct sched *s, const char *why)
{
	assert(s->run == RUN_RUNNING);
	/* Runs end only once everything of theirs is settled. */
	assert(!s->claiming && s->ninflight == 0 && s->nwaiting == 0);
	assert(!s->paused);
	assert(s->pending.n == 0 && !s->write_out && s->releasing == 0);
	s->run = RUN_IDLE;
	log_debug("scheduler", "run finished", "{s:s, s:I}", "reason", why,
	    "refused", (json_int_t)s->nskip);
	if (s->probe_run) {
		s->probe_run = false;
		/* Still half open: nothing was due to probe with. */
		if (s->circuit.state == CIRCUIT_HALF_OPEN) {
			circuit_probe_empty(&s->circuit, util_now_ms());
			sched_arm_probe(s);
		}
	}
	if (s->active && s->drain_queued) {
		s->drain_queued = false;
		sched_run_begin(s, -1, "drain queued during a run");
	}
}

static void
sched_arm_flush(struct sched *s, int64_t delay_ms)
{
	struct timeval tv = util_tv(delay_ms);

	if (delay_ms == 0)
		event_del(s->ev_flush);
	if (!event_pending(s->ev_flush, EV_TIMEOUT, NULL))
		event_add(s->ev_flush, &tv);
}

/* A batch goes out when it is large, when nothing more is on its way, or
 * at the latest TIMING_OUTCOME_FLUSH_MS after the first outcome waited. */
static void
sched_flush_soon(struct sched *s)
{
	size_t batch = s->budget * SCHED_WRITE_BATCH;

	if (s->write_out || s->pending.n == 0)
		return;
	if (s->pending.n >= (batch > 0 ? batch : 1) ||
	    (s->ninflight == 0 && s->nwaiting == 0))
		sched_arm_flush(s, 0);
	else
		sched_arm_flush(s, TIMING_OUTCOME_FLUSH_MS);
}

/* The reason of a failure is in its outcome, not in the row: found by
 * id, which costs a search per failure (failures are rare). */
static void
sched_count_failed(const struct outcome_buf *w, int64_t id)
{
	for (size_t i = 0; i < w->n; i++) {
		if (w->o[i].id == id) {
			metrics.failed[outcome_fail_reason(&w->o[i])]++;
			return;
		}
	}
}

static void
sched_on_recorded(void *arg, const struct recorded *rows, size_t n,
    const char *err)
{
	struct sched *s = arg;
	struct outcome_buf *w = &s->writing;

	assert(s->write_out);
	s->write_out = false;
	if (err != NULL) {
		/* Keep them: the write is guarded, so trying again is safe
		 * whether or not the lost one committed. */
		sched_db_trouble(s, "could not record outcomes, will retry",
		    err);
		sched_buf_reserve(&s->pending, w->n);
		memcpy(s->pending.o + s->pending.n, w->o, w->n * sizeof(*w->o));
		s->pending.n += w->n;
		w->n = 0;
		sched_arm_flush(s, TIMING_DB_RETRY_MS);
		return;
	}
	s->db_warned = false;
	for (size_t i = 0; i < n; i++) {
		if (rows[i].status == STORE_SENT) {
			metrics.sent++;
			log_info("scheduler", "message sent", "{s:I, s:s?}",
			    "id", (json_int_t)rows[i].id, "messageId",
			    rows[i].response_id);
			/* Fire and forget: the cache logs its own failures. */
			(void)cache_put_sent(s->redis, rows[i].id,
			    rows[i].response_id, rows[i].sent_at,
			    s->cfg->cache_ttl_ms);
		} else if (rows[i].status == STORE_FAILED) {
			sched_count_failed(w, rows[i].id);
			log_warn("scheduler", "message failed", "{s:I}", "id",
			    (json_int_t)rows[i].id);
		} else {
			metrics.retried++;
		}
	}
	if (n < w->n)
		log_warn("scheduler", "outcomes not recorded: lease lost",
		    "{s:I}", "count", (json_int_t)(w->n - n));
	for (size_t i = 0; i < w->n; i++)
		outcome_fini(&w->o[i]);
	w->n = 0;
	sched_flush_soon(s);
	sched_check(s);
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
	row->attempt = o->attempt;
	row->started_ms = o->started_ms;
	row->finished_ms = o->finished_ms;
}

static void
sched_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	struct outcome_buf tmp;

	UNUSED(fd);
	UNUSED(what);
	if (s->write_out || s->pending.n == 0)
		return;
	/* The buffers swap: both keep their memory for the next batch. */
	assert(s->writing.n == 0);
	tmp = s->writing;
	s->writing = s->pending;
	s->pending = tmp;
	if (s->cap_rows < s->writing.n) {
		free(s->rows);
		s->cap_rows = s->writing.cap;
		s->rows = xcalloc(s->cap_rows, sizeof(*s->rows));
	}
	for (size_t i = 0; i < s->writing.n; i++)
		sched_store_row(&s->writing.o[i], &s->rows[i]);
	s->write_out = true;
	if (store_record_outcomes(s->pg, s->rows, s->writing.n,
		s->cfg->attempt_history ? util_instance() : NULL,
		sched_on_recorded, s) != 0)
		sched_on_recorded(s, NULL, 0, "database unavailable");
}

static void sched_pump(struct sched *s);
static void sched_pause(struct sched *s, int64_t delay_ms);

/* The receiver answered 429 or 503 with Retry-After: every start waits
 * that long (pacer.c, at most 1 h), not only this message's. What waits
 * for a slot is given back (sched_sending is false meanwhile) and no
 * claim goes out until the pause ends. */
static void
sched_receiver_pause(struct sched *s, int64_t ms)
{
	int64_t now = util_now_ms();
	bool was = pacer_paused_ms(&s->pacer, now) > 0;

	pacer_pause(&s->pacer, now, ms);
	ms = pacer_paused_ms(&s->pacer, now);
	if (!was)
		log_info("scheduler",
		    "receiver asked to wait (Retry-After): pausing every "
		    "request",
		    "{s:I}", "pause_ms", (json_int_t)ms);
	sched_pause(s, ms);
}

/* Feeds the circuit one result; true when a failure belongs to an outage
 * (circuit.h), which keeps its message from `failed`. */
static bool
sched_circuit_record(struct sched *s, int64_t id,
    const struct webhook_result *res)
{
	int64_t now = util_now_ms();
	enum circuit_state before = s->circuit.state;
	bool outage, opened;

	if (!outcome_receiver_down(res)) {
		if (circuit_success(&s->circuit)) {
			event_del(s->ev_probe);
			log_info("scheduler",
			    "circuit closed: the receiver answers again",
			    "{s:I}", "open_ms",
			    (json_int_t)(now - s->opened_ms));
			/* The backlog goes now, not at the next tick. */
			sched_run_begin(s, -1, "circuit closed");
		}
		return false;
	}
	outage = circuit_failure(&s->circuit, id, now, &opened);
	if (opened) {
		s->opened_ms = now;
		log_warn("scheduler",
		    "circuit opened: the receiver keeps failing, holding "
		    "deliveries",
		    "{s:i, s:I}", "failures", s->circuit.streak, "probe_in_ms",
		    (json_int_t)s->cfg->circuit_probe_interval_ms);
		sched_arm_probe(s);
	} else if (before == CIRCUIT_HALF_OPEN) {
		log_debug("scheduler", "circuit probe failed", "{s:I}", "id",
		    (json_int_t)id);
		sched_arm_probe(s);
	}
	return outage;
}

static void
sched_on_delivered(void *arg, const struct webhook_result *res)
{
	struct delivery *d = arg;
	struct sched *s = d->s;
	struct outcome *o;
	bool outage;

	assert(d->state == D_FLYING);
	metrics_webhook_observe(outcome_classify(res), res->elapsed_ms);
	if (res->aborted) {
		/* Nothing is known: the lease runs out and it is sent again. */
		sched_slot_free(s, d);
		sched_check(s);
		return;
	}
	s->took_ms += (res->elapsed_ms - s->took_ms) / SCHED_EWMA;
	outage = sched_circuit_record(s, d->id, res);
	sched_buf_reserve(&s->pending, 1);
	o = &s->pending.o[s->pending.n++];
	outcome_decide(o, res, d->retry_count, s->cfg->max_attempts,
	    s->cfg->retry_base_delay_ms,
	    outage ? s->cfg->circuit_probe_interval_ms : -1);
	if (res->curl_code == 0 &&
	    (res->http_status == 429 || res->http_status == 503) &&
	    res->retry_after_s > 0)
		sched_receiver_pause(s, res->retry_after_s * 1000);
	memcpy(o->lease_token, d->lease_token, sizeof(o->lease_token));
	o->finished_ms = util_wall_ms();
	o->started_ms = o->finished_ms - res->elapsed_ms;
	if (o->warn_no_id)
		(void)streak_hit(&s->no_id, "{s:I, s:i}", "id",
		    (json_int_t)d->id, "status", (int)res->http_status);
	else if (o->kind == OUTCOME_SENT)
		streak_end(&s->no_id);
	/* Per message, so at debug: the final failure is logged (warn)
	 * when it is recorded, and the metrics count every attempt. */
	if (o->kind != OUTCOME_SENT)
		log_debug("scheduler", "delivery attempt failed",
		    "{s:I, s:s, s:s, s:I}", "id", (json_int_t)d->id, "error",
		    o->error, "next", outcome_status(o->kind), "retry_in_ms",
		    (json_int_t)o->delay_ms);
	sched_slot_free(s, d);
	/* The slot is free: the next waiting message takes it now. */
	sched_pump(s);
	sched_flush_soon(s);
	sched_check(s);
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
		sched_db_trouble(s, "could not release messages", err);
	else
		log_debug("scheduler", "messages released", "{s:I}", "count",
		    (json_int_t)n);
	sched_check(s);
}

/* The webhook client refuses a post when its global cap is full (another
 * user holds the slots), when the body cannot be built (content that is
 * not valid UTF-8) or while it is being freed; it does not say which, and
 * we need not know. In every case the message was not sent, so waiting
 * for its lease (2 x WEBHOOK_TIMEOUT + 10 s) would only delay it: it is
 * released, due at once, for another instance or the next run. This run
 * skips it: claiming it again at once would fail the same way (a body
 * never becomes valid; a full client stays full for a while), and a
 * run of such messages would spin claim, refuse, release, claim. The
 * refusals go on the claim's skip list, and the next claim waits a
 * moment (TIMING_REFUSED_PAUSE_MS) so a full client can drain. */
static void
sched_refused(struct sched *s, int64_t id)
{
	if (!streak_hit(&s->refusals, "{s:I}", "id", (json_int_t)id))
		log_debug("scheduler",
		    "webhook refused a request, releasing it", "{s:I}", "id",
		    (json_int_t)id);
	if (s->nskip == s->cap_skip) {
		s->cap_skip = s->cap_skip ? 2 * s->cap_skip : 16;
		s->skip = realloc(s->skip, s->cap_skip * sizeof(*s->skip));
		if (s->skip == NULL)
			abort();
	}
	s->skip[s->nskip++] = id;
}

/* One statement gives back the n claims in s->leases. */
static void
sched_release(struct sched *s, size_t n)
{
	if (n == 0)
		return;
	if (store_release(s->pg, s->leases, n, sched_on_released, s) != 0) {
		sched_db_trouble(s, "could not release messages",
		    "database unavailable");
		return;
	}
	s->releasing++;
}

/* Waiting messages take the free slots, oldest claim first. One that
 * waited longer than its lease can cover (a slot for up to
 * WEBHOOK_TIMEOUT, its own attempt as long again, TIMING_LEASE_MARGIN_MS
 * to write the outcome) is given back instead, as is every one once
 * sending has stopped, and every one the webhook client refuses. */
static void
sched_pump(struct sched *s)
{
	int64_t now = util_now_ms();
	size_t nrel = 0, nstale = 0;
	int64_t first_stale = 0;
	bool refused = false;

	bool sending = sched_sending(s);

	while (s->nwaiting > 0 && (s->ninflight < s->budget || !sending)) {
		struct delivery *d = TAILQ_FIRST(&s->waiting);
		bool stale = now - d->claimed_ms >
		    TIMING_CLAIM_WAIT_MAX_MS(s->cfg->webhook_timeout_ms);
		int64_t wait_ms;

		if (sending && !stale &&
		    (wait_ms = pacer_take(&s->pacer, util_now_us())) > 0) {
			struct timeval tv = util_tv(wait_ms);

			event_add(s->ev_pace, &tv);
			break;
		}
		d = sched_slot_unwait(s);
		if (sending && !stale) {
			if (webhook_post(s->wh, d->id, d->recipient, d->content,
				sched_on_delivered, d) == 0) {
				streak_end(&s->refusals);
				sched_slot_fly(s, d);
				continue;
			}
			sched_refused(s, d->id);
			refused = true;
		} else if (stale && nstale++ == 0) {
			first_stale = d->id;
		}
		/* Released below, before the slot can be reused. */
		s->leases[nrel].id = d->id;
		s->leases[nrel].lease_token = d->lease_token;
		nrel++;
		sched_slot_free(s, d);
	}
	if (nstale > 0)
		log_warn("scheduler",
		    "claimed messages waited too long for a slot, releasing "
		    "them",
		    "{s:I, s:I}", "count", (json_int_t)nstale, "first_id",
		    (json_int_t)first_stale);
	sched_release(s, nrel);
	/* Without more to claim, the run just ends. */
	if (refused && s->active && s->maybe_more && !s->paused)
		sched_pause(s, TIMING_REFUSED_PAUSE_MS);
}

/* A drain requested at boot, before the first connect, is not lost. */
static void
sched_claim_failed(struct sched *s, const char *reason)
{
	if (s->active) {
		sched_db_trouble(s, "cannot claim, will retry", reason);
		sched_pause(s, TIMING_DB_RETRY_MS);
	}
	sched_check(s);
}

/* The rows' texts in one block, which lives until the last is posted. */
static struct claim_texts *
sched_texts(const struct claimed *rows, size_t n)
{
	struct claim_texts *t;
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(rows[i].recipient) + strlen(rows[i].content) + 2;
	t = xmalloc(sizeof(*t) + len);
	t->refs = n;
	return t;
}

static void
sched_on_claimed(void *arg, const struct claimed *rows, size_t n,
    const char *err)
{
	struct sched *s = arg;
	struct claim_texts *texts;
	char *p;

	assert(s->claiming);
	s->claiming = false;
	if (err != NULL) {
		sched_claim_failed(s, err);
		return;
	}
	assert((long long)n <= s->asked);
	/* Room was kept for this claim: it always fits. */
	assert(s->ninflight + s->nwaiting + n <= s->hand);
	s->db_warned = false;
	s->maybe_more = (long long)n == s->asked;
	if (s->run_left > 0)
		s->run_left -= (long long)n;
	assert(s->run_left >= -1);
	if (n > 0)
		log_debug("scheduler", "claimed", "{s:I}", "count",
		    (json_int_t)n);
	texts = n > 0 ? sched_texts(rows, n) : NULL;
	p = texts != NULL ? texts->text : NULL;
	for (size_t i = 0; i < n; i++) {
		struct delivery *d = sched_slot_take(s);
		size_t rlen = strlen(rows[i].recipient) + 1;
		size_t clen = strlen(rows[i].content) + 1;

		d->id = rows[i].id;
		d->retry_count = rows[i].retry_count;
		d->claimed_ms = s->claim_ms;
		snprintf(d->lease_token, sizeof(d->lease_token), "%s",
		    rows[i].lease_token);
		d->texts = texts;
		d->recipient = memcpy(p, rows[i].recipient, rlen);
		d->content = memcpy(p + rlen, rows[i].content, clen);
		p += rlen + clen;
		sched_slot_wait(s, d);
	}
	sched_pump(s);
	sched_check(s);
}

/* Messages to hold beyond the slots: as many as the slots can take
 * within a share of WEBHOOK_TIMEOUT at the pace requests finish now. */
static size_t
sched_ahead(const struct sched *s)
{
	int64_t horizon = s->cfg->webhook_timeout_ms / SCHED_AHEAD_DIV;
	size_t max = s->hand - s->budget;

	if (s->took_ms <= 0 || (size_t)(horizon / s->took_ms) >= SCHED_HAND)
		return max;
	return s->budget * (size_t)horizon / (size_t)s->took_ms < max ?
	    s->budget * (size_t)horizon / (size_t)s->took_ms :
	    max;
}

/* How many to claim now, 0 for none yet: counted from our own messages,
 * never from the client's free slots (another user's requests must not
 * shrink or stop a run). A claim waits until it can be large (fewer,
 * larger claims cost the database less per message) while leaving a
 * budget's worth waiting to cover it: with all SCHED_HAND budgets to
 * hold, two budgets; without room to hold any ahead, a quarter of the
 * slots. */
static long long
sched_claim_size(const struct sched *s)
{
	size_t held = s->ninflight + s->nwaiting;
	size_t ahead = sched_ahead(s);
	size_t cap = s->budget + ahead;
	size_t min = ahead > s->budget ? ahead - s->budget : 0;
	long long room;

	assert(held <= s->hand);
	if (min < s->budget / 4)
		min = s->budget / 4;
	/* Paced: no more held than the rate posts well within the wait a
	 * claimed message may have (TIMING_CLAIM_WAIT_MAX_MS). */
	if (s->cfg->webhook_rate_limit > 0) {
		size_t pcap = (size_t)((int64_t)s->cfg->webhook_rate_limit *
		    s->cfg->webhook_timeout_ms * 3 / 4000);

		if (pcap < 1)
			pcap = 1;
		if (cap > pcap)
			cap = pcap;
		if (min > cap)
			min = cap;
	}
	if (held >= cap)
		return 0;
	room = (long long)(cap - held);
	if (s->run_left >= 0 && s->run_left < room)
		room = s->run_left;
	if (s->run_left >= 0 && s->run_left < (long long)min)
		min = (size_t)s->run_left;
	if (min < 1)
		min = 1;
	return room >= (long long)min ? room : 0;
}

static void
sched_claim(struct sched *s, long long want)
{
	int64_t lease = TIMING_LEASE_MS(s->cfg->webhook_timeout_ms);

	s->claiming = true;
	s->asked = want;
	s->claim_ms = util_now_ms();
	if (store_claim_due(s->pg, (int)want, lease, s->skip, s->nskip,
		sched_on_claimed, s) != 0) {
		s->claiming = false;
		sched_claim_failed(s, "database unavailable");
	}
}

/* Where every event of a run ends: claim if there is room, else end the
 * run once nothing of it is left. */
static void
sched_check(struct sched *s)
{
	bool more;
	long long want;

	if (s->run != RUN_RUNNING || s->claiming || s->paused)
		return;
	more = s->active && s->maybe_more && s->run_left != 0 &&
	    s->nskip < SCHED_SKIP_MAX && s->circuit.state != CIRCUIT_OPEN;
	if (more) {
		if ((want = sched_claim_size(s)) > 0)
			sched_claim(s, want);
		return;
	}
	if (s->ninflight > 0 || s->nwaiting > 0 || s->pending.n > 0 ||
	    s->write_out || s->releasing > 0)
		return;
	if (!s->active)
		sched_run_end(s, "stopped");
	else if (s->circuit.state == CIRCUIT_OPEN)
		sched_run_end(s, "circuit open");
	else if (s->nskip >= SCHED_SKIP_MAX)
		sched_run_end(s, "too many refused");
	else
		sched_run_end(s, "done");
}

static void
sched_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;

	UNUSED(fd);
	UNUSED(what);
	s->paused = false;
	sched_check(s);
}

static void
sched_on_pace(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;

	UNUSED(fd);
	UNUSED(what);
	sched_pump(s);
	sched_check(s);
}

/* The open circuit's interval is up: one message goes as a probe, in a
 * run of its own once the one before it has settled. */
static void
sched_on_probe(evutil_socket_t fd, short what, void *arg)
{
	struct sched *s = arg;
	int64_t now = util_now_ms();

	UNUSED(fd);
	UNUSED(what);
	if (s->circuit.state != CIRCUIT_OPEN)
		return;
	if (!s->active) {
		circuit_probe_skipped(&s->circuit, now);
		sched_arm_probe(s);
		return;
	}
	if (s->run != RUN_IDLE) {
		struct timeval tv = util_tv(TIMING_REFUSED_PAUSE_MS);

		event_add(s->ev_probe, &tv);
		return;
	}
	circuit_probing(&s->circuit);
	s->probe_run = true;
	/* Once per probe that may send, not every second while none is due. */
	if (s->circuit.probe_empty)
		log_debug("scheduler", "circuit half-open: sending one probe",
		    NULL);
	else
		log_info("scheduler", "circuit half-open: sending one probe",
		    NULL);
	sched_run_begin(s, 1, "circuit probe");
}

static void
sched_run_begin(struct sched *s, long long quota, const char *why)
{
	if (!s->active)
		return;
	if (s->run != RUN_IDLE) {
		/* A drain already queued (SCHEDULER_BATCH_SIZE=0 makes every
		 * tick one) adds nothing: the tick is skipped like any. */
		if (quota < 0 && !s->drain_queued) {
			/* Stop + start during a run: the old run may be a
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
		(void)streak_hit(&s->ticks_skipped, "{s:s}", "trigger", why);
		return;
	}
	streak_end(&s->ticks_skipped);
	assert(s->ninflight == 0 && s->nwaiting == 0 && !s->claiming);
	assert(s->releasing == 0);
	log_debug("scheduler", "run started", "{s:s, s:I}", "trigger", why,
	    "quota", (json_int_t)quota);
	s->run = RUN_RUNNING;
	s->run_left = quota;
	s->maybe_more = true;
	s->nskip = 0;
	sched_check(s);
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
	s->ticks_skipped = (struct streak)STREAK_INIT(LOG_INFO, "scheduler",
	    "tick skipped: previous run still in progress",
	    "ticks still skipped: previous run still in progress",
	    "ticks run again");
	s->refusals = (struct streak)STREAK_INIT(LOG_WARN, "scheduler",
	    "webhook refused a request, releasing it",
	    "webhook still refusing requests", "webhook takes requests again");
	s->no_id = (struct streak)STREAK_INIT(LOG_WARN, "scheduler",
	    "webhook accepted without a messageId",
	    "webhook still accepting without a messageId",
	    "webhook replies carry a messageId again");
	s->budget = cfg->webhook_concurrency > 0 ?
	    (size_t)cfg->webhook_concurrency :
	    1;
	s->hand = SCHED_HAND * s->budget;
	s->slots = xcalloc(s->hand, sizeof(*s->slots));
	s->leases = xcalloc(s->hand, sizeof(*s->leases));
	TAILQ_INIT(&s->free_slots);
	TAILQ_INIT(&s->waiting);
	for (size_t i = 0; i < s->hand; i++) {
		s->slots[i].s = s;
		TAILQ_INSERT_TAIL(&s->free_slots, &s->slots[i], link);
	}
	s->ev_tick = event_new(base, -1, EV_PERSIST, sched_on_tick, s);
	s->ev_flush = evtimer_new(base, sched_on_flush, s);
	s->ev_retry = evtimer_new(base, sched_on_retry, s);
	s->ev_pace = evtimer_new(base, sched_on_pace, s);
	s->ev_probe = evtimer_new(base, sched_on_probe, s);
	circuit_init(&s->circuit, cfg->circuit_failures,
	    cfg->circuit_probe_interval_ms);
	/* Read at each scrape: the state has one home, the circuit. */
	metrics.circuit = &s->circuit;
	pacer_init(&s->pacer, cfg->webhook_rate_limit);
	return s;
}

bool
sched_start(struct sched *s)
{
	struct timeval tv = util_tv(s->cfg->scheduler_interval_ms);

	if (s->active)
		return false;
	s->active = true;
	metrics.sending = 1;
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
	metrics.sending = 0;
	s->drain_queued = false;
	event_del(s->ev_tick);
	if (s->paused) {
		event_del(s->ev_retry);
		s->paused = false;
	}
	log_info("scheduler", "automatic sending stopped", "{s:I, s:I}",
	    "in_flight", (json_int_t)s->ninflight, "released",
	    (json_int_t)s->nwaiting);
	/* What waits for a slot is given back, not sent. */
	sched_pump(s);
	sched_check(s);
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
	return s->claiming || s->ninflight > 0 || s->nwaiting > 0 ||
	    s->pending.n > 0 || s->write_out || s->releasing > 0;
}

const char *
sched_circuit(const struct sched *s)
{
	return circuit_name(s->circuit.state);
}

size_t
sched_inflight(const struct sched *s)
{
	return s->ninflight;
}

size_t
sched_unrecorded(const struct sched *s)
{
	return s->pending.n + s->writing.n;
}

/* The webhook and database are freed first by the app, so every callback
 * that could touch us has already run. */
void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	assert(s->ninflight == 0);
	/* Claims still waiting (the database went first) just expire. */
	while (s->nwaiting > 0)
		sched_slot_free(s, sched_slot_unwait(s));
	sched_buf_fini(&s->pending);
	sched_buf_fini(&s->writing);
	free(s->rows);
	free(s->leases);
	free(s->slots);
	free(s->skip);
	event_free(s->ev_tick);
	event_free(s->ev_flush);
	event_free(s->ev_retry);
	event_free(s->ev_pace);
	event_free(s->ev_probe);
	metrics.circuit = NULL;
	free(s);
}
