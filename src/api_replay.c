/* api_replay.c - sending failed messages again: one
 * (POST /messages/{id}/retry) or all of them (POST
 * /messages/retry-failed). */
#include <stdio.h>

#include "api.h"
#include "http_server.h"
#include "query.h"
#include "reply.h"
#include "service.h"

static void
api_on_retried(void *arg, enum svc_err err, const struct message *m,
    bool replayed)
{
	struct http_ctx *ctx = arg;
	char why[96];

	(void)replayed;
	if (err == SVC_CONFLICT && m != NULL) {
		snprintf(why, sizeof(why),
		    "only a failed message can be retried; this one is %s",
		    m->status);
		http_ctx_fail(ctx, err, why);
		return;
	}
	if (err != SVC_OK) {
		http_ctx_fail(ctx, err,
		    err == SVC_NOT_FOUND ? "message not found" : NULL);
		return;
	}
	http_ctx_finish(ctx, 200, message_to_json(m));
}

void
api_messages_retry(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct http_ctx *ctx;
	enum svc_err err;
	int64_t id;

	if (!api_authorized(api, req))
		return;
	if (api_path_id(req, &id) != 0) {
		reply_fail(req, SVC_INVALID,
		    "id must be a message id (a positive whole number)");
		return;
	}
	ctx = http_ctx_new(api->http, req);
	err = service_retry_message(api->svc, id, api_on_retried, ctx);
	if (err != SVC_OK)
		http_ctx_fail(ctx, err, NULL);
}

static void
api_on_requeued(void *arg, enum svc_err err, size_t n)
{
	struct http_ctx *ctx = arg;

	if (err != SVC_OK) {
		http_ctx_fail(ctx, err, NULL);
		return;
	}
	http_ctx_finish(ctx, 200,
	    json_pack("{s:I}", "requeued", (json_int_t)n));
}

void
api_messages_retry_failed(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	const char *q =
	    evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct http_ctx *ctx;
	enum svc_err err;
	char since[40], why[128];

	if (!api_authorized(api, req))
		return;
	if (query_parse_since(q, since, why, sizeof(why)) != 0) {
		reply_fail(req, SVC_INVALID, why);
		return;
	}
	ctx = http_ctx_new(api->http, req);
	err = service_retry_failed(api->svc, since[0] != '\0' ? since : NULL,
	    api_on_requeued, ctx);
	if (err != SVC_OK)
		http_ctx_fail(ctx, err, NULL);
}
