/* reply.c - JSON answers for evhttp requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "reply.h"

const char *
reply_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static int
reply_dump_cb(const char *buf, size_t size, void *data)
{
	return evbuffer_add(data, buf, size);
}

void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *buf = evhttp_request_get_output_buffer(req);

	if (body == NULL) {
		status = 500;
		body = json_pack("{s:s, s:s}", "error", "could not build the "
		    "reply", "status", "error");
	}
	/* Straight into the output buffer: no string to build and copy. */
	if (body != NULL && json_dump_callback(body, reply_dump_cb, buf,
	    JSON_COMPACT) == 0)
		evbuffer_add(buf, "\n", 1);
	json_decref(body);
	evhttp_remove_header(out, "Content-Type");
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp would send the body after HEAD headers and add no
		 * length: both break keep-alive framing. */
		char len[24];

		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(buf));
		evbuffer_drain(buf, evbuffer_get_length(buf));
		evhttp_add_header(out, "Content-Length", len);
	}
	evhttp_send_reply(req, status, reply_reason(status), NULL);
}

void
reply_error(struct evhttp_request *req, int status, const char *msg)
{
	reply_json(req, status, json_pack("{s:s, s:s}", "error", msg,
	    "status", "error"));
}
