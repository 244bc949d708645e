/* api_messages.c - GET /messages: the sent messages, newest first. */
#include "api.h"
#include "http_server.h"
#include "query.h"
#include "reply.h"
#include "service.h"

static void
api_on_listed(void *arg, enum svc_err err, const struct message *msgs, size_t n)
{
	struct http_ctx *ctx = arg;

	if (err != SVC_OK)
		http_ctx_fail(ctx, err, NULL);
	else
		http_ctx_finish(ctx, 200, message_list_to_json(msgs, n));
}

void
api_messages_list(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	const char *q =
	    evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct http_ctx *ctx;
	enum svc_err err;
	char why[128];
	int limit, offset;

	if (query_parse_list(q, &limit, &offset, why, sizeof(why)) != 0) {
		reply_fail(req, SVC_INVALID, why);
		return;
	}
	ctx = http_ctx_new(api->http, req);
	err = service_list_sent(api->svc, limit, offset, api_on_listed, ctx);
	if (err != SVC_OK)
		http_ctx_fail(ctx, err, NULL);
}
