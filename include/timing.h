/* timing.h - every timing policy of the service, in one place.
 *
 * They depend on each other, so they live together:
 *
 *   reconnect backoff   how soon a lost PostgreSQL or Redis link is tried
 *                       again; its cap (5 s) bounds how long an outcome
 *                       waits for a database that came back.
 *   claim lease         how long a claimed message belongs to its sender:
 *                       twice the slowest attempt (WEBHOOK_TIMEOUT, with as
 *                       much again to spare) plus TIMING_LEASE_MARGIN_MS to
 *                       write the outcome, which covers a reconnect at the
 *                       backoff cap and a retried write. A lease that runs
 *                       out makes the message due again: sent twice.
 *   retry schedule      after a failed attempt, RETRY_BASE_DELAY doubling,
 *                       +-TIMING_RETRY_JITTER_PCT, at most
 *                       TIMING_RETRY_MAX_DELAY_MS; Retry-After replaces it.
 */
#ifndef GOPULSE_TIMING_H
#define GOPULSE_TIMING_H

#include <stdint.h>

/* ---- reconnects (pg.c, redis.c through reconnect.c) ---- */
#define TIMING_RECONNECT_BASE_MS 100
#define TIMING_RECONNECT_CAP_MS 5000
#define TIMING_RECONNECT_JITTER_PCT 20

#define TIMING_PG_CONNECT_MS 5000 /* resolve + TCP + auth + startup */
/* Every name of the host list at once; a name whose DNS never answers is
 * given up well inside the connect deadline, so the others still get
 * their turn. */
#define TIMING_PG_RESOLVE_MS 2000
/* The server's statement_timeout answers first; this margin on top of it
 * catches a frozen or unreachable server, which never answers at all. */
#define TIMING_PG_DEADLINE_MARGIN_MS 2000

#define TIMING_REDIS_RESOLVE_MS 2000
#define TIMING_REDIS_CONNECT_MS 3000  /* TCP connect + AUTH/SELECT/PING */
#define TIMING_REDIS_WATCHDOG_MS 5000 /* PING period; no answer = frozen */
#define TIMING_REDIS_OP_MS 2000	      /* one command's deadline */

/* ---- delivery (scheduler.c, outcome.c, webhook.c) ---- */
/* Must exceed TIMING_RECONNECT_CAP_MS plus one write: see above. */
#define TIMING_LEASE_MARGIN_MS 10000
#define TIMING_LEASE_MS(webhook_timeout_ms) \
	(2 * (int64_t)(webhook_timeout_ms) + TIMING_LEASE_MARGIN_MS)
/* A claimed message waits for a slot at most one WEBHOOK_TIMEOUT (every
 * request ahead of it ends within that), and its own attempt takes at
 * most as long again: the lease above covers both. One that waited
 * longer (the loop was starved) is released instead of sent. */
#define TIMING_CLAIM_WAIT_MAX_MS(webhook_timeout_ms) \
	((int64_t)(webhook_timeout_ms))
/* A claim or outcome write refused by a database that is down is tried
 * again this often (well under the reconnect cap, so no turn is lost). */
#define TIMING_DB_RETRY_MS 250
/* After a claim in which the webhook client refused a post (its global
 * cap was full, or a body could not be built), the run waits this long
 * before claiming again, so a client kept full by another user drains
 * instead of our run churning through the backlog, claiming and
 * releasing. The refused messages themselves are released at once. */
#define TIMING_REFUSED_PAUSE_MS 250
/* An open circuit's probe that found nothing due sent nothing, so the
 * receiver was spared nothing by waiting: the next probe is this soon.
 * Messages held through the outage fall due one interval after their own
 * failure, often just after the probe; another instance may have taken
 * what was due. A whole interval more would hold them for nothing. */
#define TIMING_PROBE_EMPTY_MS 1000
/* An outcome waits at most this long for others to share its write (a
 * batch goes out at once when it is large or nothing else is in flight):
 * one statement for many outcomes costs the database far less than one
 * each, and a few ms are nothing against the lease. */
#define TIMING_OUTCOME_FLUSH_MS 20
/* How often cache entries missed during a Redis outage are looked for
 * (cacheheal.c), and how far before the first miss the rewrite starts:
 * clocks of the service and the database (which stamps sent_at) differ. */
#define TIMING_CACHE_HEAL_MS 250
#define TIMING_CACHE_HEAL_MARGIN_MS 60000

#define TIMING_RETRY_MAX_DELAY_MS (3600LL * 1000)
#define TIMING_RETRY_JITTER_PCT 20

#define TIMING_WEBHOOK_CONNECT_MS 5000 /* at most; WEBHOOK_TIMEOUT if less */

/* ---- operator API (service.c) ---- */
/* An Idempotency-Key answers with its first message this long (Stripe's
 * 24 h); after it the key is free again, and the sweep deletes it. */
#define TIMING_IDEMPOTENCY_TTL_MS (24LL * 3600 * 1000)
/* The sweep of expired keys: soon after start, then this often; each
 * round deletes small batches (TIMING_SWEEP_BATCH rows per statement)
 * until one comes back short, so no statement holds many row locks. */
#define TIMING_SWEEP_FIRST_MS 1000
#define TIMING_SWEEP_EVERY_MS (5LL * 60 * 1000)
#define TIMING_SWEEP_BATCH 500
/* GET /messages/{id} waits at most this long for its Redis entry (a
 * frozen Redis still looks ready until its watchdog, TIMING_REDIS_WATCHDOG_MS,
 * gives up on it); then it answers from PostgreSQL with the cache
 * "unavailable". Redis answers a GET in well under a millisecond. */
#define TIMING_CACHE_LOOKUP_MS 250
/* ---- observability (backlog.c, logs) ---- */
/* The pending backlog is counted this often for /metrics: a scrape never
 * queries, and a count of a large backlog every few seconds would cost
 * the database more than the gauge is worth. */
#define TIMING_BACKLOG_MS 15000
/* A condition that repeats (a stalled Redis failing every cache write,
 * API deadlines, skipped ticks) logs one line when it starts, then a
 * summary with its count at most this often while it lasts, and one when
 * it ends. */
#define TIMING_LOG_SUMMARY_MS 60000

#endif
