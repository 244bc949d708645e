/* test_metrics.c - histogram buckets, the text format's shape, and how an
 * attempt's result is classed and a failure's reason told. */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/buffer.h>

#include "harness.h"
#include "metrics.h"
#include "outcome.h"

/* The scrape as a NUL-terminated string (freed by the caller). */
static char *
scrape(void)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	metrics_write(b);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

static void
test_buckets(void)
{
	struct metrics_hist h;

	memset(&h, 0, sizeof(h));
	/* A bound is inclusive (le), above the last goes to the overflow. */
	metrics_hist_observe(&h, &metrics_webhook_buckets, 5000);
	metrics_hist_observe(&h, &metrics_webhook_buckets, 5001);
	metrics_hist_observe(&h, &metrics_webhook_buckets, 31000000);
	metrics_hist_observe(&h, &metrics_webhook_buckets, -3);
	CHECK(h.bucket[0] == 2);
	CHECK(h.bucket[1] == 1);
	CHECK(h.bucket[metrics_webhook_buckets.n] == 1);
	CHECK(h.count == 4);
	CHECK(h.sum_us == 5000 + 5001 + 31000000);
}

static void
test_text(void)
{
	char *s;

	metrics_init();
	metrics.sent = 3;
	metrics.failed[METRICS_FAIL_4XX] = 1;
	metrics_webhook_observe(METRICS_OUT_2XX, 7);
	metrics_webhook_observe(METRICS_OUT_2XX, 1500);
	metrics_http_observe("/health", 200, 250);
	metrics_http_observe(NULL, 404, 250);
	s = scrape();
	CHECK(strstr(s,
		  "# TYPE gopulse_messages_sent_total counter\n"
		  "gopulse_messages_sent_total 3\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_messages_failed_total{reason=\"http_4xx\"} "
		  "1\n") != NULL);
	/* Cumulative buckets, seconds to the microsecond. */
	CHECK(strstr(s,
		  "gopulse_webhook_request_duration_seconds_bucket{"
		  "outcome=\"2xx\",le=\"0.005\"} 0\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_webhook_request_duration_seconds_bucket{"
		  "outcome=\"2xx\",le=\"0.01\"} 1\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_webhook_request_duration_seconds_bucket{"
		  "outcome=\"2xx\",le=\"2.5\"} 2\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_webhook_request_duration_seconds_bucket{"
		  "outcome=\"2xx\",le=\"+Inf\"} 2\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_webhook_request_duration_seconds_sum{"
		  "outcome=\"2xx\"} 1.507000\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_http_requests_total{route=\"/health\","
		  "code=\"200\"} 1\n") != NULL);
	CHECK(strstr(s,
		  "gopulse_http_requests_total{route=\"other\","
		  "code=\"404\"} 1\n") != NULL);
	/* No backlog count yet: no gauge rather than a made-up 0. */
	CHECK(strstr(s, "gopulse_messages_pending") == NULL);
	CHECK(strstr(s, "gopulse_circuit_state 0\n") != NULL);
	CHECK(strstr(s, "process_start_time_seconds ") != NULL);
	free(s);
	metrics.pending = 4;
	metrics.due = 2;
	s = scrape();
	CHECK(strstr(s, "gopulse_messages_pending 4\n") != NULL);
	CHECK(strstr(s, "gopulse_messages_due 2\n") != NULL);
	free(s);
}

static void
test_http_series_bounded(void)
{
	static const char routes[METRICS_HTTP_ROUTES_MAX + 4][2];

	metrics_init();
	for (size_t i = 0; i < METRICS_HTTP_ROUTES_MAX + 4; i++)
		metrics_http_observe(routes[i], 200, 1);
	CHECK(metrics.nroutes == METRICS_HTTP_ROUTES_MAX);
	CHECK(metrics.http_unrecorded == 4);
}

static void
test_classify(void)
{
	struct webhook_result r;
	struct outcome o;

	memset(&r, 0, sizeof(r));
	r.http_status = 202;
	CHECK(outcome_classify(&r) == METRICS_OUT_2XX);
	r.http_status = 404;
	CHECK(outcome_classify(&r) == METRICS_OUT_4XX);
	r.http_status = 503;
	CHECK(outcome_classify(&r) == METRICS_OUT_5XX);
	r.http_status = 0;
	r.curl_code = CURLE_OPERATION_TIMEDOUT;
	CHECK(outcome_classify(&r) == METRICS_OUT_TIMEOUT);
	r.curl_code = CURLE_COULDNT_CONNECT;
	CHECK(outcome_classify(&r) == METRICS_OUT_ERROR);
	r.aborted = true;
	CHECK(outcome_classify(&r) == METRICS_OUT_ABORTED);

	memset(&o, 0, sizeof(o));
	o.code = 400;
	CHECK(outcome_fail_reason(&o) == METRICS_FAIL_4XX);
	o.code = 429;
	CHECK(outcome_fail_reason(&o) == METRICS_FAIL_EXHAUSTED);
	o.code = 0;
	CHECK(outcome_fail_reason(&o) == METRICS_FAIL_EXHAUSTED);
	o.code = 500;
	CHECK(outcome_fail_reason(&o) == METRICS_FAIL_EXHAUSTED);
}

int
main(void)
{
	RUN(test_buckets);
	RUN(test_text);
	RUN(test_http_series_bounded);
	RUN(test_classify);
	return harness_done();
}
