/* api_messages.c - GET /messages (a page of one status) and
 * GET /messages/{id} (one message, its attempts and its cache entry). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "api.h"
#include "http_server.h"
#include "query.h"
#include "reply.h"
#include "service.h"

static void
api_on_listed(void *arg, enum svc_err err, const struct message *msgs, size_t n,
    const char *next)
{
	struct http_ctx *ctx = arg;
	struct evbuffer *body;

	if (err != SVC_OK) {
		http_ctx_fail(ctx, err, NULL);
		return;
	}
	body = evbuffer_new();
	if (body != NULL && message_page_write(body, msgs, n, next) == 0)
		http_ctx_finish_buffer(ctx, 200, body);
	else /* a NULL body is reply_json's 500 "could not build the reply" */
		http_ctx_finish(ctx, 500, NULL);
	if (body != NULL)
		evbuffer_free(body);
}

void
api_messages_list(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	const char *q =
	    evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct query_list ql;
	struct http_ctx *ctx;
	enum svc_err err;
	char why[128];

	if (query_parse_listing(q, &ql, why, sizeof(why)) != 0) {
		reply_fail(req, SVC_INVALID, why);
		return;
	}
	ctx = http_ctx_new(api->http, req);
	err = service_list(api->svc, ql.filter, ql.limit, ql.offset,
	    ql.after[0] != '\0' ? ql.after : NULL, api_on_listed, ctx);
	/* The only request error left is a cursor that is not this
	 * listing's. */
	if (err != SVC_OK)
		http_ctx_fail(ctx, err,
		    err == SVC_INVALID ?
			"after is not a cursor of this listing (use the next "
			"of a previous page with the same status)" :
			NULL);
}

/* One path, two methods: the listing and the create. */
void
api_messages(struct evhttp_request *req, void *arg)
{
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST)
		api_messages_create(req, arg);
	else
		api_messages_list(req, arg);
}

int
api_path_id(struct evhttp_request *req, int64_t *id)
{
	const char *raw =
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char *path = raw != NULL ? evhttp_uridecode(raw, 0, NULL) : NULL;
	const char *seg;
	char buf[32];
	size_t len;
	int rc = -1;

	/* The router matched /messages/{id}[/...]: the segment is there. */
	if (path != NULL && strncmp(path, "/messages/", 10) == 0) {
		seg = path + 10;
		len = strcspn(seg, "/");
		if (len < sizeof(buf)) {
			memcpy(buf, seg, len);
			buf[len] = '\0';
			rc = query_parse_id(buf, id);
		}
	}
	free(path);
	return rc;
}

/* The cache entry as JSON: what we wrote is JSON; anything else someone
 * put there is shown as the string it is (or null, not being UTF-8). */
static json_t *
api_cache_json(const char *cache)
{
	json_t *j;

	if (cache == NULL)
		return json_null();
	if ((j = json_loads(cache, JSON_DECODE_ANY, NULL)) != NULL)
		return j;
	j = json_string(cache);
	return j != NULL ? j : json_null();
}

static void
api_on_detail(void *arg, enum svc_err err, const struct message_detail *d,
    const char *cache, const char *cache_status)
{
	struct http_ctx *ctx = arg;
	json_t *body;

	if (err != SVC_OK) {
		http_ctx_fail(ctx, err,
		    err == SVC_NOT_FOUND ? "message not found" : NULL);
		return;
	}
	body = message_detail_to_json(d);
	if (body != NULL &&
	    (json_object_set_new(body, "cache", api_cache_json(cache)) != 0 ||
		json_object_set_new(body, "cache_status",
		    json_string(cache_status)) != 0)) {
		json_decref(body);
		body = NULL;
	}
	http_ctx_finish(ctx, 200, body);
}

void
api_messages_get(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct http_ctx *ctx;
	enum svc_err err;
	int64_t id;

	if (api_path_id(req, &id) != 0) {
		reply_fail(req, SVC_INVALID,
		    "id must be a message id (a positive whole number)");
		return;
	}
	ctx = http_ctx_new(api->http, req);
	err = service_get_message(api->svc, id, api_on_detail, ctx);
	if (err != SVC_OK)
		http_ctx_fail(ctx, err, NULL);
}
