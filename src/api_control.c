/* api_control.c - liveness, readiness and the scheduler's on/off switch. */
#include <stdint.h>
#include <stdio.h>

#include "api.h"
#include "reply.h"
#include "service.h"
#include "util.h"

/* Liveness: no I/O, so a stalled dependency never fails the probe. The
 * body changes once a second: it is built then (the bytes json_dump would
 * write: the timestamp holds no character JSON escapes) and copied for
 * every other probe of that second. */
void
api_health(struct evhttp_request *req, void *arg)
{
	static int64_t body_sec = INT64_MIN;
	static char body[80];
	static size_t body_len;
	int64_t now = util_wall_ms();

	UNUSED(arg);
	if (now / 1000 != body_sec) {
		char ts[32];
		int n;

		util_rfc3339(now, 0, ts, sizeof(ts));
		n = snprintf(body, sizeof(body),
		    "{\"status\":\"ok\",\"timestamp\":\"%s\"}\n", ts);
		body_len = n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0;
		body_sec = now / 1000;
	}
	reply_json_text(req, 200, body, body_len);
}

/* A count, or null while there is none yet (-1). */
static json_t *
api_count(int64_t n)
{
	return n < 0 ? json_null() : json_integer((json_int_t)n);
}

/* Readiness: can this instance do its work? From the states the drivers
 * keep current, never by asking a dependency, so a frozen one cannot
 * stall the probe. Redis is only a cache: reported, not required. The
 * API's own connections are reported too, not required: while none is
 * ready, reads go to the delivery connection, whose state decides. Once
 * SIGTERM came, "shutting down" (503) while the API still serves for
 * SHUTDOWN_DELAY. */
void
api_ready(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct service_status st;
	const char *status;
	char ts[32];

	service_status(api->svc, &st);
	util_rfc3339(util_wall_ms(), 0, ts, sizeof(ts));
	if (st.shutting_down)
		status = "shutting down";
	else
		status = st.ready ? "ready" : "not ready";
	reply_json(req, st.ready ? 200 : 503,
	    json_pack("{s:s, s:s, s:{s:i, s:i, s:I, s:I}, s:s, s:s, s:s, "
		      "s:{s:o, s:o}, s:s}",
		"status", status, "database", st.database, "api_database",
		"connections", st.api_connections, "ready", st.api_ready,
		"queries", (json_int_t)st.api_queries, "max_queries",
		(json_int_t)st.api_queries_max, "redis", st.redis, "scheduler",
		st.sending ? "active" : "inactive", "circuit", st.circuit,
		"backlog", "pending", api_count(st.backlog_pending), "due",
		api_count(st.backlog_due), "timestamp", ts));
}

void
api_start(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	if (!api_authorized(api, req))
		return;
	service_start_sending(api->svc);
	reply_json(req, 200,
	    json_pack("{s:s, s:s}", "message",
		"Automatic message sending started", "status", "active"));
}

void
api_stop(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	if (!api_authorized(api, req))
		return;
	service_stop_sending(api->svc);
	reply_json(req, 200,
	    json_pack("{s:s, s:s}", "message",
		"Automatic message sending stopped", "status", "inactive"));
}
