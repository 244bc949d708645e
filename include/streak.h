/* streak.h - a condition that repeats, logged as one line and summaries.
 *
 * A stalled Redis fails every cache write, a frozen database every API
 * deadline and every tick: a line per occurrence buries the one that
 * says what happened. A streak logs its first occurrence in full (with
 * its fields), then only counts; while it lasts, the next occurrence
 * after TIMING_LOG_SUMMARY_MS writes a summary with the count since the
 * last line; streak_end writes the total once the condition is over.
 *
 *   static struct streak cache_failing = STREAK_INIT(LOG_WARN, "cache",
 *       "cache write failed", "cache writes still failing",
 *       "cache writes succeed again");
 */
#ifndef GOPULSE_STREAK_H
#define GOPULSE_STREAK_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

struct streak {
	enum log_level level; /* of the first line and the summaries */
	const char *component;
	const char *start;   /* msg of the first occurrence's line */
	const char *summary; /* msg of the summaries */
	const char *end;     /* msg of the line at the end (info) */
	uint64_t total;	     /* occurrences since it started; 0 = not on */
	uint64_t unlogged;   /* of them, since the last line */
	int64_t started_ms, logged_ms;
};

#define STREAK_INIT(level, component, start, summary, end) \
	{ \
		level, component, start, summary, end, 0, 0, 0, 0 \
	}

/* One occurrence; fields as log_write's (the first line's only). True
 * when it wrote a line (the first or a summary). */
bool streak_hit(struct streak *s, const char *fields_fmt, ...);
/* The condition is over: if it was on, an info line with the total and
 * how long it lasted, and the next occurrence starts a new streak. */
void streak_end(struct streak *s);
bool streak_on(const struct streak *s);

#endif
