/* backlog.h - the pending backlog for the metrics, counted now and then.
 *
 * A scrape must cost nothing and a count of a large backlog is not free,
 * so the count runs on its own timer (TIMING_BACKLOG_MS), never per
 * scrape, and the gauges show the last one. */
#ifndef GOPULSE_BACKLOG_H
#define GOPULSE_BACKLOG_H

#include <stdbool.h>

#include <event2/event.h>

struct pg_conn;
struct backlog;

struct backlog *backlog_new(struct event_base *base, struct pg_conn *pg);
void backlog_start(struct backlog *b);
void backlog_stop(struct backlog *b);
/* A count is out (the drain waits for it). */
bool backlog_busy(const struct backlog *b);
/* After the database: a count still out has been answered. */
void backlog_free(struct backlog *b);

#endif
