/* api_control.c - liveness, readiness and the scheduler's on/off switch. */
#include "api.h"
#include "reply.h"
#include "service.h"
#include "util.h"

/* Liveness: no I/O, so a stalled dependency never fails the probe. */
void
api_health(struct evhttp_request *req, void *arg)
{
	char ts[32];

	UNUSED(arg);
	util_rfc3339(util_wall_ms(), 0, ts, sizeof(ts));
	reply_json(req, 200,
	    json_pack("{s:s, s:s}", "status", "ok", "timestamp", ts));
}

/* Readiness: can this instance do its work? From the states the drivers
 * keep current, never by asking a dependency, so a frozen one cannot
 * stall the probe. Redis is only a cache: reported, not required. The
 * API's own connections are reported too, not required: while none is
 * ready, reads go to the delivery connection, whose state decides. */
void
api_ready(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct service_status st;
	char ts[32];

	service_status(api->svc, &st);
	util_rfc3339(util_wall_ms(), 0, ts, sizeof(ts));
	reply_json(req, st.ready ? 200 : 503,
	    json_pack("{s:s, s:s, s:{s:i, s:i, s:I, s:I}, s:s, s:s, s:s}",
		"status", st.ready ? "ready" : "not ready", "database",
		st.database, "api_database", "connections", st.api_connections,
		"ready", st.api_ready, "queries", (json_int_t)st.api_queries,
		"max_queries", (json_int_t)st.api_queries_max, "redis",
		st.redis, "scheduler", st.sending ? "active" : "inactive",
		"timestamp", ts));
}

void
api_start(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	service_start_sending(api->svc);
	reply_json(req, 200,
	    json_pack("{s:s, s:s}", "message",
		"Automatic message sending started", "status", "active"));
}

void
api_stop(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	service_stop_sending(api->svc);
	reply_json(req, 200,
	    json_pack("{s:s, s:s}", "message",
		"Automatic message sending stopped", "status", "inactive"));
}
