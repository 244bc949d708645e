/* cache.h - the Redis side of a delivery: one entry per sent message.
 *
 * Redis is only a cache: writes are fire and forget. A write that fails or
 * times out is logged at warn with the message id; writes skipped while
 * Redis is down are counted and reported when it is back, and every miss
 * is rewritten later from PostgreSQL (cacheheal.c). Nothing here blocks
 * or fails the delivery. Writes in flight
 * are part of redis_pending() of the client they went to.
 */
#ifndef GOPULSE_CACHE_H
#define GOPULSE_CACHE_H

#include <stdint.h>

#include "common.h"
#include "redis.h"

/* SET message:<id> {"messageId": <message_id or null>, "sentAt": sent_at}
 * EX <ttl_ms in seconds, rounded up>; ttl_ms <= 0 stores without expiry.
 * message_id may be NULL or any bytes (a webhook's reply): if it is not
 * valid UTF-8 it is stored as null. 0 when sent, -1 when skipped (Redis
 * not ready, sent_at missing); both are logged, neither needs handling. */
int cache_put_sent(struct redis_client *rc, int64_t id, const char *message_id,
    const char *sent_at, int64_t ttl_ms);

/* Writes missed so far (skipped while Redis was down, failed, timed out),
 * and the wall-clock ms from which entries may be missing (0 when none
 * is): cacheheal.c rewrites them from PostgreSQL, then clears it. */
uint64_t cache_miss_count(void);
int64_t cache_missed_since(void);
void cache_missed_rewritten(void);

/* GET message:<id>; cb as redis_command's. -1 (cb never runs) when
 * Redis is not ready: the caller does not wait for it. */
int cache_get_sent(struct redis_client *rc, int64_t id, redis_reply_cb cb,
    void *arg) MUSTCHECK;

#endif
