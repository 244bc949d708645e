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

void
reply_json(struct evhttp_request *req, int status, json_t *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char *text;

	if (body == NULL) {
		status = 500;
		body = json_pack("{s:s, s:s}", "error", "could not build the "
		    "reply", "status", "error");
	}
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	evhttp_remove_header(out, "Content-Type");
	evhttp_add_header(out, "Content-Type", "application/json");
	evhttp_add_header(out, "Cache-Control", "no-store");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* evhttp would send the body after HEAD headers and add no
		 * length: both break keep-alive framing. */
		char len[24];

		snprintf(len, sizeof(len), "%zu", text ? strlen(text) + 1 : 0);
		evhttp_add_header(out, "Content-Length", len);
	} else if (text != NULL) {
		evbuffer_add(evhttp_request_get_output_buffer(req), text,
		    strlen(text));
		evbuffer_add(evhttp_request_get_output_buffer(req), "\n", 1);
	}
	free(text);
	evhttp_send_reply(req, status, reply_reason(status), NULL);
}

void
reply_error(struct evhttp_request *req, int status, const char *msg)
{
	reply_json(req, status, json_pack("{s:s, s:s}", "error", msg,
	    "status", "error"));
}
