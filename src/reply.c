/* reply.c - every answer the API sends: JSON, bytes, and errors. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "common.h"
#include "reply.h"
#include "util.h"

static const struct {
	int status;
	const char *text;
	const char *retry_after; /* seconds, for the Retry-After header */
	const char *challenge;	 /* the WWW-Authenticate header */
} reply_fails[] = {
	[SVC_OK] = { 200, "ok" },
	[SVC_INVALID] = { 400, "bad request" },
	[SVC_NOT_FOUND] = { 404, "not found" },
	[SVC_CONFLICT] = { 409, "conflict" },
	[SVC_UNAVAILABLE] = { 503, "database unavailable" },
	[SVC_TIMEOUT] = { 503, "database did not answer in time" },
	[SVC_SHUTTING_DOWN] = { 503, "shutting down" },
	[SVC_INTERNAL] = { 500, "internal error" },
	[SVC_BUSY] = { 503, "too many requests waiting for the database", "1" },
	[SVC_UNAUTHORIZED] = { 401, "a valid bearer token is required", NULL,
	    "Bearer" },
};

int
reply_status(enum svc_err err)
{
	assert((size_t)err < ARRAY_LEN(reply_fails));
	return reply_fails[err].status;
}

/* The one place the error envelope is built. */
static json_t *
reply_error_body(const char *msg)
{
	return json_pack("{s:s, s:s}", "error", msg, "status", "error");
}

json_t *
reply_fail_body(enum svc_err err, const char *detail)
{
	assert((size_t)err < ARRAY_LEN(reply_fails));
	return reply_error_body(detail != NULL ? detail :
						 reply_fails[err].text);
}

void
reply_fail_headers(struct evhttp_request *req, enum svc_err err)
{
	assert((size_t)err < ARRAY_LEN(reply_fails));
	if (reply_fails[err].retry_after != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", reply_fails[err].retry_after);
	if (reply_fails[err].challenge != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", reply_fails[err].challenge);
}

const char *
reply_reason(int status)
{
	/* clang-format off */
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
	/* clang-format on */
}

/* The one way out: whatever is in the output buffer is the body. */
static void
reply_send(struct evhttp_request *req, int status, const char *type,
    const char *cache)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evhttp_request_get_output_buffer(req);

	evhttp_remove_header(out, "Content-Type");
	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Cache-Control", cache);
	/* evhttp would add the same Date, through gmtime_r and a printf for
	 * every answer; ours is formatted once a second. */
	evhttp_add_header(out, "Date", util_http_date(util_wall_ms()));
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char len[24];

		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(buf));
		evbuffer_drain(buf, evbuffer_get_length(buf));
		evhttp_add_header(out, "Content-Length", len);
	}
	evhttp_send_reply(req, status, reply_reason(status), NULL);
}

static int
reply_dump_cb(const char *buf, size_t size, void *data)
{
	return evbuffer_add(data, buf, size);
}

void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evbuffer *buf = evhttp_request_get_output_buffer(req);

	if (body == NULL) {
		status = 500;
		body = reply_error_body("could not build the reply");
	}
	/* Straight into the output buffer: no string to build and copy. */
	if (body != NULL &&
	    json_dump_callback(body, reply_dump_cb, buf, JSON_COMPACT) == 0)
		evbuffer_add(buf, "\n", 1);
	json_decref(body);
	reply_send(req, status, "application/json", "no-store");
}

void
reply_json_text(struct evhttp_request *req, int status, const char *json,
    size_t len)
{
	evbuffer_add(evhttp_request_get_output_buffer(req), json, len);
	reply_send(req, status, "application/json", "no-store");
}

void
reply_json_buffer(struct evhttp_request *req, int status, struct evbuffer *body)
{
	struct evbuffer *buf = evhttp_request_get_output_buffer(req);

	evbuffer_add_buffer(buf, body);
	evbuffer_add(buf, "\n", 1);
	reply_send(req, status, "application/json", "no-store");
}

void
reply_bytes(struct evhttp_request *req, const char *type, const char *cache,
    const char *data, size_t len)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "X-Content-Type-Options", "nosniff");
	evbuffer_add_reference(evhttp_request_get_output_buffer(req), data, len,
	    NULL, NULL);
	reply_send(req, 200, type, cache);
}

void
reply_output(struct evhttp_request *req, int status, const char *type,
    const char *cache)
{
	reply_send(req, status, type, cache);
}

void
reply_error(struct evhttp_request *req, int status, const char *msg)
{
	reply_json(req, status, reply_error_body(msg));
}

void
reply_fail(struct evhttp_request *req, enum svc_err err, const char *detail)
{
	reply_fail_headers(req, err);
	reply_json(req, reply_status(err), reply_fail_body(err, detail));
}
