/* reply.h - JSON answers for evhttp requests. */
#ifndef GOPULSE_REPLY_H
#define GOPULSE_REPLY_H

#include <event2/http.h>
#include <jansson.h>

/* Sends body (stolen) with the status and finishes req; a NULL body
 * (a failed constructor upstream) becomes a 500. HEAD gets the headers
 * only, with the Content-Length the body would have had. */
void reply_json(struct evhttp_request *req, int status, json_t *body);
/* {"error": msg, "status": "error"} */
void reply_error(struct evhttp_request *req, int status, const char *msg);
const char *reply_reason(int status);

#endif
