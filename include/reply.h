/* reply.h - every answer the API sends: JSON, bytes, and errors.
 *
 * One place builds the error envelope, one maps a service error to its
 * status, and one sends (HEAD gets the headers and the Content-Length the
 * body would have had, and no body: evhttp would otherwise send the body
 * after HEAD headers, breaking keep-alive framing). */
#ifndef GOPULSE_REPLY_H
#define GOPULSE_REPLY_H

#include <stddef.h>

#include <event2/http.h>
#include <jansson.h>

#include "service.h"

/* Sends body (stolen) with the status and finishes req; a NULL body
 * (a failed constructor upstream) becomes a 500. */
void reply_json(struct evhttp_request *req, int status, json_t *body);
/* A body already serialized (JSON and its newline), copied: what
 * reply_json sends, for answers whose shape never changes. */
void reply_json_text(struct evhttp_request *req, int status, const char *json,
    size_t len);
/* The same for JSON text already written (by a writer of our own, e.g.
 * message_list_write): moved out of body, not copied. */
void reply_json_buffer(struct evhttp_request *req, int status,
    struct evbuffer *body);
/* Static bytes (not copied: they must outlive the reply), 200. */
void reply_bytes(struct evhttp_request *req, const char *type,
    const char *cache, const char *data, size_t len);
/* What the handler already wrote into req's output buffer, as type. */
void reply_output(struct evhttp_request *req, int status, const char *type,
    const char *cache);
/* {"error": msg, "status": "error"} with an HTTP-level status (404,
 * 405, 413, ...). */
void reply_error(struct evhttp_request *req, int status, const char *msg);
/* A service error: its status and, when detail is NULL, its standard
 * message. */
void reply_fail(struct evhttp_request *req, enum svc_err err,
    const char *detail);

/* The pieces, for answers that are sent later (http_ctx). */
int reply_status(enum svc_err err);
/* The error envelope of err: detail, or its standard message. */
json_t *reply_fail_body(enum svc_err err, const char *detail);
/* The headers err's answer carries besides its body (Retry-After). */
void reply_fail_headers(struct evhttp_request *req, enum svc_err err);
const char *reply_reason(int status);

#endif
