/* pacer.h - how fast webhook requests may start, for the whole process.
 *
 * A token bucket of one token refilled at `rate` per second (0 = no
 * limit), so starts are spaced evenly and never burst; and a pause that a
 * 429 or 503 with Retry-After asks for, which holds every start until it
 * ends. Pure: the caller passes the time and arms its own timer; unit-
 * tested. */
#ifndef GOPULSE_PACER_H
#define GOPULSE_PACER_H

#include <stdint.h>

struct pacer {
	int rate;	      /* starts per second, 0 = unlimited */
	int64_t next_us;      /* when the next start may happen */
	int64_t paused_until; /* ms; no start before it */
};

void pacer_init(struct pacer *p, int rate);
/* 0 when a request may start now (and takes the token), else the ms to
 * wait before asking again. */
int64_t pacer_take(struct pacer *p, int64_t now_us);
/* Holds every start for delay_ms (at most 1 h) from now; a shorter pause
 * never cuts a longer one short. */
void pacer_pause(struct pacer *p, int64_t now_ms, int64_t delay_ms);
/* ms left of the pause, 0 when none. */
int64_t pacer_paused_ms(const struct pacer *p, int64_t now_ms);

#endif
