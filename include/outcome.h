/* outcome.h - what one webhook attempt means for its message: sent, try
 * again later, or failed for good. Pure: no I/O, unit-tested. */
#ifndef GOPULSE_OUTCOME_H
#define GOPULSE_OUTCOME_H

#include <stdint.h>

#include "metrics.h"
#include "webhook.h"

enum outcome_kind { OUTCOME_SENT, OUTCOME_RETRY, OUTCOME_FAILED };

struct outcome {
	int64_t id;
	char lease_token[40];
	enum outcome_kind kind;
	long code;	     /* HTTP status, 0 when none */
	char *response_id;   /* the reply's messageId; owned, may be NULL */
	char *error;	     /* owned; when sent, NULL or a reply error */
	int64_t delay_ms;    /* until the next attempt, for OUTCOME_RETRY */
	int retry_count;     /* after this attempt */
	int attempt;	     /* this attempt's number, 1-based */
	int64_t started_ms;  /* wall clock, for the attempt history */
	int64_t finished_ms; /* wall clock */
	bool warn_no_id;     /* 2xx without a usable messageId */
};

/* retry_count: failed attempts before this one. outage_delay_ms >= 0:
 * the failure belongs to a receiver outage the circuit saw (circuit.h):
 * the attempt counts, but it never makes the message `failed`, and it is
 * due again within outage_delay_ms; -1 otherwise. */
void outcome_decide(struct outcome *o, const struct webhook_result *res,
    int retry_count, int max_attempts, int64_t base_delay_ms,
    int64_t outage_delay_ms);
/* The receiver looks down or overloaded: a transport error (timeout,
 * refused connection), 429 or 5xx. What the circuit counts. */
bool outcome_receiver_down(const struct webhook_result *res);
/* attempt is 1-based: base * 2^(attempt-1), +-20 %, at most 1 h; a
 * Retry-After (seconds, >= 0) replaces it. */
int64_t outcome_retry_delay_ms(int attempt, int64_t base_ms,
    int64_t retry_after_s);
const char *outcome_status(enum outcome_kind kind);
/* The class of an attempt, as gopulse_webhook_request_duration_seconds
 * labels it. */
enum metrics_outcome outcome_classify(const struct webhook_result *res);
/* Why o (OUTCOME_FAILED) failed: a 4xx that is not worth retrying, or
 * attempts used up. */
enum metrics_fail outcome_fail_reason(const struct outcome *o);
void outcome_fini(struct outcome *o);

#endif
