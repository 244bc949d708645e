/* pgpool.c - the API's own PostgreSQL connections, beside the delivery
 * connection. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "migrate.h"
#include "pg.h"
#include "pgpool.h"
#include "util.h"

/* A member in setup looks again this soon, doubling up to the cap. */
#define PGPOOL_RECHECK_BASE_MS 10
#define PGPOOL_RECHECK_CAP_MS 1000

struct pgpool_member {
	struct pgpool *pool;
	struct pg_conn *pg;
	int index;		  /* 1-based, for the log */
	struct event *ev_recheck; /* setup: look again later */
	unsigned waits;		  /* rechecks in this setup */
	bool checking;		  /* the schema check is in flight */
	bool said_waiting;	  /* logged this setup's wait for the schema */
};

struct pgpool {
	const struct pg_conn *gate; /* the delivery connection */
	bool gate_seen;		    /* it was ready once */
	char *check_sql;
	int size;
	int next; /* where pgpool_pick starts looking */
	struct pgpool_member *members;
};

static void pgpool_check(struct pgpool_member *m);

static void
pgpool_recheck_later(struct pgpool_member *m, const char *why, bool schema)
{
	int64_t ms = util_backoff_ms(PGPOOL_RECHECK_BASE_MS,
	    PGPOOL_RECHECK_CAP_MS, m->waits++, 0);
	struct timeval tv = util_tv(ms);

	if (schema && !m->said_waiting) {
		m->said_waiting = true;
		log_info("pgpool", "api connection waiting for the schema",
		    "{s:i, s:s}", "connection", m->index, "reason", why);
	} else {
		log_debug("pgpool", "api connection waiting", "{s:i, s:s, s:I}",
		    "connection", m->index, "reason", why, "delay_ms",
		    (json_int_t)ms);
	}
	event_add(m->ev_recheck, &tv);
}

static void
pgpool_on_checked(void *arg, const PGresult *res, const char *err)
{
	struct pgpool_member *m = arg;

	m->checking = false;
	/* Lost meanwhile (or closing): pg sets up again on its next connect. */
	if (pg_get_state(m->pg) != PG_SETUP)
		return;
	if (err == NULL && PQntuples(res) == 1 &&
	    strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
		log_info("pgpool", "api connection ready", "{s:i, s:i}",
		    "connection", m->index, "size", m->pool->size);
		pg_setup_done(m->pg);
		return;
	}
	pgpool_recheck_later(m, err != NULL ? err : "migrations not applied",
	    true);
}

static void
pgpool_check(struct pgpool_member *m)
{
	struct pgpool *pool = m->pool;

	if (pg_get_state(m->pg) != PG_SETUP || m->checking)
		return;
	if (!pool->gate_seen && pg_is_ready(pool->gate))
		pool->gate_seen = true;
	if (!pool->gate_seen) {
		pgpool_recheck_later(m, "delivery connection not ready yet",
		    false);
		return;
	}
	if (pg_setup_query(m->pg, pool->check_sql, pgpool_on_checked, m) != 0) {
		pg_setup_failed(m->pg, "cannot queue the schema check");
		return;
	}
	m->checking = true;
}

static void
pgpool_on_recheck(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	pgpool_check(arg);
}

/* The setup hook, on every connect of a member. */
static void
pgpool_on_setup(struct pg_conn *pg, void *arg)
{
	struct pgpool_member *m = arg;

	UNUSED(pg);
	event_del(m->ev_recheck);
	m->waits = 0;
	m->said_waiting = false;
	pgpool_check(m);
}

/* "SELECT count(*) = N FROM schema_migrations WHERE version IN (...)":
 * names are [a-z0-9_] (checked when embedded), safe to quote. */
static char *
pgpool_check_sql(void)
{
	size_t len = 128;
	char *sql, *p;

	if (migrate_files_count == 0)
		return xstrdup("SELECT true");
	for (size_t i = 0; i < migrate_files_count; i++)
		len += strlen(migrate_files[i].version) + 4;
	p = sql = xmalloc(len);
	p += sprintf(p,
	    "SELECT count(*) = %zu FROM schema_migrations WHERE version IN (",
	    migrate_files_count);
	for (size_t i = 0; i < migrate_files_count; i++)
		p += sprintf(p, "%s'%s'", i > 0 ? ", " : "",
		    migrate_files[i].version);
	strcpy(p, ")");
	return sql;
}

struct pgpool *
pgpool_new(struct event_base *base, struct resolver *res, const char *dsn,
    int64_t query_timeout_ms, int size, const struct pg_conn *gate)
{
	struct pgpool *pool = xcalloc(1, sizeof(*pool));

	pool->gate = gate;
	pool->size = size > 0 ? size : 0;
	pool->check_sql = pgpool_check_sql();
	pool->members = xcalloc((size_t)pool->size + 1, sizeof(*pool->members));
	for (int i = 0; i < pool->size; i++) {
		struct pgpool_member *m = &pool->members[i];

		m->pool = pool;
		m->index = i + 1;
		m->pg = pg_new(base, res, dsn, query_timeout_ms);
		pg_set_metrics(m->pg, &metrics.pg_api);
		pg_set_priority(m->pg, LOOP_PRIO_API_DB);
		m->ev_recheck = evtimer_new(base, pgpool_on_recheck, m);
		pg_set_setup(m->pg, pgpool_on_setup, m);
	}
	return pool;
}

void
pgpool_start(struct pgpool *pool)
{
	for (int i = 0; i < pool->size; i++)
		pg_start(pool->members[i].pg);
}

void
pgpool_close(struct pgpool *pool)
{
	for (int i = 0; i < pool->size; i++) {
		event_del(pool->members[i].ev_recheck);
		pg_close(pool->members[i].pg);
	}
}

void
pgpool_free(struct pgpool *pool)
{
	if (pool == NULL)
		return;
	pgpool_close(pool);
	for (int i = 0; i < pool->size; i++) {
		pg_free(pool->members[i].pg);
		event_free(pool->members[i].ev_recheck);
	}
	free(pool->members);
	free(pool->check_sql);
	free(pool);
}

struct pg_conn *
pgpool_pick(struct pgpool *pool)
{
	struct pg_conn *best = NULL;
	size_t best_n = SIZE_MAX;
	int best_i = 0;

	for (int k = 0; k < pool->size; k++) {
		int i = (pool->next + k) % pool->size;
		struct pg_conn *pg = pool->members[i].pg;
		size_t n;

		if (!pg_is_ready(pg))
			continue;
		n = pg_pending(pg);
		if (n < best_n) {
			best = pg;
			best_n = n;
			best_i = i;
			if (n == 0)
				break;
		}
	}
	if (best != NULL)
		pool->next = (best_i + 1) % pool->size;
	return best;
}

int
pgpool_size(const struct pgpool *pool)
{
	return pool->size;
}

int
pgpool_ready(const struct pgpool *pool)
{
	int n = 0;

	for (int i = 0; i < pool->size; i++)
		n += pg_is_ready(pool->members[i].pg);
	return n;
}

size_t
pgpool_pending(const struct pgpool *pool)
{
	size_t n = 0;

	for (int i = 0; i < pool->size; i++)
		n += pg_pending(pool->members[i].pg);
	return n;
}
