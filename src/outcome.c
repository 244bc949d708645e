/* outcome.c - what one webhook attempt means for its message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "outcome.h"
#include "timing.h"
#include "util.h"

const char *
outcome_status(enum outcome_kind kind)
{
	return kind == OUTCOME_SENT ? "sent" :
	    kind == OUTCOME_FAILED  ? "failed" :
				      "pending";
}

int64_t
outcome_retry_delay_ms(int attempt, int64_t base_ms, int64_t retry_after_s)
{
	/* Compared in seconds: the value comes from the receiver, and its
	 * milliseconds need not fit an int64_t. */
	if (retry_after_s >= 0)
		return retry_after_s > TIMING_RETRY_MAX_DELAY_MS / 1000 ?
		    TIMING_RETRY_MAX_DELAY_MS :
		    retry_after_s * 1000;
	return util_backoff_ms(base_ms, TIMING_RETRY_MAX_DELAY_MS,
	    (unsigned)(attempt > 1 ? attempt - 1 : 0), TIMING_RETRY_JITTER_PCT);
}

enum metrics_outcome
outcome_classify(const struct webhook_result *res)
{
	if (res->aborted)
		return METRICS_OUT_ABORTED;
	if (res->curl_code == CURLE_OPERATION_TIMEDOUT)
		return METRICS_OUT_TIMEOUT;
	if (res->curl_code != CURLE_OK || res->http_status < 200 ||
	    res->http_status >= 600)
		return METRICS_OUT_ERROR;
	return (enum metrics_outcome)(METRICS_OUT_2XX +
	    (res->http_status / 100 - 2));
}

/* The receiver's id for the message, if its reply says so. */
static char *
outcome_message_id(const struct webhook_result *res)
{
	json_t *doc, *mid;
	char *out = NULL;

	if (res->body == NULL || res->body_len == 0 || res->body_truncated)
		return NULL;
	doc = json_loadb(res->body, res->body_len, 0, NULL);
	mid = json_is_object(doc) ? json_object_get(doc, "messageId") : NULL;
	if (json_is_string(mid) && json_string_length(mid) > 0 &&
	    json_string_length(mid) <= 255)
		out = xstrdup(json_string_value(mid));
	json_decref(doc);
	return out;
}

static bool
outcome_retryable(long code)
{
	/* 408 and 429 say "later"; other 4xx say the request itself is
	 * wrong, and sending it again cannot help. */
	return code == 408 || code == 429 || code < 400 || code >= 500;
}

bool
outcome_receiver_down(const struct webhook_result *res)
{
	return res->curl_code != 0 || res->http_status == 429 ||
	    res->http_status >= 500;
}

/* A transport error has no code (0), which is retryable. */
enum metrics_fail
outcome_fail_reason(const struct outcome *o)
{
	return outcome_retryable(o->code) ? METRICS_FAIL_EXHAUSTED :
					    METRICS_FAIL_4XX;
}

void
outcome_decide(struct outcome *o, const struct webhook_result *res,
    int retry_count, int max_attempts, int64_t base_delay_ms,
    int64_t outage_delay_ms)
{
	int attempt = retry_count + 1;
	char *why;

	o->id = res->id;
	/* A status line followed by a timeout or a broken body is no answer:
	 * the attempt has no HTTP status (it used to record the 200). */
	o->code = res->curl_code == 0 ? res->http_status : 0;
	o->attempt = attempt;
	o->response_id = NULL;
	o->error = NULL;
	o->delay_ms = 0;
	o->retry_count = retry_count;
	o->warn_no_id = false;
	if (res->curl_code == 0 && res->http_status >= 200 &&
	    res->http_status < 300) {
		o->kind = OUTCOME_SENT;
		o->response_id = outcome_message_id(res);
		o->warn_no_id = o->response_id == NULL;
		/* Delivered, but the reply was not one we could read whole:
		 * kept with the message, as the reply error it is. */
		if (res->error != NULL)
			o->error = xstrdup(res->error);
		return;
	}
	if (res->curl_code != 0)
		why = xasprintf("%s",
		    res->error ? res->error : "transport error");
	else
		why = xasprintf("HTTP %ld", res->http_status);
	o->retry_count = attempt;
	if (res->curl_code == 0 && !outcome_retryable(res->http_status)) {
		o->kind = OUTCOME_FAILED;
		o->error = xasprintf("%s (not retried)", why);
	} else if (attempt >= max_attempts && outage_delay_ms < 0) {
		o->kind = OUTCOME_FAILED;
		o->error = xasprintf("%s (gave up after %d attempts)", why,
		    attempt);
	} else {
		int64_t ra = -1;

		if (res->curl_code == 0 &&
		    (res->http_status == 429 || res->http_status == 503))
			ra = res->retry_after_s;
		o->kind = OUTCOME_RETRY;
		o->error = why;
		why = NULL;
		o->delay_ms = outcome_retry_delay_ms(attempt, base_delay_ms,
		    ra);
		/* An outage's failure: due again by the time the circuit's
		 * next probe may have closed it, whatever attempt it was. */
		if (outage_delay_ms >= 0 && o->delay_ms > outage_delay_ms)
			o->delay_ms = outage_delay_ms;
	}
	free(why);
}

void
outcome_fini(struct outcome *o)
{
	free(o->response_id);
	free(o->error);
	o->response_id = NULL;
	o->error = NULL;
}
