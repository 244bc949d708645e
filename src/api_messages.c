/* api_messages.c - GET /messages: the sent messages, newest first. */
#include <event2/buffer.h>

#include "api.h"
#include "http_server.h"
#include "query.h"
#include "reply.h"
#include "service.h"

static void
api_on_listed(void *arg, enum svc_err err, const struct message *msgs, size_t n)
{
	struct http_ctx *ctx = arg;
	struct evbuffer *body;

	if (err != SVC_OK) {
		http_ctx_fail(ctx, err, NULL);
		return;
	}
	body = evbuffer_new();
	if (body != NULL && message_list_write(body, msgs, n) == 0)
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
