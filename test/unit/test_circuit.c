/* test_circuit.c - the circuit breaker's states and the pacer's spacing. */
#include "circuit.h"
#include "harness.h"
#include "pacer.h"
#include "timing.h"

static void
test_opens_after_threshold_and_probes(void)
{
	struct circuit c;
	bool opened;

	circuit_init(&c, 3, 30000);
	CHECK(circuit_closed(&c));
	CHECK(!circuit_failure(&c, 1, 0, &opened) && !opened); /* first */
	CHECK(circuit_failure(&c, 2, 0, &opened) && !opened);  /* another's */
	CHECK(circuit_failure(&c, 3, 100, &opened) && opened);
	CHECK(c.state == CIRCUIT_OPEN);
	CHECK_STR(circuit_name(c.state), "open");
	CHECK(!circuit_probe_due(&c, 30099));
	CHECK(circuit_probe_in_ms(&c, 100) == 30000);
	CHECK(circuit_probe_due(&c, 30100));
	circuit_probing(&c);
	CHECK_STR(circuit_name(c.state), "half-open");
	/* The probe fails: open for another interval, not "opened" again. */
	CHECK(circuit_failure(&c, 7, 31000, &opened) && !opened);
	CHECK(c.state == CIRCUIT_OPEN &&
	    circuit_probe_in_ms(&c, 31000) == 30000);
	circuit_probing(&c);
	CHECK(circuit_success(&c)); /* closed by the probe */
	CHECK(circuit_closed(&c) && c.streak == 0);
	CHECK(!circuit_success(&c)); /* already closed */
}

static void
test_one_message_failing_alone_is_not_an_outage(void)
{
	struct circuit c;
	bool opened;

	circuit_init(&c, 20, 30000);
	for (int i = 0; i < 5; i++)
		CHECK(!circuit_failure(&c, 42, i, &opened) && !opened);
	/* Another message fails after it: now it looks like the receiver. */
	CHECK(circuit_failure(&c, 43, 10, &opened));
	/* A success in between resets the streak. */
	circuit_success(&c);
	CHECK(!circuit_failure(&c, 44, 11, &opened));
}

static void
test_zero_never_opens(void)
{
	struct circuit c;
	bool opened;

	circuit_init(&c, 0, 30000);
	for (int i = 0; i < 1000; i++)
		(void)circuit_failure(&c, i, i, &opened);
	CHECK(circuit_closed(&c) && !opened);
}

static void
test_probe_skipped(void)
{
	struct circuit c;
	bool opened;

	circuit_init(&c, 1, 500);
	CHECK(circuit_failure(&c, 1, 0, &opened) && opened);
	circuit_probing(&c);
	circuit_probe_skipped(&c, 600);
	CHECK(c.state == CIRCUIT_OPEN && circuit_probe_in_ms(&c, 600) == 500);
	CHECK(!c.probe_empty);
	/* A probe with nothing due: the next one sooner, and remembered
	 * until a probe sends something (here, one that fails). */
	circuit_probing(&c);
	circuit_probe_empty(&c, 1100);
	CHECK(c.state == CIRCUIT_OPEN &&
	    circuit_probe_in_ms(&c, 1100) == TIMING_PROBE_EMPTY_MS);
	CHECK(c.probe_empty);
	circuit_probing(&c);
	CHECK(circuit_failure(&c, 2, 2200, &opened) && !opened);
	CHECK(!c.probe_empty && circuit_probe_in_ms(&c, 2200) == 500);
}

static void
test_pacer_spacing(void)
{
	struct pacer p;
	int64_t t = 1000000, started = 0;

	pacer_init(&p, 0);
	CHECK(pacer_take(&p, t) == 0 && pacer_take(&p, t) == 0);
	pacer_init(&p, 20); /* one start every 50 ms */
	CHECK(pacer_take(&p, t) == 0);
	CHECK(pacer_take(&p, t) == 50);
	CHECK(pacer_take(&p, t + 49000) == 1);
	CHECK(pacer_take(&p, t + 50000) == 0);
	/* A caller that asks whenever it is told to starts exactly 20/s,
	 * even when each wake-up is a little late. */
	pacer_init(&p, 20);
	for (int64_t now = 0; now < 10000000;) {
		int64_t w = pacer_take(&p, now);

		if (w == 0)
			started++;
		else
			now += w * 1000 + 700;
	}
	CHECK(started >= 199 && started <= 201);
	/* No burst after a quiet spell. */
	CHECK(pacer_take(&p, 60000000) == 0);
	CHECK(pacer_take(&p, 60000000) == 50);
}

static void
test_pacer_pause(void)
{
	struct pacer p;

	pacer_init(&p, 0);
	pacer_pause(&p, 1000, 5000);
	CHECK(pacer_paused_ms(&p, 1000) == 5000);
	CHECK(pacer_take(&p, 2000 * 1000) == 4000);
	pacer_pause(&p, 2000, 1000); /* shorter: the longer one stands */
	CHECK(pacer_paused_ms(&p, 2000) == 4000);
	pacer_pause(&p, 0, 99 * TIMING_RETRY_MAX_DELAY_MS); /* bounded */
	CHECK(pacer_paused_ms(&p, 0) == TIMING_RETRY_MAX_DELAY_MS);
	CHECK(pacer_take(&p, (TIMING_RETRY_MAX_DELAY_MS + 1) * 1000) == 0);
}

int
main(void)
{
	RUN(test_opens_after_threshold_and_probes);
	RUN(test_one_message_failing_alone_is_not_an_outage);
	RUN(test_zero_never_opens);
	RUN(test_probe_skipped);
	RUN(test_pacer_spacing);
	RUN(test_pacer_pause);
	return harness_done();
}
