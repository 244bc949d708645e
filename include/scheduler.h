/* scheduler.h - automatic sending: claims due messages, posts them to the
 * webhook, records each outcome, caches the sent ones. */
#ifndef GOPULSE_SCHEDULER_H
#define GOPULSE_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

struct config;
struct pg_conn;
struct redis_client;
struct sched;
struct webhook;

struct sched *sched_new(struct event_base *base, const struct config *cfg,
    struct pg_conn *pg, struct webhook *wh, struct redis_client *redis);
/* Idempotent; each returns true when the state changed. Start drains
 * every due message first when DRAIN_ON_START is set; when a run is still
 * going (stop + start during a window), the drain begins as soon as that
 * run ends. Stop claims nothing new; what is in flight finishes and its
 * outcome is recorded. */
bool sched_start(struct sched *s);
bool sched_stop(struct sched *s);
bool sched_is_active(const struct sched *s);
/* A claim, requests in flight, or outcomes or releases not yet written. */
bool sched_busy(const struct sched *s);
/* The scheduler's own requests in flight (not the webhook client's other
 * users'). */
/* "closed", "open" or "half-open" (circuit.h). */
const char *sched_circuit(const struct sched *s);
size_t sched_inflight(const struct sched *s);
size_t sched_unrecorded(const struct sched *s);
void sched_free(struct sched *s);

#endif
