/* pgpool.h - the API's own PostgreSQL connections, beside the delivery
 * connection.
 *
 * A few pg_conns (pg.h), each connecting, reconnecting and failing its
 * queries by itself. They do not migrate: the delivery connection does
 * (migrate.c). Instead, on every connect, a member waits in setup until
 * the delivery connection has been ready once since start (so it has
 * applied this binary's migrations, and the first "database ready" of the
 * log is the delivery connection's), then checks that every embedded
 * migration is recorded on its own server, polling with backoff until it
 * is; only then does it take queries.
 *
 * The pool only hands out connections; what runs on them, and how much of
 * it may wait, is the service's business (service.c).
 */
#ifndef GOPULSE_PGPOOL_H
#define GOPULSE_PGPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

struct pg_conn;
struct pgpool;
struct resolver;

/* size connections (0 = none) to dsn, like pg_new's; gate is the
 * delivery connection, borrowed, and must outlive the pool. */
struct pgpool *pgpool_new(struct event_base *base, struct resolver *res,
    const char *dsn, int64_t query_timeout_ms, int size,
    const struct pg_conn *gate);
void pgpool_free(struct pgpool *pool);
void pgpool_start(struct pgpool *pool);
/* Fails every queued query ("shutting down") and disconnects for good. */
void pgpool_close(struct pgpool *pool);

/* The ready member with the fewest queries queued or in flight (ties go
 * round robin), or NULL when none is ready. Before pipelining, a member
 * runs one query at a time and queues the rest: correct, only slower. */
struct pg_conn *pgpool_pick(struct pgpool *pool);
int pgpool_size(const struct pgpool *pool);
/* Members ready now. */
int pgpool_ready(const struct pgpool *pool);
/* Queries queued or in flight on every member. */
size_t pgpool_pending(const struct pgpool *pool);

#endif
