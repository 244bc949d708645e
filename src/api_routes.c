/* api_routes.c - every path the service answers; openapi.yaml lists the
 * same ones (a test checks both ways). Every POST handler checks the
 * bearer token first (api_authorized; test_operator_api checks each). */
#include "api.h"
#include "common.h"

const struct route api_routes[] = {
	{ "/health", EVHTTP_REQ_GET, api_health },
	{ "/ready", EVHTTP_REQ_GET, api_ready },
	{ "/messages", EVHTTP_REQ_GET | EVHTTP_REQ_POST, api_messages },
	{ "/metrics", EVHTTP_REQ_GET, api_metrics },
	{ "/messages/start", EVHTTP_REQ_POST, api_start },
	{ "/messages/stop", EVHTTP_REQ_POST, api_stop },
	{ "/messages/retry-failed", EVHTTP_REQ_POST,
	    api_messages_retry_failed },
	{ "/messages/{id}", EVHTTP_REQ_GET, api_messages_get },
	{ "/messages/{id}/retry", EVHTTP_REQ_POST, api_messages_retry },
	{ "/openapi.yaml", EVHTTP_REQ_GET, api_openapi_yaml },
	{ "/swagger", EVHTTP_REQ_GET, api_swagger_redirect },
	{ "/swagger/", EVHTTP_REQ_GET, api_swagger_index },
	{ "/swagger/doc.json", EVHTTP_REQ_GET, api_openapi_json },
	{ "/swagger/*", EVHTTP_REQ_GET, api_swagger_asset },
};
const size_t api_routes_count = ARRAY_LEN(api_routes);
