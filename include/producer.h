/* producer.h - inserts one fake pending message every interval. */
#ifndef GOPULSE_PRODUCER_H
#define GOPULSE_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

struct pg_conn;
struct producer;

struct producer *prod_new(struct event_base *base, struct pg_conn *pg,
    int64_t interval_ms);
/* No-op when the interval is 0. */
void prod_start(struct producer *p);
void prod_stop(struct producer *p);
bool prod_busy(const struct producer *p);
void prod_free(struct producer *p);

#endif
