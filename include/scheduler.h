/* scheduler.h - automatic sending on or off. Delivery (claims, webhook
 * calls, retries) is built on this switch. */
#ifndef GOPULSE_SCHEDULER_H
#define GOPULSE_SCHEDULER_H

#include <stdbool.h>

#include <event2/event.h>

struct config;
struct sched;

struct sched *sched_new(struct event_base *base, const struct config *cfg);
/* Idempotent; each returns true when the state changed. */
bool sched_start(struct sched *s);
bool sched_stop(struct sched *s);
bool sched_is_active(const struct sched *s);
void sched_free(struct sched *s);

#endif
