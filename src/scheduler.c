/* scheduler.c - automatic sending on or off. */
#include <stdlib.h>

#include "common.h"
#include "config.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

struct sched {
	const struct config *cfg;
	bool active;
};

struct sched *
sched_new(struct event_base *base, const struct config *cfg)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	UNUSED(base);
	s->cfg = cfg;
	return s;
}

bool
sched_start(struct sched *s)
{
	if (s->active)
		return false;
	s->active = true;
	log_info("scheduler", "automatic sending started", "{s:I, s:i}",
	    "interval_ms", (json_int_t)s->cfg->scheduler_interval_ms,
	    "batch_size", s->cfg->scheduler_batch_size);
	return true;
}

bool
sched_stop(struct sched *s)
{
	if (!s->active)
		return false;
	s->active = false;
	log_info("scheduler", "automatic sending stopped", NULL);
	return true;
}

bool
sched_is_active(const struct sched *s)
{
	return s->active;
}

void
sched_free(struct sched *s)
{
	free(s);
}
