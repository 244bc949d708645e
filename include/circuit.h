/* circuit.h - the receiver's circuit breaker.
 *
 * Closed: requests flow. After `threshold` consecutive retryable failures
 * (timeout, connection error, 5xx, 429) it opens: nothing new is claimed
 * and no message spends an attempt, except one probe per interval (half
 * open while it flies). The probe's success closes it; its failure opens
 * it for another interval. Pure: the caller passes the time and acts on
 * the transitions; unit-tested. */
#ifndef GOPULSE_CIRCUIT_H
#define GOPULSE_CIRCUIT_H

#include <stdbool.h>
#include <stdint.h>

enum circuit_state { CIRCUIT_CLOSED, CIRCUIT_OPEN, CIRCUIT_HALF_OPEN };

struct circuit {
	enum circuit_state state;
	int threshold;	   /* 0 = never opens */
	int streak;	   /* consecutive retryable failures */
	int64_t last_fail; /* the message of the latest of them */
	int64_t probe_at_ms;
	int64_t probe_interval_ms;
	bool probe_empty; /* the last probe found nothing due to send */
};

void circuit_init(struct circuit *c, int threshold, int64_t probe_interval_ms);

/* A reply that shows the receiver alive (2xx, or a 4xx that is not 429).
 * True when it closed the circuit. */
bool circuit_success(struct circuit *c);

/* A retryable failure of message id at now_ms. *opened is set when it
 * opened the circuit. Returns whether the failure belongs to an outage:
 * the circuit was already open or half open, or the failure before it
 * was another message's (one message failing alone says nothing of the
 * receiver). Such a failure never makes its message `failed`. */
bool circuit_failure(struct circuit *c, int64_t id, int64_t now_ms,
    bool *opened);

/* Open and its interval is up: the caller sends one probe and calls
 * circuit_probing. */
bool circuit_probe_due(const struct circuit *c, int64_t now_ms);
void circuit_probing(struct circuit *c);
/* No probe was sent, sending being stopped: the next one an interval on. */
void circuit_probe_skipped(struct circuit *c, int64_t now_ms);
/* The probe found nothing due, so it spared the receiver nothing: the next
 * one TIMING_PROBE_EMPTY_MS on, and probe_empty says so until a probe
 * sends something or sending stops. */
void circuit_probe_empty(struct circuit *c, int64_t now_ms);

/* New work may be claimed and posted. */
bool circuit_closed(const struct circuit *c);
/* ms until the next probe is due (0 when due or not open). */
int64_t circuit_probe_in_ms(const struct circuit *c, int64_t now_ms);
const char *circuit_name(enum circuit_state state);

#endif
