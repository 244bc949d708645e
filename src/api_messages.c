/* api_messages.c - GET /messages: the sent messages, newest first. */
#include "api.h"
#include "app.h"
#include "http_server.h"
#include "log.h"
#include "pg.h"
#include "query.h"
#include "reply.h"
#include "store.h"

static void
api_on_listed(void *arg, const struct message *msgs, size_t n,
    const char *err)
{
	struct http_ctx *ctx = arg;

	if (err != NULL) {
		log_warn("api", "listing messages failed", "{s:s}", "reason",
		    err);
		http_ctx_finish_error(ctx, 503, "database unavailable");
		return;
	}
	http_ctx_finish(ctx, 200, message_list_to_json(msgs, n));
}

void
api_messages_list(struct evhttp_request *req, void *arg)
{
	struct app *app = arg;
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct http_ctx *ctx;
	char err[128];
	int limit, offset;

	if (query_parse_list(q, &limit, &offset, err, sizeof(err)) != 0) {
		reply_error(req, 400, err);
		return;
	}
	if (!pg_is_ready(app->pg)) {
		reply_error(req, 503, "database unavailable");
		return;
	}
	ctx = http_ctx_new(app->http, req);
	if (store_list_sent(app->pg, limit, offset, api_on_listed, ctx) != 0)
		http_ctx_finish_error(ctx, 503, "database unavailable");
}
