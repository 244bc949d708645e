/* migrate.c - applies the embedded sql/ files on every database connect.
 *
 * Runs as the pg setup hook, so no ordinary query reaches a database whose
 * schema is behind. A session advisory lock serialises instances starting
 * together; it also dies with the session if we crash half-way. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "pg.h"
#include "util.h"

/* Any fixed key; "GoPulse" in ASCII, so it is recognisable in pg_locks. */
#define MIGRATE_LOCK_KEY "71111080117108115"

static void
migrate_on_unlocked(void *arg, const PGresult *res, const char *err)
{
	struct pg_conn *pg = arg;

	UNUSED(res);
	if (err != NULL) {
		pg_setup_failed(pg, err);
		return;
	}
	pg_setup_done(pg);
}

struct migrate_step {
	struct pg_conn *pg;
	const struct migrate_file *file;
};

static void
migrate_on_applied(void *arg, const PGresult *res, const char *err)
{
	struct migrate_step *step = arg;

	UNUSED(res);
	if (err != NULL) {
		/* A connection loss fails every queued step; say it once. */
		if (pg_get_state(step->pg) == PG_SETUP) {
			log_error("migrate", "schema migration failed",
			    "{s:s, s:s}", "version", step->file->version,
			    "error", err);
			pg_setup_failed(step->pg, err);
		}
	} else {
		log_info("migrate", "schema migration applied", "{s:s}",
		    "version", step->file->version);
	}
	free(step);
}

static bool
migrate_is_applied(const char *list, const char *version)
{
	size_t n = strlen(version);

	for (const char *p = list; p != NULL && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && strncmp(p, version, n) == 0)
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

static void
migrate_on_locked(void *arg, const PGresult *res, const char *err)
{
	struct pg_conn *pg = arg;
	const char *applied;
	int pending = 0;

	if (err != NULL) {
		if (pg_get_state(pg) == PG_SETUP)
			pg_setup_failed(pg, err);
		return;
	}
	applied = PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0);
	for (size_t i = 0; i < migrate_files_count; i++) {
		const struct migrate_file *f = &migrate_files[i];
		struct migrate_step *step;
		char *script;

		if (migrate_is_applied(applied, f->version))
			continue;
		step = xmalloc(sizeof(*step));
		step->pg = pg;
		step->file = f;
		/* Names are [a-z0-9_] (checked when embedded): safe to quote. */
		script = xasprintf("BEGIN;\n%s\n;INSERT INTO schema_migrations "
				   "(version) VALUES ('%s');\nCOMMIT;",
		    f->sql, f->version);
		if (pg_setup_query(pg, script, migrate_on_applied, step) != 0)
			free(step);
		free(script);
		pending++;
	}
	if (pending == 0)
		log_debug("migrate", "schema up to date", NULL);
	if (pg_setup_query(pg,
		"SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")",
		migrate_on_unlocked, pg) != 0)
		pg_setup_failed(pg, "cannot queue the unlock");
}

static void
migrate_on_connect(struct pg_conn *pg, void *arg)
{
	UNUSED(arg);
	if (pg_setup_query(pg,
		"SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ");\n"
		"CREATE TABLE IF NOT EXISTS schema_migrations (\n"
		"  version text PRIMARY KEY,\n"
		"  applied_at timestamptz NOT NULL DEFAULT now());\n"
		"SELECT string_agg(version, ',') FROM schema_migrations;",
		migrate_on_locked, pg) != 0)
		pg_setup_failed(pg, "cannot queue the migration");
}

void
migrate_attach(struct pg_conn *pg)
{
	pg_set_setup(pg, migrate_on_connect, NULL);
}
