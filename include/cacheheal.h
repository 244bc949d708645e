/* cacheheal.h - cache entries missed during a Redis outage, rewritten.
 *
 * While Redis is down or frozen, cache writes are skipped or fail (cache.c
 * counts them and notes when the first was missed). Once Redis is ready
 * again, the messages sent since then are read from PostgreSQL in pages,
 * oldest first, and their entries written with what is left of CACHE_TTL
 * (those that would already have expired are skipped). One page at a
 * time, and the next only once Redis has answered most of the last one's
 * writes, so memory stays bounded whatever the outage's length. A pass in
 * which a write is missed again is done again from the same start. */
#ifndef GOPULSE_CACHEHEAL_H
#define GOPULSE_CACHEHEAL_H

#include <stdint.h>

#include <event2/event.h>

#include "pg.h"
#include "redis.h"

struct cacheheal;

struct cacheheal *cacheheal_new(struct event_base *base, struct pg_conn *pg,
    struct redis_client *rc, int64_t ttl_ms);
/* After pg_free, whose failing of a query still out calls us back. */
void cacheheal_free(struct cacheheal *h);

#endif
