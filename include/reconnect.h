/* reconnect.h - the reconnect policy shared by every link to a server
 * (pg.c, redis.c): when to try again, and how loudly to say it failed.
 *
 * A failed link waits TIMING_RECONNECT_BASE_MS, doubled per failed attempt
 * up to TIMING_RECONNECT_CAP_MS, +-TIMING_RECONNECT_JITTER_PCT (timing.h):
 * instances that lost the same server must not all come back in step. The
 * first failure of an outage and the loss of a link that was up deserve a
 * warning; the repeats while the server stays down only clutter the log.
 *
 * A zeroed struct is a link that has not failed yet.
 */
#ifndef GOPULSE_RECONNECT_H
#define GOPULSE_RECONNECT_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"

struct reconnect {
	unsigned attempt; /* failed attempts since the link was up */
	bool warned;	  /* this outage was already warned about */
};

/* Records a failure and says how to log it: LOG_WARN for the first one of
 * an outage, or when was_up (a link in use went away), else LOG_DEBUG. */
enum log_level reconnect_failed(struct reconnect *rc, bool was_up);
/* Failed attempts so far (capped), for the log line of a failure. */
unsigned reconnect_attempts(const struct reconnect *rc);
/* The wait before the next attempt, which it counts. */
int64_t reconnect_next_delay_ms(struct reconnect *rc);
/* The link is up: the next failure starts a new outage, from the base
 * delay and with a warning. */
void reconnect_succeeded(struct reconnect *rc);

#endif
