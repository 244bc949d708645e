/* pg.h - one nonblocking PostgreSQL connection driven by the event loop.
 *
 * The connection reconnects by itself with capped, jittered backoff. After
 * each connect an optional setup hook runs first (schema migrations), one
 * simple-protocol script at a time; only then does the connection accept
 * ordinary queries. Those are pipelined (libpq pipeline mode): several in
 * flight at once, answered in the order they were queued, each in its own
 * transaction, so one that fails never aborts another. Every statement is
 * bounded on the server by query_timeout_ms (statement_timeout, set per
 * transaction: no startup parameter, no session state, so PgBouncer in
 * transaction mode is fine), and the connection is dropped when the
 * server answers nothing for query_timeout_ms + a margin.
 *
 * Every accepted query's callback runs exactly once, never inside the
 * call that queued it: with its result, its error, or the loss of the
 * connection.
 */
#ifndef GOPULSE_PG_H
#define GOPULSE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common.h"

enum pg_state {
	PG_DISCONNECTED, /* waiting to (re)connect */
	PG_CONNECTING,
	PG_SETUP, /* connected, setup hook running */
	PG_READY,
	PG_CLOSED,
};

struct pg_conn;
struct resolver;

/* res is borrowed for the call; err is NULL on success, else a reason
 * (and res, when not NULL, the failed result). */
typedef void (*pg_result_cb)(void *arg, const PGresult *res, const char *err);
typedef void (*pg_setup_cb)(struct pg_conn *pg, void *arg);

/* res resolves the host names libpq would look up itself (blocking the
 * loop): every name of the DSN's host list, or of PGHOST; see pghosts.h.
 * It must outlive the connection. */
struct pg_conn *pg_new(struct event_base *base, struct resolver *res,
    const char *dsn, int64_t query_timeout_ms);
void pg_free(struct pg_conn *pg);

/* Sync segments (queries) in flight at once, 1 to 32 (32 until set), on
 * a direct connection. Through a pooler it is always 1: PgBouncer before
 * 1.21 in transaction mode hands the server connection to another client
 * at the first ReadyForQuery while more of ours are already on it. A
 * pooler is recognised on every connect (the backend pid it announces is
 * not the server's); a depth of 1 is for one that is not. Each query
 * still travels in one round trip with its statement_timeout. */
void pg_set_pipeline_depth(struct pg_conn *pg, int depth);
/* Where the connection counts itself ready and its reconnects (metrics.h);
 * set before pg_start. */
struct metrics_link;
void pg_set_metrics(struct pg_conn *pg, struct metrics_link *link);
/* The libevent priority of the connection's events (loop.h); set before
 * pg_start. */
void pg_set_priority(struct pg_conn *pg, int priority);

/* The hook runs on every connect; it queues work with pg_setup_query and
 * ends with pg_setup_done (or pg_setup_failed). */
void pg_set_setup(struct pg_conn *pg, pg_setup_cb hook, void *arg);
void pg_start(struct pg_conn *pg);
/* Fails every queued query ("shutting down") and disconnects for good. */
void pg_close(struct pg_conn *pg);

/* Queue one statement with text parameters (the text and parameters are
 * copied). -1 when the connection is not ready: the callback will not run
 * and the caller answers 503. Queries queued in one loop iteration leave
 * in one write. */
int pg_query(struct pg_conn *pg, const char *sql, int nparams,
    const char *const *params, pg_result_cb cb, void *arg) MUSTCHECK;
/* A multi-statement script through the simple protocol, setup only. */
int pg_setup_query(struct pg_conn *pg, const char *script, pg_result_cb cb,
    void *arg) MUSTCHECK;
void pg_setup_done(struct pg_conn *pg);
void pg_setup_failed(struct pg_conn *pg, const char *reason);

bool pg_is_ready(const struct pg_conn *pg);
enum pg_state pg_get_state(const struct pg_conn *pg);
const char *pg_state_name(enum pg_state state);
/* Queries queued or in flight. */
size_t pg_pending(const struct pg_conn *pg);

#endif
