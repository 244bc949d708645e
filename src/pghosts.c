/* pghosts.c - the servers a DATABASE_DSN names, looked up on the loop.
 *
 * The rules are libpq 15's (fe-connect.c, connectOptions2): hostaddr, when
 * given, sets the number of hosts and host must then have as many entries;
 * an entry with a non-empty hostaddr is connected to by that address; else
 * its host is a socket directory (starts with '/' or '@'), a name, or
 * empty (the default socket). One port serves every host, or there is one
 * per host. Lists split at every comma, with no trimming.
 */
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#include "dsn.h"
#include "log.h"
#include "pghosts.h"
#include "resolve.h"
#include "util.h"

struct pghost {
	struct pghosts *owner;
	char *host;  /* as libpq splits it; "": default socket */
	char *addr;  /* its hostaddr entry, "" for none */
	char *port;  /* its own port; NULL when one serves all */
	bool lookup; /* a name libpq would resolve itself */
	struct resolve_req *req;
	char ip[RESOLVE_IP_MAX]; /* this round's answer, "" for none */
	char err[96];
	bool warned; /* skipped, and said so at warn */
};

struct pghosts {
	struct pghost *hosts;
	size_t n;
	size_t outstanding; /* lookups of this round not answered yet */
	pghosts_cb cb;
	void *arg;
	char *host_out, *addr_out, *port_out;
};

static const char *
pghosts_opt(const PQconninfoOption *opts, const char *keyword)
{
	for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, keyword) == 0)
			return o->val;
	return NULL;
}

static size_t
pghosts_count_items(const char *list)
{
	size_t n = 1;

	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

/* Entry i of a comma-separated list, copied; empty entries count. */
static char *
pghosts_item(const char *list, size_t i)
{
	const char *end;

	while (i-- > 0)
		list = strchr(list, ',') + 1;
	end = strchr(list, ',');
	return end ? xstrndup(list, (size_t)(end - list)) : xstrdup(list);
}

/* Would libpq call getaddrinfo for it? AI_NUMERICHOST never asks DNS, and
 * also knows scoped IPv6 addresses ("fe80::1%eth0"). */
static bool
pghosts_is_name(const char *host)
{
	struct addrinfo hints, *res = NULL;

	if (host[0] == '\0' || host[0] == '/' || host[0] == '@')
		return false;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	hints.ai_family = AF_UNSPEC;
	if (getaddrinfo(host, NULL, &hints, &res) == 0) {
		freeaddrinfo(res);
		return false;
	}
	return true;
}

struct pghosts *
pghosts_new_with(const char *dsn, const struct pghosts_defaults *def)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
	const char *host, *addr, *port;
	size_t n, nports = 0;
	struct pghosts *h = NULL;
	bool any = false;

	if (opts == NULL)
		return NULL;
	/* A keyword the DSN sets, even to "", hides the default. */
	host = pghosts_opt(opts, "host");
	addr = pghosts_opt(opts, "hostaddr");
	port = pghosts_opt(opts, "port");
	if (host == NULL)
		host = def->host;
	if (addr == NULL)
		addr = def->hostaddr;
	if (port == NULL)
		port = def->port;
	if (host == NULL || host[0] == '\0')
		goto out; /* no names at all */
	n = pghosts_count_items(addr && addr[0] ? addr : host);
	if (pghosts_count_items(host) != n)
		goto out; /* libpq refuses it before any lookup */
	if (port != NULL && port[0] != '\0') {
		nports = pghosts_count_items(port);
		if (nports != 1 && nports != n)
			goto out;
	}
	h = xcalloc(1, sizeof(*h));
	h->hosts = xcalloc(n, sizeof(*h->hosts));
	h->n = n;
	for (size_t i = 0; i < n; i++) {
		struct pghost *s = &h->hosts[i];

		s->owner = h;
		s->host = pghosts_item(host, i);
		s->addr = addr && addr[0] ? pghosts_item(addr, i) : xstrdup("");
		s->port = nports > 1 ? pghosts_item(port, i) : NULL;
		s->lookup = s->addr[0] == '\0' && pghosts_is_name(s->host);
		any = any || s->lookup;
	}
	if (!any) {
		pghosts_free(h);
		h = NULL;
	}
out:
	PQconninfoFree(opts);
	return h;
}

/* libpq fills what the DSN leaves out from the service it names (else
 * PGSERVICE's), then from PGHOST, PGHOSTADDR and PGPORT. */
struct pghosts *
pghosts_new(const char *dsn)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL), *defs;
	struct pghosts_defaults def = { NULL, NULL, NULL };
	struct pghosts *h;

	if (opts == NULL)
		return NULL;
	defs = dsn_defaults(pghosts_opt(opts, "service"));
	if (defs != NULL) {
		def.host = pghosts_opt(defs, "host");
		def.hostaddr = pghosts_opt(defs, "hostaddr");
		def.port = pghosts_opt(defs, "port");
	}
	h = pghosts_new_with(dsn, &def);
	PQconninfoFree(defs);
	PQconninfoFree(opts);
	return h;
}

void
pghosts_free(struct pghosts *h)
{
	if (h == NULL)
		return;
	pghosts_cancel(h);
	for (size_t i = 0; i < h->n; i++) {
		free(h->hosts[i].host);
		free(h->hosts[i].addr);
		free(h->hosts[i].port);
	}
	free(h->hosts);
	free(h->host_out);
	free(h->addr_out);
	free(h->port_out);
	free(h);
}

size_t
pghosts_count(const struct pghosts *h)
{
	return h->n;
}

const char *
pghosts_lookup_name(const struct pghosts *h, size_t i)
{
	return i < h->n && h->hosts[i].lookup ? h->hosts[i].host : NULL;
}

static void
pghosts_append(char **list, const char *item)
{
	char *s;

	if (*list == NULL) {
		*list = xstrdup(item);
		return;
	}
	s = xasprintf("%s,%s", *list, item);
	free(*list);
	*list = s;
}

/* Every lookup answered: the lists for libpq, without the names that
 * found no address. */
static void
pghosts_finish(struct pghosts *h)
{
	pghosts_cb cb = h->cb;
	void *arg = h->arg;
	char *why = NULL;
	size_t kept = 0;

	h->cb = NULL;
	free(h->host_out);
	free(h->addr_out);
	free(h->port_out);
	h->host_out = h->addr_out = h->port_out = NULL;
	for (size_t i = 0; i < h->n; i++) {
		struct pghost *s = &h->hosts[i];
		char *reason;

		if (s->lookup && s->ip[0] == '\0') {
			reason = xasprintf("%s%scannot resolve %s: %s",
			    why ? why : "", why ? "; " : "", s->host, s->err);
			free(why);
			why = reason;
			continue;
		}
		pghosts_append(&h->host_out, s->host);
		pghosts_append(&h->addr_out, s->addr[0] ? s->addr : s->ip);
		if (s->port != NULL)
			pghosts_append(&h->port_out, s->port);
		kept++;
	}
	if (kept == 0) {
		cb(arg, why);
		free(why);
		return;
	}
	/* Said once while a name stays unknown; the connection goes on
	 * without it, so it is no failure of the whole. */
	for (size_t i = 0; i < h->n; i++) {
		struct pghost *s = &h->hosts[i];

		if (!s->lookup)
			continue;
		if (s->ip[0] != '\0') {
			s->warned = false;
			continue;
		}
		log_write(s->warned ? LOG_DEBUG : LOG_WARN, "pg",
		    "database host not resolved, trying the others",
		    "{s:s, s:s}", "host", s->host, "reason", s->err);
		s->warned = true;
	}
	free(why);
	cb(arg, NULL);
}

static void
pghosts_on_resolved(void *arg, const char *ip, const char *err)
{
	struct pghost *s = arg;
	struct pghosts *h = s->owner;

	s->req = NULL;
	if (ip != NULL)
		snprintf(s->ip, sizeof(s->ip), "%s", ip);
	else
		snprintf(s->err, sizeof(s->err), "%s", err);
	if (--h->outstanding == 0)
		pghosts_finish(h);
}

int
pghosts_resolve(struct pghosts *h, struct resolver *r, int64_t timeout_ms,
    pghosts_cb cb, void *arg)
{
	pghosts_cancel(h);
	h->cb = cb;
	h->arg = arg;
	for (size_t i = 0; i < h->n; i++) {
		struct pghost *s = &h->hosts[i];

		if (!s->lookup)
			continue;
		s->ip[0] = '\0';
		s->err[0] = '\0';
		s->req = resolve_host(r, s->host, timeout_ms,
		    pghosts_on_resolved, s);
		if (s->req == NULL) {
			pghosts_cancel(h);
			return -1;
		}
		h->outstanding++;
	}
	return 0;
}

void
pghosts_cancel(struct pghosts *h)
{
	for (size_t i = 0; i < h->n; i++) {
		if (h->hosts[i].req != NULL) {
			resolve_cancel(h->hosts[i].req);
			h->hosts[i].req = NULL;
		}
	}
	h->outstanding = 0;
	h->cb = NULL;
}

const char *
pghosts_host(const struct pghosts *h)
{
	return h->host_out;
}

const char *
pghosts_hostaddr(const struct pghosts *h)
{
	return h->addr_out;
}

const char *
pghosts_port(const struct pghosts *h)
{
	return h->port_out;
}
