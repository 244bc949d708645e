/* api.h - the REST handlers. Each gets a struct api: the service (the
 * only way to the rest of the program) and the HTTP pieces handlers use
 * themselves. Handlers include neither app.h nor any driver header. */
#ifndef GOPULSE_API_H
#define GOPULSE_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "router.h"

struct docs;
struct http_server;
struct service;

struct api {
	struct service *svc;
	struct http_server *http; /* for requests that wait (http_ctx) */
	const struct docs *docs;  /* Swagger UI assets */
	const char *token;	  /* API_TOKEN; NULL or "" = POSTs are open */
};

extern const struct route api_routes[];
extern const size_t api_routes_count;

void api_health(struct evhttp_request *req, void *arg);
void api_ready(struct evhttp_request *req, void *arg);
void api_metrics(struct evhttp_request *req, void *arg);
void api_start(struct evhttp_request *req, void *arg);
void api_stop(struct evhttp_request *req, void *arg);
void api_messages(struct evhttp_request *req, void *arg);
void api_messages_list(struct evhttp_request *req, void *arg);
void api_messages_create(struct evhttp_request *req, void *arg);
/* POST /messages' body (len bytes, not NUL-ended): NULL when valid, with
 * *recipient and *content pointing into *doc; otherwise the reason for
 * the 400 (it may be why). *doc (NULL or the parsed body) is the
 * caller's to json_decref either way. */
const char *api_create_parse(const char *body, size_t len, json_t **doc,
    const char **recipient, const char **content, char *why, size_t whylen);
void api_messages_get(struct evhttp_request *req, void *arg);
void api_messages_retry(struct evhttp_request *req, void *arg);
void api_messages_retry_failed(struct evhttp_request *req, void *arg);
void api_openapi_yaml(struct evhttp_request *req, void *arg);
void api_openapi_json(struct evhttp_request *req, void *arg);
void api_swagger_redirect(struct evhttp_request *req, void *arg);
void api_swagger_index(struct evhttp_request *req, void *arg);
void api_swagger_asset(struct evhttp_request *req, void *arg);

/* Whether req carries the bearer token (always, when there is none);
 * if not, it is answered 401 here. Every POST handler asks first. */
bool api_authorized(const struct api *api, struct evhttp_request *req);
/* The {id} of /messages/{id}[/...]; -1 when it is not a message id. */
int api_path_id(struct evhttp_request *req, int64_t *id);

/* openapi.yaml, and the same as JSON, embedded at build time. */
extern const char api_openapi_yaml_text[];
extern const char api_openapi_json_text[];

#endif
