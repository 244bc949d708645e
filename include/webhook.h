/* webhook.h - the webhook client: curl multi's socket API on our loop.
 *
 * One multi handle for the life of the object keeps HTTP/1.1 connections
 * alive between posts. At most `concurrency` posts are in flight; a post
 * counts as in flight until its callback has started. Every accepted
 * post's callback runs exactly once, from the loop, never inside
 * webhook_post, and after curl is done with the transfer, so a callback
 * may post again (the slot it held is already free) or abort.
 */
#ifndef GOPULSE_WEBHOOK_H
#define GOPULSE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common.h"

/* Largest reply body kept; a longer reply is cut there (the transfer
 * ends) and reported with body_truncated and WEBHOOK_REPLY_TOO_LARGE. */
#define WEBHOOK_BODY_MAX (64 * 1024)
#define WEBHOOK_REPLY_TOO_LARGE "reply body over 65536 bytes: transfer cut"

struct webhook_result {
	int64_t id;
	long http_status; /* 0 when no HTTP answer */
	int curl_code;	  /* CURLE_OK or the error */
	/* curl's error text or a short reason; NULL on CURLE_OK, except
	 * WEBHOOK_REPLY_TOO_LARGE with the answer's real status */
	const char *error;
	/* Reply body, NUL-terminated, "" when none; borrowed for the call */
	const char *body;
	size_t body_len;
	bool body_truncated; /* more than WEBHOOK_BODY_MAX came: cut */
	/* Retry-After (delta-seconds or HTTP-date), -1 when absent/invalid */
	int64_t retry_after_s;
	int64_t elapsed_ms; /* from the post, queueing included */
	bool aborted;	    /* webhook_abort_all: outcome unknown */
};

typedef void (*webhook_done_cb)(void *arg, const struct webhook_result *res);

struct webhook;

/* auth_key "" = no x-ins-auth-key header. Call curl_global_init first. */
struct webhook *webhook_new(struct event_base *base, const char *url,
    const char *auth_key, int64_t timeout_ms, int concurrency);
/* Aborts what is left (callbacks run, aborted = true), then cleans up the
 * multi handle: call it before freeing the base. Called inside a callback,
 * the rest is delivered at once but the cleanup waits until that callback
 * returns, so don't free the base from inside a callback. */
void webhook_free(struct webhook *wh);
/* Signs every post with the WEBHOOK_SECRET list secrets (checked by
 * sign_check; "" = unsigned): headers webhook-timestamp and
 * webhook-signature (sign.h). Before the first post. */
void webhook_set_secret(struct webhook *wh, const char *secrets);

/* POST {"to": to, "content": content} to the url. -1 when `concurrency`
 * posts are already in flight, the body cannot be built (NULL or invalid
 * UTF-8) or the client is being freed: cb never runs. Otherwise cb runs
 * exactly once, never inside webhook_post. */
int webhook_post(struct webhook *wh, int64_t id, const char *to,
    const char *content, webhook_done_cb cb, void *arg) MUSTCHECK;

/* The CAs an https receiver's certificate must chain to (a PEM file),
 * instead of curl's default bundle; NULL or "" = the default. For posts
 * after the call: call it right after webhook_new. */
void webhook_set_ca_file(struct webhook *wh, const char *path);

size_t webhook_inflight(const struct webhook *wh);
/* concurrency - inflight */
size_t webhook_capacity(const struct webhook *wh);

/* Removes every transfer from curl; each callback runs before this
 * returns, with aborted = true, http_status 0, curl_code
 * CURLE_ABORTED_BY_CALLBACK and error "aborted" (posts already finished
 * but not yet delivered keep their real outcome). For the shutdown
 * deadline; safe inside a callback. */
void webhook_abort_all(struct webhook *wh);

/* Retry-After value to seconds from now (a past date gives 0), or -1 when
 * it is neither delta-seconds nor an HTTP-date. now = wall clock seconds. */
int64_t webhook_parse_retry_after(const char *value, int64_t now);

#endif
