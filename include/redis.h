/* redis.h - one hiredis 0.14 async connection driven by the event loop.
 *
 * The client resolves its host with resolve.c (never on the loop's
 * stack), connects to the numeric address, sends AUTH, SELECT and PING
 * before anything else, and is ready only once all three answered OK. It
 * reconnects by itself with capped, jittered backoff, and drops a link
 * whose PING goes unanswered for a watchdog period (a frozen server).
 *
 * Every accepted command's callback runs exactly once, never inside
 * redis_command: with the reply, the server's error, "timeout", the loss
 * of the connection or "shutting down". After a timeout the command may
 * still reach Redis; only its answer is dropped.
 */
#ifndef GOPULSE_REDIS_H
#define GOPULSE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "common.h"
#include "resolve.h"

/* RC_: hiredis owns the REDIS_ prefix (REDIS_CONNECTED is a flag there). */
enum redis_state {
	RC_DISCONNECTED, /* waiting to (re)connect */
	RC_RESOLVING,
	RC_CONNECTING, /* TCP connect and AUTH/SELECT/PING */
	RC_READY,
	RC_CLOSED,
};

struct redis_client;

/* reply is borrowed for the call and NULL when err is set; an error
 * reply from Redis comes as err (its text), never as a reply. */
typedef void (*redis_reply_cb)(void *arg, const redisReply *reply,
    const char *err);

/* host: a name, an IPv4/IPv6 address, or "[v6]"; res may be NULL only
 * for a numeric host, and must outlive the client. password "" means no
 * AUTH. op_timeout_ms <= 0 turns the per-command deadline off (the
 * watchdog still runs). Nothing happens before redis_start. */
struct redis_client *redis_new(struct event_base *base, struct resolver *res,
    const char *host, int port, const char *password, int db,
    int64_t op_timeout_ms);
void redis_start(struct redis_client *rc);

/* Queues one command (arguments are copied). -1 when the client is not
 * ready or the command is SUBSCRIBE/MONITOR-like (one reply per command
 * is assumed): the callback will not run. Commands issued in the same
 * loop iteration leave in one write. */
int redis_command(struct redis_client *rc, redis_reply_cb cb, void *arg,
    int argc, const char **argv, const size_t *argvlen) MUSTCHECK;

bool redis_is_ready(const struct redis_client *rc);
enum redis_state redis_get_state(const struct redis_client *rc);
const char *redis_state_name(enum redis_state s);
/* Accepted commands whose callback has not run yet. */
size_t redis_pending(const struct redis_client *rc);

/* Fails every pending command ("shutting down"), disconnects, and never
 * reconnects. Safe inside a redis_reply_cb. */
void redis_close(struct redis_client *rc);
/* Closes if needed and frees; safe with commands pending. Call it before
 * resolver_free and event_base_free, and never from inside a
 * redis_reply_cb (that aborts: the caller's stack would use freed
 * memory). */
void redis_free(struct redis_client *rc);

#endif
