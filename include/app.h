/* app.h - owns the event base and every subsystem; runs and stops them. */
#ifndef GOPULSE_APP_H
#define GOPULSE_APP_H

#include <stdint.h>

#include <event2/event.h>

#include "api.h"
#include "config.h"

/* RUNNING -SIGTERM-> DELAYING (SHUTDOWN_DELAY: /ready 503, all else as
 * before; skipped when 0) -> DRAINING (listener closed, timers stopped,
 * work in flight finishing) -> DONE. */
enum app_state { APP_RUNNING, APP_DELAYING, APP_DRAINING, APP_DONE };

struct app {
	enum app_state state;
	struct event_base *base;
	const struct config *cfg;
	struct pg_conn *pg;	/* delivery: scheduler, producer, migrations */
	struct pgpool *apipool; /* the API's own connections */
	struct resolver *resolver;
	struct redis_client *redis;
	struct webhook *webhook;
	struct http_server *http;
	struct docs *docs;
	struct producer *producer;
	struct backlog *backlog;
	struct sched *sched;
	struct cacheheal *cacheheal; /* misses of a Redis outage, rewritten */
	struct service *svc;
	struct api api; /* what the handlers get */
	struct event *ev_sigterm;
	struct event *ev_sigint;
	struct event *ev_sighup; /* noted, never fatal */
	struct event *ev_delay;	 /* SHUTDOWN_DELAY is over: drain */
	struct event *ev_drain;	 /* checks whether draining is over */
	int64_t drain_deadline_ms;
	int exit_code;
};

/* NULL when the listener cannot be bound (logged). */
struct app *app_new(const struct config *cfg);
/* Runs the loop until shut down; returns the process exit status. */
int app_run(struct app *app);
void app_free(struct app *app);

#endif
