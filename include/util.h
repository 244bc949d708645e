/* util.h - allocation that aborts on OOM, clocks, backoff, randomness. */
#ifndef GOPULSE_UTIL_H
#define GOPULSE_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "common.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF(1, 2);

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and durations. */
int64_t util_now_ms(void);
int64_t util_now_us(void); /* monotonic, microseconds */
/* Milliseconds since the epoch: for timestamps people read. */
int64_t util_wall_ms(void);
/* This process as "<host name>:<pid>", for the attempt history; made on
 * the first call (at start, before the loop: gethostname may not block,
 * but it is done once). */
const char *util_instance(void);
/* RFC 3339 UTC; with_ms adds ".mmm". buf needs 32 bytes. The text of the
 * last second is kept: calls within one second cost a copy. */
void util_rfc3339(int64_t wall_ms, int with_ms, char *buf, size_t len);
/* The HTTP Date of wall_ms's second (RFC 9110 IMF-fixdate, "Sun, 06 Nov
 * 1994 08:49:37 GMT"): a static buffer, valid until the next call. */
const char *util_http_date(int64_t wall_ms);
struct timeval util_tv(int64_t ms);

/* Uniform random in [0, n); seeded once from the kernel. */
uint64_t util_rand(void);
uint64_t util_rand_below(uint64_t n);
/* attempt 0 -> base; doubles per attempt, capped, then +-jitter_pct. */
int64_t util_backoff_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt,
    unsigned jitter_pct);

/* Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit
 * in force afterwards (LONG_MAX for unlimited), -1 when it cannot be read. */
long util_raise_nofile(void);

#endif
