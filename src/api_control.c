/* api_control.c - liveness and the scheduler's on/off switch. */
#include "api.h"
#include "app.h"
#include "pg.h"
#include "redis.h"
#include "reply.h"
#include "scheduler.h"
#include "util.h"

/* Liveness: no I/O, so a stalled dependency never fails the probe. */
void
api_health(struct evhttp_request *req, void *arg)
{
	char ts[32];

	UNUSED(arg);
	util_rfc3339(util_wall_ms(), 0, ts, sizeof(ts));
	reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ok",
	    "timestamp", ts));
}

/* Readiness: can this instance do its work? Read from the states the
 * drivers keep current, never by asking a dependency, so a frozen one
 * cannot stall the probe. Redis is only a cache: reported, not required. */
void
api_ready(struct evhttp_request *req, void *arg)
{
	struct app *app = arg;
	bool ready = pg_is_ready(app->pg);
	char ts[32];

	util_rfc3339(util_wall_ms(), 0, ts, sizeof(ts));
	reply_json(req, ready ? 200 : 503, json_pack("{s:s, s:s, s:s, s:s, s:s}",
	    "status", ready ? "ready" : "not ready",
	    "database", pg_state_name(pg_get_state(app->pg)),
	    "redis", redis_state_name(redis_get_state(app->redis)),
	    "scheduler", sched_is_active(app->sched) ? "active" : "inactive",
	    "timestamp", ts));
}

void
api_start(struct evhttp_request *req, void *arg)
{
	struct app *app = arg;

	sched_start(app->sched);
	reply_json(req, 200, json_pack("{s:s, s:s}",
	    "message", "Automatic message sending started",
	    "status", "active"));
}

void
api_stop(struct evhttp_request *req, void *arg)
{
	struct app *app = arg;

	sched_stop(app->sched);
	reply_json(req, 200, json_pack("{s:s, s:s}",
	    "message", "Automatic message sending stopped",
	    "status", "inactive"));
}
