/* migrate.h - applies the embedded sql/ files on every database connect. */
#ifndef GOPULSE_MIGRATE_H
#define GOPULSE_MIGRATE_H

#include <stddef.h>

struct pg_conn;

struct migrate_file {
	const char *version; /* file name without .sql */
	const char *sql;
};

extern const struct migrate_file migrate_files[];
extern const size_t migrate_files_count;

/* Installs the setup hook: read what is applied; apply what is missing,
 * each file in its own transaction under pg_advisory_xact_lock; ready. */
void migrate_attach(struct pg_conn *pg);

#endif
