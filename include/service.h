/* service.h - everything the REST API may ask of the service.
 *
 * The one interface between the HTTP handlers (api_*.c) and the rest:
 * handlers parse, call one function here, and map its svc_err to a status
 * with reply_fail. They never see the application, the drivers (pg, redis,
 * curl), the store or the scheduler.
 *
 * An asynchronous call either returns an error at once (its callback then
 * never runs) or returns SVC_OK and calls back exactly once, later, never
 * inside the call.
 */
#ifndef GOPULSE_SERVICE_H
#define GOPULSE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "message.h"

enum svc_err {
	SVC_OK = 0,
	SVC_INVALID,	   /* the request is wrong: 400 */
	SVC_NOT_FOUND,	   /* 404 */
	SVC_CONFLICT,	   /* not in a state that allows it: 409 */
	SVC_UNAVAILABLE,   /* a dependency is down: 503 */
	SVC_TIMEOUT,	   /* a dependency did not answer in time: 503 */
	SVC_SHUTTING_DOWN, /* 503 */
	SVC_INTERNAL,	   /* 500 */
	SVC_BUSY,	  /* too many queries waiting for the database: 503 with
		   * Retry-After */
	SVC_UNAUTHORIZED, /* no valid bearer token: 401 with
			   * WWW-Authenticate */
};

struct event_base;
struct evbuffer;
struct service;
struct pg_conn;
struct pgpool;
struct redis_client;
struct sched;

/* What /ready shows; read from states the drivers keep, no I/O. The
 * strings are static. */
struct service_status {
	bool ready;	      /* the delivery connection is ready, and not
				 shutting down */
	bool shutting_down;   /* service_set_shutting_down was called */
	const char *database; /* its state name */
	const char *redis;    /* its state name */
	bool sending;	      /* the scheduler is active */
	const char *circuit;  /* the receiver's: closed, open, half-open */
	/* The pending messages and those due, as last counted (backlog.c,
	 * every TIMING_BACKLOG_MS): -1 before the first count. */
	int64_t backlog_pending, backlog_due;
	int api_connections; /* the API's own (API_DB_CONNECTIONS) */
	int api_ready;	     /* of them, ready now */
	size_t api_queries;  /* reads waiting or running */
	size_t api_queries_max;
};

/* next: the cursor of the following page, NULL after the last one. */
typedef void (*service_list_cb)(void *arg, enum svc_err err,
    const struct message *msgs, size_t n, const char *next);
/* m is NULL on an error; replayed: an Idempotency-Key's earlier message. */
typedef void (*service_message_cb)(void *arg, enum svc_err err,
    const struct message *m, bool replayed);
/* cache: the Redis entry's text (NULL when none); cache_status "hit",
 * "miss" or "unavailable" (Redis not ready or did not answer). */
typedef void (*service_detail_cb)(void *arg, enum svc_err err,
    const struct message_detail *d, const char *cache,
    const char *cache_status);
typedef void (*service_count_cb)(void *arg, enum svc_err err, size_t n);

/* Borrows the drivers and the scheduler; the app owns them all. pg is
 * the delivery connection; api the API's own connections, where reads go
 * (on pg only while none of them is ready). At most max_queries reads
 * wait or run at once; past that a call answers SVC_BUSY. */
struct service *service_new(struct event_base *base, struct pg_conn *pg,
    struct pgpool *api, struct redis_client *redis, struct sched *sched,
    size_t max_queries);
void service_free(struct service *svc);

void service_status(const struct service *svc, struct service_status *st);
/* The instance is shutting down: from now on service_status says not
 * ready, whatever the drivers say, while every other call still works (the
 * API keeps serving for SHUTDOWN_DELAY while load balancers take the
 * instance out). For good: there is no way back. */
void service_set_shutting_down(struct service *svc);
/* Automatic sending on and off; idempotent. */
void service_start_sending(struct service *svc);
void service_stop_sending(struct service *svc);
/* Every metric in Prometheus text format, into out: counters the
 * callbacks keep, no I/O. */
void service_metrics(struct service *svc, struct evbuffer *out);
/* A page of the messages filter selects (sent ones most recently sent
 * first, the others newest first), after the cursor after (NULL: from the
 * start; SVC_INVALID when it is not a cursor of this listing); msgs are
 * borrowed for the callback. */
enum svc_err service_list(struct service *svc, enum message_filter filter,
    int limit, int offset, const char *after, service_list_cb cb,
    void *arg) MUSTCHECK;
/* A new pending message, due now; recipient and content already valid.
 * key (NULL = none): an Idempotency-Key; the same key within 24 h gives
 * the first message back (replayed) when recipient and content are the
 * same, SVC_CONFLICT when not. */
enum svc_err service_create_message(struct service *svc, const char *recipient,
    const char *content, const char *key, service_message_cb cb,
    void *arg) MUSTCHECK;
/* The message with its attempts and its cache entry: SVC_NOT_FOUND when
 * there is none. Redis is asked first (a Redis that is not ready is not
 * waited for: "unavailable"). */
enum svc_err service_get_message(struct service *svc, int64_t id,
    service_detail_cb cb, void *arg) MUSTCHECK;
/* A failed message back to pending (due now, attempts reset, history
 * kept): SVC_NOT_FOUND, or SVC_CONFLICT with the message when it is not
 * failed. */
enum svc_err service_retry_message(struct service *svc, int64_t id,
    service_message_cb cb, void *arg) MUSTCHECK;
/* Every failed message (updated at or after since, RFC 3339, when not
 * NULL) back to pending, a bounded batch per statement; n is how many. */
enum svc_err service_retry_failed(struct service *svc, const char *since,
    service_count_cb cb, void *arg) MUSTCHECK;

#endif
