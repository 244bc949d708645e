/* pacer.c - request starts paced on the loop (see pacer.h). */
#include "pacer.h"
#include "timing.h"

void
pacer_init(struct pacer *p, int rate)
{
	p->rate = rate;
	p->next_us = 0;
	p->paused_until = 0;
}

int64_t
pacer_take(struct pacer *p, int64_t now_us)
{
	int64_t wait_ms = pacer_paused_ms(p, now_us / 1000);

	if (wait_ms > 0)
		return wait_ms;
	if (p->rate <= 0)
		return 0;
	if (now_us < p->next_us)
		return (p->next_us - now_us + 999) / 1000;
	/* An idle bucket holds one token, not the ones an idle while would
	 * have added: no burst after a quiet spell. Otherwise each start is
	 * spaced from the one before, not from now, so a late timer does not
	 * slow the rate down. */
	if (p->next_us == 0 || now_us - p->next_us > 1000000 / p->rate)
		p->next_us = now_us;
	p->next_us += 1000000 / p->rate;
	return 0;
}

void
pacer_pause(struct pacer *p, int64_t now_ms, int64_t delay_ms)
{
	int64_t until;

	if (delay_ms <= 0)
		return;
	if (delay_ms > TIMING_RETRY_MAX_DELAY_MS)
		delay_ms = TIMING_RETRY_MAX_DELAY_MS;
	until = now_ms + delay_ms;
	if (until > p->paused_until)
		p->paused_until = until;
}

int64_t
pacer_paused_ms(const struct pacer *p, int64_t now_ms)
{
	return now_ms < p->paused_until ? p->paused_until - now_ms : 0;
}
