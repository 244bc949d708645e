/* test_reconnect.c - the reconnect policy: delays, cap, jitter, logging. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "reconnect.h"
#include "timing.h"

/* The nominal delay of an attempt: base doubling, at most the cap. */
static int64_t
nominal_ms(unsigned attempt)
{
	int64_t d = TIMING_RECONNECT_BASE_MS;

	while (attempt-- > 0 && d < TIMING_RECONNECT_CAP_MS)
		d *= 2;
	return d < TIMING_RECONNECT_CAP_MS ? d : TIMING_RECONNECT_CAP_MS;
}

static bool
within_jitter(int64_t got, int64_t nominal)
{
	int64_t span = nominal * TIMING_RECONNECT_JITTER_PCT / 100;

	return got >= nominal - span && got <= nominal + span;
}

static void
test_delays_double_up_to_the_cap(void)
{
	struct reconnect rc;
	bool reached_cap = false;

	memset(&rc, 0, sizeof(rc));
	for (unsigned i = 0; i < 12; i++) {
		int64_t d;

		CHECK(reconnect_attempts(&rc) == i);
		d = reconnect_next_delay_ms(&rc);
		CHECK(within_jitter(d, nominal_ms(i)));
		if (!within_jitter(d, nominal_ms(i)))
			fprintf(stderr, "  attempt %u: %lld ms\n", i,
			    (long long)d);
		reached_cap = reached_cap ||
		    nominal_ms(i) == TIMING_RECONNECT_CAP_MS;
	}
	CHECK(reached_cap);
	/* The first retry is quick: a blip costs 100 ms, not seconds. */
	memset(&rc, 0, sizeof(rc));
	CHECK(reconnect_next_delay_ms(&rc) <= TIMING_RECONNECT_BASE_MS *
		(100 + TIMING_RECONNECT_JITTER_PCT) / 100);
}

/* Instances that lost the same server must spread out. */
static void
test_delays_are_jittered(void)
{
	int64_t lo = INT64_MAX, hi = 0;
	int64_t span = TIMING_RECONNECT_CAP_MS * TIMING_RECONNECT_JITTER_PCT /
	    100;

	for (int i = 0; i < 500; i++) {
		struct reconnect rc = { .attempt = 20 };
		int64_t d = reconnect_next_delay_ms(&rc);

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CHECK(lo >= TIMING_RECONNECT_CAP_MS - span);
	CHECK(hi <= TIMING_RECONNECT_CAP_MS + span);
	/* 500 draws over +-1000 ms cover most of the range. */
	CHECK(hi - lo > span);
}

/* A server down for days neither wraps the counter nor grows the delay. */
static void
test_attempts_are_capped(void)
{
	struct reconnect rc;
	unsigned settled = 0;
	int bad = 0;

	memset(&rc, 0, sizeof(rc));
	for (int i = 0; i < 100000; i++) {
		int64_t d = reconnect_next_delay_ms(&rc);

		if (i >= 10 && !within_jitter(d, TIMING_RECONNECT_CAP_MS))
			bad++;
		if (i == 1000)
			settled = reconnect_attempts(&rc);
	}
	CHECK(bad == 0);
	CHECK(settled >= 10 && settled < 1000);
	CHECK(reconnect_attempts(&rc) == settled);
}

static void
test_first_failure_warns_the_rest_debug(void)
{
	struct reconnect rc;

	memset(&rc, 0, sizeof(rc));
	CHECK(reconnect_failed(&rc, false) == LOG_WARN);
	(void)reconnect_next_delay_ms(&rc);
	CHECK(reconnect_failed(&rc, false) == LOG_DEBUG);
	(void)reconnect_next_delay_ms(&rc);
	CHECK(reconnect_failed(&rc, false) == LOG_DEBUG);
	CHECK(reconnect_attempts(&rc) == 2);
}

/* Losing a link that was up is news even in the middle of an outage (a
 * migration that fails after every connect, a handshake refused). */
static void
test_loss_of_an_up_link_always_warns(void)
{
	struct reconnect rc;

	memset(&rc, 0, sizeof(rc));
	CHECK(reconnect_failed(&rc, true) == LOG_WARN);
	CHECK(reconnect_failed(&rc, false) == LOG_DEBUG);
	CHECK(reconnect_failed(&rc, true) == LOG_WARN);
	CHECK(reconnect_failed(&rc, false) == LOG_DEBUG);
}

static void
test_success_starts_over(void)
{
	struct reconnect rc;

	memset(&rc, 0, sizeof(rc));
	for (int i = 0; i < 8; i++) {
		(void)reconnect_failed(&rc, false);
		(void)reconnect_next_delay_ms(&rc);
	}
	CHECK(reconnect_attempts(&rc) == 8);
	reconnect_succeeded(&rc);
	CHECK(reconnect_attempts(&rc) == 0);
	CHECK(reconnect_failed(&rc, false) == LOG_WARN);
	CHECK(within_jitter(reconnect_next_delay_ms(&rc),
	    TIMING_RECONNECT_BASE_MS));
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	RUN(test_delays_double_up_to_the_cap);
	RUN(test_delays_are_jittered);
	RUN(test_attempts_are_capped);
	RUN(test_first_failure_warns_the_rest_debug);
	RUN(test_loss_of_an_up_link_always_warns);
	RUN(test_success_starts_over);
	return harness_done();
}
