/* pghosts.h - the servers a DATABASE_DSN names, looked up on the loop.
 *
 * libpq tries the hosts of a connection in order: "host=db1,db2", a URI's
 * "h1:5432,h2:5433", or PGHOST (and a service file) when the DSN names
 * none. It looks every name up itself with a blocking getaddrinfo, unless
 * the matching entry of "hostaddr" holds its numeric address. This module
 * works out that list as libpq will, resolves its names with resolve.c,
 * and hands back host, hostaddr and port lists of equal length in which
 * every name has its address: libpq then never calls the resolver.
 *
 * Addresses, Unix-socket directories ("/run/postgresql", "@abstract"),
 * empty entries (the default socket) and entries already paired with a
 * hostaddr need no lookup. A name that cannot be resolved is left out of
 * the lists, so that libpq still tries the others.
 */
#ifndef GOPULSE_PGHOSTS_H
#define GOPULSE_PGHOSTS_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct pghosts;
struct resolver;

/* What libpq uses where the DSN is silent: a service's values, else
 * PGHOST, PGHOSTADDR, PGPORT, else its built-in defaults. NULL: none. */
struct pghosts_defaults {
	const char *host;
	const char *hostaddr;
	const char *port;
};

/* The hosts of dsn, completed from libpq's defaults (the service the DSN
 * names or PGSERVICE, PGHOST, PGHOSTADDR, PGPORT). Reads the environment:
 * call it at start-up. NULL when libpq would look up no name, or when the
 * lists do not match up (libpq then says so itself, before any lookup). */
struct pghosts *pghosts_new(const char *dsn);
/* The same with the defaults given (tests). */
struct pghosts *pghosts_new_with(const char *dsn,
    const struct pghosts_defaults *def);
void pghosts_free(struct pghosts *h);

/* Hosts in the list, and the name host i needs looked up (NULL: none). */
size_t pghosts_count(const struct pghosts *h);
const char *pghosts_lookup_name(const struct pghosts *h, size_t i);

/* err is NULL when at least one host can be tried, else why none can
 * ("cannot resolve db: timeout", several joined by "; "). */
typedef void (*pghosts_cb)(void *arg, const char *err);

/* Looks up every name at once, each for at most timeout_ms; the callback
 * runs once, from the loop, when all have answered (never inside this
 * call). -1, with no callback, when the resolver is shutting down. */
int pghosts_resolve(struct pghosts *h, struct resolver *r, int64_t timeout_ms,
    pghosts_cb cb, void *arg) MUSTCHECK;
/* The callback will not run. Harmless when nothing is outstanding. */
void pghosts_cancel(struct pghosts *h);

/* After a callback without error: the connection keywords for the hosts
 * that can be tried, in the DSN's order. pghosts_port is NULL when one
 * port serves every host (the DSN's own stands). Valid until the next
 * pghosts_resolve. */
const char *pghosts_host(const struct pghosts *h);
const char *pghosts_hostaddr(const struct pghosts *h);
const char *pghosts_port(const struct pghosts *h);

#endif
