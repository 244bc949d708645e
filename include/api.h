/* api.h - the REST handlers. Each gets a struct api: the service (the
 * only way to the rest of the program) and the HTTP pieces handlers use
 * themselves. Handlers include neither app.h nor any driver header. */
#ifndef GOPULSE_API_H
#define GOPULSE_API_H

#include <stddef.h>

#include "router.h"

struct docs;
struct http_server;
struct service;

struct api {
	struct service *svc;
	struct http_server *http; /* for requests that wait (http_ctx) */
	const struct docs *docs;  /* Swagger UI assets */
};

extern const struct route api_routes[];
extern const size_t api_routes_count;

void api_health(struct evhttp_request *req, void *arg);
void api_ready(struct evhttp_request *req, void *arg);
void api_metrics(struct evhttp_request *req, void *arg);
void api_start(struct evhttp_request *req, void *arg);
void api_stop(struct evhttp_request *req, void *arg);
void api_messages_list(struct evhttp_request *req, void *arg);
void api_openapi_yaml(struct evhttp_request *req, void *arg);
void api_openapi_json(struct evhttp_request *req, void *arg);
void api_swagger_redirect(struct evhttp_request *req, void *arg);
void api_swagger_index(struct evhttp_request *req, void *arg);
void api_swagger_asset(struct evhttp_request *req, void *arg);

/* openapi.yaml, and the same as JSON, embedded at build time. */
extern const char api_openapi_yaml_text[];
extern const char api_openapi_json_text[];

#endif
