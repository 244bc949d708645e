/* reconnect.c - the reconnect policy shared by pg.c and redis.c. */
#include "reconnect.h"
#include "timing.h"
#include "util.h"

/* The delay stops growing after log2(cap / base) attempts; the cap only
 * keeps a server that stays down for days from wrapping the counter. */
#define RECONNECT_ATTEMPT_MAX 32

enum log_level
reconnect_failed(struct reconnect *rc, bool was_up)
{
	bool news = was_up || !rc->warned;

	rc->warned = true;
	return news ? LOG_WARN : LOG_DEBUG;
}

unsigned
reconnect_attempts(const struct reconnect *rc)
{
	return rc->attempt;
}

int64_t
reconnect_next_delay_ms(struct reconnect *rc)
{
	int64_t delay = util_backoff_ms(TIMING_RECONNECT_BASE_MS,
	    TIMING_RECONNECT_CAP_MS, rc->attempt, TIMING_RECONNECT_JITTER_PCT);

	if (rc->attempt < RECONNECT_ATTEMPT_MAX)
		rc->attempt++;
	return delay;
}

void
reconnect_succeeded(struct reconnect *rc)
{
	rc->attempt = 0;
	rc->warned = false;
}
