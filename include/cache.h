/* cache.h - the Redis side of a delivery: one entry per sent message.
 *
 * Redis is only a cache: writes are fire and forget. A write that fails,
 * times out or finds Redis down is logged at warn (with the message id)
 * and counted; it never blocks or fails the delivery. Writes in flight
 * are part of redis_pending() of the client they went to.
 */
#ifndef GOPULSE_CACHE_H
#define GOPULSE_CACHE_H

#include <stdint.h>

#include "common.h"
#include "redis.h"

struct cache_stats {
	uint64_t written;	/* Redis answered OK */
	uint64_t failed;	/* error reply, timeout, link lost */
	uint64_t skipped;	/* not sent: Redis not ready, bad input */
};

/* SET message:<id> {"messageId": <message_id or null>, "sentAt": sent_at}
 * EX <ttl_ms in seconds, rounded up>; ttl_ms <= 0 stores without expiry.
 * message_id may be NULL or any bytes (a webhook's reply): if it is not
 * valid UTF-8 it is stored as null. 0 when sent, -1 when skipped (Redis
 * not ready, sent_at missing); both are logged, neither needs handling. */
int cache_put_sent(struct redis_client *rc, int64_t id,
    const char *message_id, const char *sent_at, int64_t ttl_ms);

/* Counters since start, for readiness and metrics. */
void cache_get_stats(struct cache_stats *out);

#endif
