/* migrate.c - applies the embedded sql/ files on every database connect.
 *
 * Runs as the pg setup hook, so no ordinary query reaches a database whose
 * schema is behind. Every step is one transaction and nothing outlives it
 * (no session lock, no SET), so it works the same through a pooler in
 * transaction mode (PgBouncer), where consecutive transactions may run on
 * different server connections:
 *
 *   1. read schema_migrations, without a lock, and whether the tables it
 *      vouches for exist; when every file is there and so are the tables
 *      (the usual case) the connection is ready after this one statement
 *      (no write at all: a role without CREATE runs a current schema);
 *      when a table is gone (dropped by hand, a restore of part of the
 *      database) the record is not believed and every file runs again,
 *      as every file is written to be safe to run again;
 *   2. else, when the table is missing, create it: BEGIN, the advisory
 *      transaction lock, CREATE TABLE IF NOT EXISTS, COMMIT;
 *   3. each missing file in its own transaction: BEGIN, the lock, look
 *      again (another instance may have applied it meanwhile), then the
 *      file and its row, COMMIT; or just COMMIT.
 *
 * pg_advisory_xact_lock ends with its transaction, also when the process
 * or the connection dies half-way: nothing is left held, and instances
 * starting together apply each file once. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "migrate.h"
#include "pg.h"
#include "util.h"

/* Any fixed key; "GoPulse" in ASCII, so it is recognisable in pg_locks. */
#define MIGRATE_LOCK_KEY "71111080117108115"
#define MIGRATE_LOCK "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ");\n"
/* undefined_table: schema_migrations does not exist yet. */
#define MIGRATE_NO_TABLE "42P01"
/* Of the tables the migrations make, those missing (comma-separated), or
 * NULL when all are there; names resolve as the migrations' own do. */
#define MIGRATE_MISSING_TABLES \
	"(SELECT string_agg(t, ',') FROM unnest(ARRAY['messages']) t" \
	" WHERE to_regclass(t) IS NULL)"

/* One pass over the files, from one connect; freed when it ends. */
struct migrate_run {
	struct pg_conn *pg;
	char *applied; /* versions read without the lock, comma-separated */
	size_t next;   /* index into migrate_files */
	bool applying; /* the open transaction applies migrate_files[next] */
	bool wrote;    /* this run applied a file */
	bool reapply;  /* a table is missing: every file runs again */
};

static void migrate_next(struct migrate_run *run);

static void
migrate_run_free(struct migrate_run *run)
{
	free(run->applied);
	free(run);
}

/* A failed step: say why, unless the connection is already gone (its loss
 * fails the step too, and pg has logged that), and reconnect. */
static void
migrate_fail(struct migrate_run *run, const char *version, const char *err)
{
	struct pg_conn *pg = run->pg;

	migrate_run_free(run);
	if (pg_get_state(pg) != PG_SETUP)
		return;
	log_error("migrate", "schema migration failed", "{s:s?, s:s}",
	    "version", version, "error", err);
	pg_setup_failed(pg, err);
}

static void
migrate_queue(struct migrate_run *run, const char *version, const char *script,
    pg_result_cb cb)
{
	if (pg_setup_query(run->pg, script, cb, run) != 0)
		migrate_fail(run, version, "cannot queue the migration");
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

/* The file's transaction committed: with the file, or without it when
 * another instance had applied it while we waited on the lock. */
static void
migrate_on_committed(void *arg, const PGresult *res, const char *err)
{
	struct migrate_run *run = arg;
	const struct migrate_file *f = &migrate_files[run->next];

	UNUSED(res);
	if (err != NULL) {
		migrate_fail(run, f->version, err);
		return;
	}
	if (run->applying)
		log_info("migrate", "schema migration applied", "{s:s}",
		    "version", f->version);
	else
		log_debug("migrate",
		    "schema migration applied by another instance", "{s:s}",
		    "version", f->version);
	run->wrote |= run->applying;
	run->applying = false;
	run->next++;
	migrate_next(run);
}

/* The lock is ours and the transaction open: apply the file, or only
 * commit when another instance did it while we waited. */
static void
migrate_on_locked(void *arg, const PGresult *res, const char *err)
{
	struct migrate_run *run = arg;
	const struct migrate_file *f = &migrate_files[run->next];
	char *script;

	if (err != NULL) {
		migrate_fail(run, f->version, err);
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
		migrate_queue(run, f->version, "COMMIT", migrate_on_committed);
		return;
	}
	run->applying = true;
	/* Names are [a-z0-9_] (checked when embedded): safe to quote. */
	script = xasprintf("%s\n;INSERT INTO schema_migrations (version) "
			   "VALUES ('%s') ON CONFLICT (version) DO UPDATE "
			   "SET applied_at = now();\nCOMMIT;",
	    f->sql, f->version);
	migrate_queue(run, f->version, script, migrate_on_committed);
	free(script);
}

/* The next file the unlocked read did not find, each in its own
 * transaction; ready after the last. */
static void
migrate_next(struct migrate_run *run)
{
	struct pg_conn *pg = run->pg;
	const struct migrate_file *f;
	char *script;

	while (run->next < migrate_files_count &&
	    migrate_is_applied(run->applied, migrate_files[run->next].version))
		run->next++;
	if (run->next == migrate_files_count) {
		if (!run->wrote)
			log_debug("migrate", "schema up to date", NULL);
		migrate_run_free(run);
		pg_setup_done(pg);
		return;
	}
	f = &migrate_files[run->next];
	/* Re-applying, the record is what is wrong: the file runs whatever
	 * it says (another instance re-applying too is harmless). */
	script = xasprintf("BEGIN;\n" MIGRATE_LOCK
			   "SELECT count(*) FROM schema_migrations "
			   "WHERE version = '%s' AND NOT %s;",
	    f->version, run->reapply ? "true" : "false");
	migrate_queue(run, f->version, script, migrate_on_locked);
	free(script);
}

static void
migrate_on_table(void *arg, const PGresult *res, const char *err)
{
	struct migrate_run *run = arg;

	UNUSED(res);
	if (err != NULL) {
		migrate_fail(run, NULL, err);
		return;
	}
	migrate_next(run);
}

static void
migrate_on_read(void *arg, const PGresult *res, const char *err)
{
	struct migrate_run *run = arg;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) :
				  NULL;

	if (err != NULL && state != NULL &&
	    strcmp(state, MIGRATE_NO_TABLE) == 0) {
		migrate_queue(run, NULL,
		    "BEGIN;\n" MIGRATE_LOCK
		    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
		    "  version text PRIMARY KEY,\n"
		    "  applied_at timestamptz NOT NULL DEFAULT now());\n"
		    "COMMIT;",
		    migrate_on_table);
		return;
	}
	if (err != NULL) {
		migrate_fail(run, NULL, err);
		return;
	}
	if (!PQgetisnull(res, 0, 0) && !PQgetisnull(res, 0, 1)) {
		log_warn("migrate",
		    "schema incomplete, applying every migration again",
		    "{s:s, s:s}", "missing", PQgetvalue(res, 0, 1), "recorded",
		    PQgetvalue(res, 0, 0));
		run->reapply = true;
	} else if (!PQgetisnull(res, 0, 0)) {
		run->applied = xstrdup(PQgetvalue(res, 0, 0));
	}
	migrate_next(run);
}

static void
migrate_on_connect(struct pg_conn *pg, void *arg)
{
	struct migrate_run *run = xcalloc(1, sizeof(*run));

	UNUSED(arg);
	run->pg = pg;
	migrate_queue(run, NULL,
	    "SELECT string_agg(version, ','), " MIGRATE_MISSING_TABLES
	    " FROM schema_migrations",
	    migrate_on_read);
}

void
migrate_attach(struct pg_conn *pg)
{
	pg_set_setup(pg, migrate_on_connect, NULL);
}
