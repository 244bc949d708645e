/* dsn.h - a libpq connection string, checked at start and masked for logs. */
#ifndef GOPULSE_DSN_H
#define GOPULSE_DSN_H

#include <stddef.h>

#include <libpq-fe.h>

#include "common.h"

/* 0 when libpq 15 would accept dsn's options when connecting (keywords,
 * sslmode and the other enumerations, integers, ports, hostaddr, list
 * lengths), with what dsn leaves out filled as libpq fills it: from its
 * service (or PGSERVICE), PG* variables, compiled defaults. Else -1 with
 * one line in why that never holds a password. Reads the environment: for
 * start-up. A service that is not defined is left to libpq to report. */
int dsn_check(const char *dsn, char *why, size_t whylen) MUSTCHECK;
/* "host=db port=5432 password=*****": every option libpq hides (password,
 * sslpassword) masked. Caller frees. */
char *dsn_mask(const char *dsn);
/* What libpq fills in where a DSN is silent: the named service (NULL:
 * PGSERVICE's), then PG* variables, then its compiled defaults, as
 * PQconndefaults gives them (caller PQconninfoFree's). Start-up only: it
 * sets PGSERVICE for the call. */
PQconninfoOption *dsn_defaults(const char *service);

#endif
