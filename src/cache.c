/* cache.c - the Redis side of a delivery: one entry per sent message. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "jsonbuf.h"
#include "log.h"
#include "metrics.h"
#include "streak.h"
#include "timing.h"
#include "util.h"

/* Writes skipped since Redis was last ready; process-wide, as the service
 * has one thread and one Redis client. */
static uint64_t cache_down_streak;
/* Every write missed (skipped, failed, timed out), and the wall-clock time
 * of the first one not yet rewritten (cacheheal.c), 0 for none. */
static uint64_t cache_misses;
static int64_t cache_missed_since_ms;

/* A failed write may have been sent up to a command's deadline before it
 * failed, and its message sent a little before that. */
static void
cache_missed(void)
{
	cache_misses++;
	if (cache_missed_since_ms == 0)
		cache_missed_since_ms = util_wall_ms() - TIMING_REDIS_OP_MS;
}

uint64_t
cache_miss_count(void)
{
	return cache_misses;
}

int64_t
cache_missed_since(void)
{
	return cache_missed_since_ms;
}

void
cache_missed_rewritten(void)
{
	cache_missed_since_ms = 0;
}

/* A stalled or failing Redis fails every write: one warning, then
 * counts, not a line per message. */
static struct streak cache_failing = STREAK_INIT(LOG_WARN, "cache",
    "cache write failed", "cache writes still failing",
    "cache writes succeed again");

struct cache_put {
	int64_t id;
};

static void
cache_on_reply(void *arg, const redisReply *reply, const char *err)
{
	struct cache_put *put = arg;

	metrics.cache_writes[err != NULL ? METRICS_CACHE_ERROR :
					   METRICS_CACHE_OK]++;
	if (err != NULL) {
		cache_missed();
		if (!streak_hit(&cache_failing, "{s:I, s:s}", "id",
			(json_int_t)put->id, "reason", err))
			log_debug("cache", "cache write failed", "{s:I, s:s}",
			    "id", (json_int_t)put->id, "reason", err);
	} else {
		streak_end(&cache_failing);
		log_debug("cache", "cache written", "{s:I, s:i}", "id",
		    (json_int_t)put->id, "reply_type", reply->type);
	}
	free(put);
}

/* {"messageId":...,"sentAt":...} into b. The webhook's messageId is
 * whatever bytes it sent: if it is not valid UTF-8 (jansson would refuse
 * it too), null is stored instead. -1 when sent_at itself is not. */
static int
cache_value(struct jsonbuf *b, const char *message_id, const char *sent_at)
{
	jsonbuf_raw(b, "{\"messageId\":", 13);
	if (message_id == NULL || jsonbuf_string(b, message_id) != 0)
		jsonbuf_raw(b, "null", 4);
	jsonbuf_raw(b, ",\"sentAt\":", 10);
	if (jsonbuf_string(b, sent_at) != 0)
		return -1;
	jsonbuf_raw(b, "}", 1);
	return 0;
}

int
cache_put_sent(struct redis_client *rc, int64_t id, const char *message_id,
    const char *sent_at, int64_t ttl_ms)
{
	const char *argv[5];
	size_t argvlen[5];
	char key[32], ttl[24];
	struct jsonbuf value;
	struct cache_put *put;
	int argc = 3;
	int ret = 0;

	if (!redis_is_ready(rc)) {
		cache_missed();
		metrics.cache_writes[METRICS_CACHE_SKIPPED]++;
		/* A backlog drained while Redis is down would otherwise log a
		 * warning per message: warn once, then count. */
		log_write(cache_down_streak++ == 0 ? LOG_WARN : LOG_DEBUG,
		    "cache", "cache write skipped: redis not ready",
		    "{s:I, s:s}", "id", (json_int_t)id, "state",
		    redis_state_name(redis_get_state(rc)));
		return -1;
	}
	if (cache_down_streak > 0) {
		log_info("cache",
		    "redis back: cache writes missed while it was "
		    "down will be rewritten from PostgreSQL",
		    "{s:I}", "missed", (json_int_t)cache_down_streak);
		cache_down_streak = 0;
	}
	jsonbuf_init(&value);
	if (sent_at == NULL || cache_value(&value, message_id, sent_at) != 0) {
		log_warn("cache", "cache write skipped: bad sentAt", "{s:I}",
		    "id", (json_int_t)id);
		jsonbuf_fini(&value);
		return -1;
	}
	snprintf(key, sizeof(key), "message:%" PRId64, id);
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = jsonbuf_text(&value);
	if (ttl_ms > 0) {
		/* Rounded up: an entry must not expire before its TTL. */
		snprintf(ttl, sizeof(ttl), "%" PRId64, (ttl_ms + 999) / 1000);
		argv[3] = "EX";
		argv[4] = ttl;
		argc = 5;
	}
	for (int i = 0; i < argc; i++)
		argvlen[i] = strlen(argv[i]);
	put = xmalloc(sizeof(*put));
	put->id = id;
	/* hiredis copies the arguments into its output buffer. */
	if (redis_command(rc, cache_on_reply, put, argc, argv, argvlen) != 0) {
		cache_missed();
		metrics.cache_writes[METRICS_CACHE_SKIPPED]++;
		log_warn("cache", "cache write skipped: redis refused it",
		    "{s:I}", "id", (json_int_t)id);
		free(put);
		ret = -1;
	}
	jsonbuf_fini(&value);
	return ret;
}

int
cache_get_sent(struct redis_client *rc, int64_t id, redis_reply_cb cb,
    void *arg)
{
	char key[32];
	const char *argv[2] = { "GET", key };
	size_t argvlen[2];

	if (!redis_is_ready(rc))
		return -1;
	snprintf(key, sizeof(key), "message:%" PRId64, id);
	argvlen[0] = 3;
	argvlen[1] = strlen(key);
	return redis_command(rc, cb, arg, 2, argv, argvlen);
}
