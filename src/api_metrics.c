/* api_metrics.c - GET /metrics: the Prometheus scrape. */
#include "api.h"
#include "reply.h"
#include "service.h"

/* What a Prometheus server asks for and checks (text format 0.0.4). */
#define API_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Written straight into the answer's buffer: no copy. The service reads
 * the counters its callbacks keep, so a scrape costs the same whatever
 * the state of the database or Redis. */
void
api_metrics(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	service_metrics(api->svc, evhttp_request_get_output_buffer(req));
	reply_output(req, 200, API_METRICS_TYPE, "no-store");
}
