/* api.h - the REST handlers; each gets the struct app as its argument. */
#ifndef GOPULSE_API_H
#define GOPULSE_API_H

#include <stddef.h>

#include "router.h"

extern const struct route api_routes[];
extern const size_t api_routes_count;

void api_health(struct evhttp_request *req, void *arg);
void api_ready(struct evhttp_request *req, void *arg);
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
