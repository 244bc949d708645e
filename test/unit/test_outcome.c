/* test_outcome.c - how an attempt's result decides the message's fate,
 * the retry schedule, and the array literals that carry outcomes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "outcome.h"
#include "pgarray.h"
#include "store.h"
#include "timing.h"

static struct webhook_result
http(long status, const char *body)
{
	struct webhook_result r;

	memset(&r, 0, sizeof(r));
	r.id = 9;
	r.http_status = status;
	r.body = body;
	r.body_len = body ? strlen(body) : 0;
	r.retry_after_s = -1;
	return r;
}

static void
test_2xx_is_sent(void)
{
	static const long codes[] = { 200, 201, 202, 204, 299 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct webhook_result r = http(codes[i],
		    "{\"message\":\"Accepted\",\"messageId\":\"abc-1\"}");
		struct outcome o;

		outcome_decide(&o, &r, 2, 5, 5000, -1);
		CHECK(o.kind == OUTCOME_SENT);
		CHECK_STR(o.response_id, "abc-1");
		CHECK(o.error == NULL);
		CHECK(o.retry_count == 2); /* unchanged by a success */
		CHECK(!o.warn_no_id);
		outcome_fini(&o);
	}
}

static void
test_2xx_without_id_is_still_sent(void)
{
	/* clang-format off */
	static const char *const bodies[] = {
		NULL, "", "not json", "{\"messageId\": 5}", "[1,2]",
		"{\"message\":\"ok\"}", "{\"messageId\": \"\"}",
	};
	/* clang-format on */

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct webhook_result r = http(202, bodies[i]);
		struct outcome o;

		outcome_decide(&o, &r, 0, 5, 5000, -1);
		CHECK(o.kind == OUTCOME_SENT);
		CHECK(o.response_id == NULL);
		CHECK(o.warn_no_id);
		outcome_fini(&o);
	}
}

static void
test_2xx_with_a_cut_reply_is_sent_with_its_error(void)
{
	struct webhook_result r = http(200, "{\"messageId\":\"abc");
	struct outcome o;

	r.body_truncated = true;
	r.error = WEBHOOK_REPLY_TOO_LARGE;
	outcome_decide(&o, &r, 0, 5, 5000, -1);
	CHECK(o.kind == OUTCOME_SENT);
	CHECK(o.response_id == NULL);
	CHECK_STR(o.error, WEBHOOK_REPLY_TOO_LARGE);
	outcome_fini(&o);
}

/* Found by fuzz_reply: seconds whose milliseconds overflow int64_t. */
static void
test_huge_retry_after_is_capped(void)
{
	CHECK(outcome_retry_delay_ms(1, 100, 34905276037096620LL) ==
	    TIMING_RETRY_MAX_DELAY_MS);
	CHECK(outcome_retry_delay_ms(1, 100, INT64_MAX) ==
	    TIMING_RETRY_MAX_DELAY_MS);
	CHECK(outcome_retry_delay_ms(1, 100, 3600) == 3600 * 1000);
}

static void
test_retryable(void)
{
	static const long codes[] = { 408, 429, 500, 502, 503, 504, 599, 301 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct webhook_result r = http(codes[i], "{}");
		struct outcome o;

		outcome_decide(&o, &r, 0, 5, 5000, -1);
		CHECK(o.kind == OUTCOME_RETRY);
		CHECK(o.retry_count == 1);
		CHECK(o.code == codes[i]);
		CHECK(o.error != NULL && strstr(o.error, "HTTP") != NULL);
		CHECK(o.delay_ms >= 4000 && o.delay_ms <= 6000);
		outcome_fini(&o);
	}
}

/* A 200 status line whose body never came in time is not an answer: no
 * HTTP status is recorded, and the attempt counts as failed. */
static void
test_timeout_after_status_has_no_code(void)
{
	struct webhook_result r = http(200, NULL);
	struct outcome o;

	r.curl_code = 28;
	r.error = "Operation timed out after 1000 milliseconds";
	outcome_decide(&o, &r, 0, 5, 5000, -1);
	CHECK(o.kind == OUTCOME_RETRY);
	CHECK(o.code == 0);
	CHECK(o.attempt == 1);
	outcome_fini(&o);
	r = http(202, "{\"messageId\":\"x\"}");
	outcome_decide(&o, &r, 3, 5, 5000, -1);
	CHECK(o.kind == OUTCOME_SENT && o.code == 202 && o.attempt == 4);
	outcome_fini(&o);
}

static void
test_transport_error_retries(void)
{
	struct webhook_result r = http(0, NULL);
	struct outcome o;

	r.curl_code = 28;
	r.error = "Operation timed out after 1000 milliseconds";
	outcome_decide(&o, &r, 1, 5, 5000, -1);
	CHECK(o.kind == OUTCOME_RETRY);
	CHECK(o.retry_count == 2);
	CHECK(o.code == 0);
	CHECK(o.error && strstr(o.error, "timed out") != NULL);
	CHECK(o.delay_ms >= 8000 && o.delay_ms <= 12000);
	outcome_fini(&o);
}

static void
test_permanent_4xx(void)
{
	static const long codes[] = { 400, 401, 403, 404, 410, 422 };

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		struct webhook_result r = http(codes[i], "{}");
		struct outcome o;

		outcome_decide(&o, &r, 0, 5, 5000, -1);
		CHECK(o.kind == OUTCOME_FAILED);
		CHECK(o.retry_count == 1);
		CHECK(o.error && strstr(o.error, "HTTP 4") != NULL);
		outcome_fini(&o);
	}
}

static void
test_gives_up_after_max_attempts(void)
{
	struct webhook_result r = http(500, NULL);
	struct outcome o;

	outcome_decide(&o, &r, 3, 5, 5000, -1); /* 4th attempt */
	CHECK(o.kind == OUTCOME_RETRY);
	outcome_fini(&o);
	outcome_decide(&o, &r, 4, 5, 5000, -1); /* 5th attempt: the last */
	CHECK(o.kind == OUTCOME_FAILED);
	CHECK(o.retry_count == 5);
	CHECK(o.error && strstr(o.error, "gave up after 5 attempts") != NULL);
	outcome_fini(&o);
	outcome_decide(&o, &r, 0, 1, 5000, -1); /* MAX_ATTEMPTS=1 */
	CHECK(o.kind == OUTCOME_FAILED);
	outcome_fini(&o);
}

/* A failure the circuit blames on an outage counts as an attempt but
 * never fails its message, and is due again within the probe interval;
 * a permanent 4xx still fails at once. */
static void
test_outage_holds_the_last_attempt(void)
{
	struct webhook_result r = http(503, NULL);
	struct outcome o;

	outcome_decide(&o, &r, 4, 5, 5000, 30000); /* 5th of 5 */
	CHECK(o.kind == OUTCOME_RETRY);
	CHECK(o.retry_count == 5);
	CHECK(o.delay_ms <= 30000);
	outcome_fini(&o);
	outcome_decide(&o, &r, 9, 5, 5000, 1000); /* past the limit: held */
	CHECK(o.kind == OUTCOME_RETRY && o.retry_count == 10);
	CHECK(o.delay_ms <= 1000);
	outcome_fini(&o);
	r.http_status = 404;
	outcome_decide(&o, &r, 0, 5, 5000, 30000);
	CHECK(o.kind == OUTCOME_FAILED);
	outcome_fini(&o);
	/* What the circuit counts: transport errors, 429 and 5xx only. */
	CHECK(outcome_receiver_down(&r) == false);
	r.http_status = 429;
	CHECK(outcome_receiver_down(&r));
	r.http_status = 500;
	CHECK(outcome_receiver_down(&r));
	r.http_status = 408;
	CHECK(outcome_receiver_down(&r) == false);
	r.http_status = 0;
	r.curl_code = 28;
	CHECK(outcome_receiver_down(&r));
}

static void
test_retry_after(void)
{
	struct webhook_result r = http(429, NULL);
	struct outcome o;

	r.retry_after_s = 7;
	outcome_decide(&o, &r, 0, 5, 5000, -1);
	CHECK(o.kind == OUTCOME_RETRY && o.delay_ms == 7000);
	outcome_fini(&o);
	r.http_status = 503;
	r.retry_after_s = 999999;
	outcome_decide(&o, &r, 0, 5, 5000, -1);
	CHECK(o.delay_ms == TIMING_RETRY_MAX_DELAY_MS);
	outcome_fini(&o);
	/* Only 429 and 503 carry a meaningful Retry-After. */
	r.http_status = 500;
	r.retry_after_s = 7;
	outcome_decide(&o, &r, 0, 5, 5000, -1);
	CHECK(o.delay_ms >= 4000 && o.delay_ms <= 6000);
	outcome_fini(&o);
}

static void
test_schedule(void)
{
	/* base 5 s: 5, 10, 20, 40, 80 s ... capped at 1 h; +-20 %. */
	for (int attempt = 1; attempt <= 20; attempt++) {
		long long nominal = 5000LL << (attempt - 1);
		int64_t d;

		if (nominal > TIMING_RETRY_MAX_DELAY_MS || attempt > 12)
			nominal = TIMING_RETRY_MAX_DELAY_MS;
		d = outcome_retry_delay_ms(attempt, 5000, -1);
		CHECK(d >= nominal * 8 / 10 && d <= nominal * 12 / 10);
	}
}

static void
test_pgarray(void)
{
	struct pgarray a;

	pgarray_init(&a);
	CHECK_STR(pgarray_text(&a), "{}");
	pgarray_add(&a, "1");
	pgarray_add(&a, NULL);
	pgarray_add(&a, "a \"quoted\", \\ {x}");
	pgarray_add(&a, "");
	CHECK_STR(pgarray_text(&a),
	    "{\"1\",NULL,\"a \\\"quoted\\\", \\\\ {x}\",\"\"}");
	pgarray_fini(&a);
	pgarray_init(&a);
	pgarray_add_int(&a, 0);
	pgarray_add_int(&a, 42);
	pgarray_add_int(&a, -7);
	pgarray_add_int(&a, 9223372036854775807LL);
	pgarray_add_int(&a, -9223372036854775807LL - 1);
	pgarray_add(&a, "\"\"\\");
	CHECK_STR(pgarray_text(&a),
	    "{0,42,-7,9223372036854775807,-9223372036854775808,"
	    "\"\\\"\\\"\\\\\"}");
	pgarray_fini(&a);
}

/* store has its own status type; both spell the column's CHECK values. */
static void
test_status_names(void)
{
	CHECK_STR(store_status_name(STORE_PENDING), "pending");
	CHECK_STR(store_status_name(STORE_SENT), "sent");
	CHECK_STR(store_status_name(STORE_FAILED), "failed");
	CHECK_STR(outcome_status(OUTCOME_RETRY), "pending");
	CHECK_STR(outcome_status(OUTCOME_SENT), "sent");
	CHECK_STR(outcome_status(OUTCOME_FAILED), "failed");
}

int
main(void)
{
	RUN(test_2xx_is_sent);
	RUN(test_2xx_without_id_is_still_sent);
	RUN(test_2xx_with_a_cut_reply_is_sent_with_its_error);
	RUN(test_huge_retry_after_is_capped);
	RUN(test_retryable);
	RUN(test_transport_error_retries);
	RUN(test_timeout_after_status_has_no_code);
	RUN(test_permanent_4xx);
	RUN(test_gives_up_after_max_attempts);
	RUN(test_outage_holds_the_last_attempt);
	RUN(test_retry_after);
	RUN(test_schedule);
	RUN(test_pgarray);
	RUN(test_status_names);
	return harness_done();
}
