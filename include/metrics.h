/* metrics.h - the process's Prometheus metrics and their text format.
 *
 * Every number is kept by the code that sees the event happen, in the one
 * process-wide struct below: counters and gauges are plain integers (one
 * thread, so no atomics), a histogram is a bucket search and two adds. A
 * scrape (metrics_write) only reads them, plus /proc/self for the
 * process_* metrics: it never asks PostgreSQL or Redis anything, so a
 * scrape costs the same whatever the backlog or the state of the links.
 * Durations are kept in microseconds and written in seconds.
 */
#ifndef GOPULSE_METRICS_H
#define GOPULSE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct circuit;

struct evbuffer;

/* Bucket bounds of one histogram family, fixed at build time. */
#define METRICS_BUCKETS_MAX 12
struct metrics_buckets {
	size_t n;
	const int64_t *bound_us; /* ascending */
	const char *const *le;	 /* the same bounds as Prometheus writes */
};

/* One series: counts per bucket (not cumulative; the last one is above
 * every bound), their number and their sum. */
struct metrics_hist {
	uint64_t bucket[METRICS_BUCKETS_MAX + 1];
	uint64_t count;
	uint64_t sum_us;
};

extern const struct metrics_buckets metrics_webhook_buckets; /* 5 ms..30 s */
extern const struct metrics_buckets metrics_http_buckets;    /* 1 ms..5 s */

/* What one webhook attempt came to, as the outcome label says it. */
enum metrics_outcome {
	METRICS_OUT_2XX,
	METRICS_OUT_3XX,
	METRICS_OUT_4XX,
	METRICS_OUT_5XX,
	METRICS_OUT_TIMEOUT,
	METRICS_OUT_ERROR,   /* connection refused, DNS, reset... */
	METRICS_OUT_ABORTED, /* shutdown deadline: outcome unknown */
	METRICS_OUT_N,
};

/* Why a message failed for good. */
enum metrics_fail {
	METRICS_FAIL_4XX,	/* a 4xx other than 408 and 429 */
	METRICS_FAIL_EXHAUSTED, /* MAX_ATTEMPTS retryable failures */
	METRICS_FAIL_N,
};

enum metrics_cache {
	METRICS_CACHE_OK,      /* Redis stored the entry */
	METRICS_CACHE_ERROR,   /* Redis answered an error, or timed out */
	METRICS_CACHE_SKIPPED, /* Redis was not ready: the entry is missed */
	METRICS_CACHE_N,
};

/* A server link, or a pool of them. */
struct metrics_link {
	int64_t ready;	     /* connections ready now */
	uint64_t reconnects; /* attempts scheduled after a failure */
};

/* API requests: one series per route and status, one histogram per
 * route. Routes are the router table's own (static) strings, matched by
 * address; anything unrouted counts as "other". */
#define METRICS_HTTP_ROUTES_MAX 32
#define METRICS_HTTP_CODES_MAX 128

struct metrics_http_route {
	const char *route;
	struct metrics_hist hist;
};

struct metrics_http_code {
	const char *route;
	int code;
	uint64_t count;
};

struct metrics {
	uint64_t produced;
	uint64_t sent;
	uint64_t retried; /* attempts that failed and were rescheduled */
	uint64_t failed[METRICS_FAIL_N];
	/* The pending messages and those of them due, as last counted;
	 * -1 until the first count. */
	int64_t pending, due;
	struct metrics_hist webhook[METRICS_OUT_N];
	int64_t webhook_inflight;
	size_t nroutes, ncodes;
	struct metrics_http_route routes[METRICS_HTTP_ROUTES_MAX];
	struct metrics_http_code codes[METRICS_HTTP_CODES_MAX];
	uint64_t http_unrecorded; /* past the tables' room */
	struct metrics_link pg_delivery, pg_api, redis;
	uint64_t cache_writes[METRICS_CACHE_N];
	/* The scheduler's circuit, read at each scrape (0 closed, 1 open,
	 * 2 half-open); NULL while there is no scheduler. */
	const struct circuit *circuit;
	int64_t sending; /* the scheduler is active */
	int64_t start_wall_ms;
};

extern struct metrics metrics;

/* Zeroes everything and notes the start time; once, first in main. */
void metrics_init(void);

void metrics_hist_observe(struct metrics_hist *h,
    const struct metrics_buckets *b, int64_t us);
/* One webhook attempt: its class and how long it took. */
void metrics_webhook_observe(enum metrics_outcome out, int64_t elapsed_ms);
/* One API answer; route NULL = unrouted. */
void metrics_http_observe(const char *route, int code, int64_t us);

/* Every metric in Prometheus text format 0.0.4. */
void metrics_write(struct evbuffer *out);

#endif
