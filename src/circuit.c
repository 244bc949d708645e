/* circuit.c - the receiver's circuit breaker (see circuit.h). */
#include "circuit.h"
#include "timing.h"

void
circuit_init(struct circuit *c, int threshold, int64_t probe_interval_ms)
{
	c->state = CIRCUIT_CLOSED;
	c->threshold = threshold;
	c->streak = 0;
	c->last_fail = -1;
	c->probe_at_ms = 0;
	c->probe_interval_ms = probe_interval_ms;
	c->probe_empty = false;
}

bool
circuit_success(struct circuit *c)
{
	bool was_open = c->state != CIRCUIT_CLOSED;

	c->state = CIRCUIT_CLOSED;
	c->streak = 0;
	c->last_fail = -1;
	c->probe_empty = false;
	return was_open;
}

bool
circuit_failure(struct circuit *c, int64_t id, int64_t now_ms, bool *opened)
{
	bool outage = c->state != CIRCUIT_CLOSED ||
	    (c->streak > 0 && c->last_fail != id);

	*opened = false;
	/* Switched off: the attempts decide alone, as without a circuit. */
	if (c->threshold <= 0)
		return false;
	if (c->streak < INT32_MAX)
		c->streak++;
	c->last_fail = id;
	if (c->state == CIRCUIT_HALF_OPEN ||
	    (c->state == CIRCUIT_CLOSED && c->threshold > 0 &&
		c->streak >= c->threshold)) {
		*opened = c->state == CIRCUIT_CLOSED;
		c->state = CIRCUIT_OPEN;
		c->probe_at_ms = now_ms + c->probe_interval_ms;
		c->probe_empty = false;
		/* The failure that opens it is part of the outage it saw. */
		outage = true;
	}
	return outage;
}

bool
circuit_probe_due(const struct circuit *c, int64_t now_ms)
{
	return c->state == CIRCUIT_OPEN && now_ms >= c->probe_at_ms;
}

void
circuit_probing(struct circuit *c)
{
	if (c->state == CIRCUIT_OPEN)
		c->state = CIRCUIT_HALF_OPEN;
}

void
circuit_probe_skipped(struct circuit *c, int64_t now_ms)
{
	c->state = CIRCUIT_OPEN;
	c->probe_at_ms = now_ms + c->probe_interval_ms;
	c->probe_empty = false;
}

void
circuit_probe_empty(struct circuit *c, int64_t now_ms)
{
	c->state = CIRCUIT_OPEN;
	c->probe_at_ms = now_ms + TIMING_PROBE_EMPTY_MS;
	c->probe_empty = true;
}

bool
circuit_closed(const struct circuit *c)
{
	return c->state == CIRCUIT_CLOSED;
}

int64_t
circuit_probe_in_ms(const struct circuit *c, int64_t now_ms)
{
	if (c->state != CIRCUIT_OPEN || now_ms >= c->probe_at_ms)
		return 0;
	return c->probe_at_ms - now_ms;
}

const char *
circuit_name(enum circuit_state state)
{
	return state == CIRCUIT_OPEN   ? "open" :
	    state == CIRCUIT_HALF_OPEN ? "half-open" :
					 "closed";
}
