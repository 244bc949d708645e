/* api_create.c - POST /messages: a message put in by an operator, with
 * Stripe's Idempotency-Key semantics. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "http_server.h"
#include "reply.h"
#include "service.h"

#define API_CONTENT_MAX 160 /* code points, as varchar(160) counts */
#define API_KEY_MAX 255	    /* idempotency_keys.key */

/* Code points of valid UTF-8 (jansson checked it): every byte that does
 * not continue a sequence starts one. */
static size_t
api_code_points(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* "+" and 10 to 15 digits (E.164). */
static bool
api_recipient_valid(const char *s)
{
	size_t n = 0;

	if (*s++ != '+')
		return false;
	for (; s[n] != '\0'; n++)
		if (s[n] < '0' || s[n] > '9')
			return false;
	return n >= 10 && n <= 15;
}

/* Printable ASCII, 1 to 255 characters: what Stripe accepts, and what
 * fits the column. */
static bool
api_key_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > API_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7E)
			return false;
	return true;
}

/* The body's two fields, or a reason naming the field that is wrong. */
static const char *
api_parse_body(json_t *doc, const char **recipient, const char **content,
    char *why, size_t whylen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(doc))
		return "the body must be a JSON object with recipient and "
		       "content";
	json_object_foreach(doc, key, v) {
		if (strcmp(key, "recipient") != 0 &&
		    strcmp(key, "content") != 0) {
			snprintf(why, whylen, "unknown field: %.64s", key);
			return why;
		}
	}
	v = json_object_get(doc, "recipient");
	if (v == NULL)
		return "recipient is required";
	if (!json_is_string(v))
		return "recipient must be a string";
	*recipient = json_string_value(v);
	if (!api_recipient_valid(*recipient))
		return "recipient must be + followed by 10 to 15 digits";
	v = json_object_get(doc, "content");
	if (v == NULL)
		return "content is required";
	if (!json_is_string(v))
		return "content must be a string";
	*content = json_string_value(v);
	if (api_code_points(*content) < 1 ||
	    api_code_points(*content) > API_CONTENT_MAX)
		return "content must be 1 to 160 characters";
	return NULL;
}

const char *
api_create_parse(const char *body, size_t len, json_t **doc,
    const char **recipient, const char **content, char *why, size_t whylen)
{
	json_error_t jerr;

	*doc = NULL;
	if (len == 0)
		return "the body is empty: expected a JSON object with "
		       "recipient and content";
	*doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (*doc == NULL) {
		/* The field of a duplicate is named (jansson's text quotes the
		 * key and nothing else); for any other error only where it is,
		 * not the bytes around it. */
		if (json_error_code(&jerr) == json_error_duplicate_key)
			snprintf(why, whylen, "a field is given twice: %.120s",
			    jerr.text);
		else
			snprintf(why, whylen,
			    "the body is not valid JSON (line %d, column %d)",
			    jerr.line, jerr.column);
		return why;
	}
	return api_parse_body(*doc, recipient, content, why, whylen);
}

static void
api_on_created(void *arg, enum svc_err err, const struct message *m,
    bool replayed)
{
	struct http_ctx *ctx = arg;
	char loc[48];

	if (err != SVC_OK) {
		http_ctx_fail(ctx, err,
		    err == SVC_CONFLICT ?
			"Idempotency-Key was already used with another "
			"request" :
			NULL);
		return;
	}
	snprintf(loc, sizeof(loc), "/messages/%" PRId64, m->id);
	http_ctx_add_header(ctx, "Location", loc);
	if (replayed)
		http_ctx_add_header(ctx, "Idempotent-Replayed", "true");
	http_ctx_finish(ctx, replayed ? 200 : 201, message_to_json(m));
}

void
api_messages_create(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *recipient = NULL, *content = NULL, *problem, *key;
	struct http_ctx *ctx;
	enum svc_err err;
	char why[160];
	json_t *doc;

	if (!api_authorized(api, req))
		return;
	key = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Idempotency-Key");
	if (key != NULL && !api_key_valid(key)) {
		reply_fail(req, SVC_INVALID,
		    "Idempotency-Key must be 1 to 255 printable ASCII "
		    "characters");
		return;
	}
	problem = api_create_parse((const char *)evbuffer_pullup(in, -1), len,
	    &doc, &recipient, &content, why, sizeof(why));
	if (problem != NULL) {
		reply_fail(req, SVC_INVALID, problem);
		json_decref(doc);
		return;
	}
	ctx = http_ctx_new(api->http, req);
	err = service_create_message(api->svc, recipient, content, key,
	    api_on_created, ctx);
	if (err != SVC_OK)
		http_ctx_fail(ctx, err, NULL);
	json_decref(doc);
}
