/* cache.c - the Redis side of a delivery: one entry per sent message. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cache.h"
#include "log.h"
#include "util.h"

/* Writes skipped since Redis was last ready; process-wide, as the service
 * has one thread and one Redis client. */
static uint64_t cache_down_streak;

struct cache_put {
	int64_t id;
};

static void
cache_on_reply(void *arg, const redisReply *reply, const char *err)
{
	struct cache_put *put = arg;

	if (err != NULL) {
		log_warn("cache", "cache write failed", "{s:I, s:s}", "id",
		    (json_int_t)put->id, "reason", err);
	} else {
		log_debug("cache", "cache written", "{s:I, s:i}", "id",
		    (json_int_t)put->id, "reply_type", reply->type);
	}
	free(put);
}

/* The webhook's messageId is whatever bytes it sent: jansson refuses
 * invalid UTF-8 (NULL), and then null is stored instead. */
static char *
cache_value(const char *message_id, const char *sent_at)
{
	json_t *mid = message_id ? json_string(message_id) : NULL;
	json_t *sent = json_string(sent_at);
	json_t *obj;
	char *s;

	if (sent == NULL) {
		json_decref(mid);
		return NULL;
	}
	obj = json_object();
	json_object_set_new(obj, "messageId", mid ? mid : json_null());
	json_object_set_new(obj, "sentAt", sent);
	s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return s;
}

int
cache_put_sent(struct redis_client *rc, int64_t id, const char *message_id,
    const char *sent_at, int64_t ttl_ms)
{
	const char *argv[5];
	size_t argvlen[5];
	char key[32], ttl[24];
	char *value;
	struct cache_put *put;
	int argc = 3;

	if (!redis_is_ready(rc)) {
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
		    "down are not replayed",
		    "{s:I}", "missed", (json_int_t)cache_down_streak);
		cache_down_streak = 0;
	}
	if (sent_at == NULL ||
	    (value = cache_value(message_id, sent_at)) == NULL) {
		log_warn("cache", "cache write skipped: bad sentAt", "{s:I}",
		    "id", (json_int_t)id);
		return -1;
	}
	snprintf(key, sizeof(key), "message:%" PRId64, id);
	argv[0] = "SET";
	argv[1] = key;
	argv[2] = value;
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
	if (redis_command(rc, cache_on_reply, put, argc, argv, argvlen) != 0) {
		log_warn("cache", "cache write skipped: redis refused it",
		    "{s:I}", "id", (json_int_t)id);
		free(put);
		free(value);
		return -1;
	}
	free(value);
	return 0;
}
