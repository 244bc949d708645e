/* resolve.c - host name resolution on the event loop (libevent evdns).
 *
 * evdns_getaddrinfo would do the hosts file and the A/AAAA pair for us,
 * but its request state is freed only by callbacks that evdns defers to
 * the loop: freeing the resolver right before event_base_free (the normal
 * shutdown) leaks it, and a cancelled lookup still touches the evdns_base
 * afterwards. So: numeric and hosts(5) answers come from our own table,
 * DNS uses the plain A and AAAA queries, which evdns_base_free(dns, 0)
 * drops without a callback, and evdns queries are never cancelled, only
 * abandoned until they finish by themselves.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/dns.h>

#include "log.h"
#include "resolve.h"
#include "util.h"

struct resolve_hostent {
	char *name;
	int family;
	char ip[RESOLVE_IP_MAX];
};

/* resolv.conf allows three; a few more cost nothing. */
#define RESOLVE_MAX_SERVERS 8

struct resolver {
	struct event_base *base;
	struct evdns_base *dns;
	bool have_dns; /* at least one nameserver */
	/* The nameservers of resolv.conf, used one at a time (see
	 * resolver_use_server); empty when the caller chose its own. */
	char servers[RESOLVE_MAX_SERVERS][RESOLVE_IP_MAX + 8];
	size_t nservers, cur_server;
	bool closing;
	struct resolve_hostent *hosts;
	size_t nhosts, hosts_cap;
};

struct resolve_req {
	TAILQ_ENTRY(resolve_req) next;
	struct resolver *r;
	uintptr_t id;
	resolve_cb cb; /* NULL once delivered or cancelled */
	void *arg;
	struct event *ev_timeout;
	struct event *ev_deliver;
	bool pending_a, pending_aaaa; /* evdns queries not yet answered */
	bool done;		      /* result fixed, delivery scheduled */
	bool blamed;		      /* its nameserver was moved past */
	int dns_err;		      /* first evdns error seen */
	char ip[RESOLVE_IP_MAX];
	char v6[RESOLVE_IP_MAX]; /* AAAA answer held while A is out */
	char err[96];
};

TAILQ_HEAD(resolve_req_list, resolve_req);

/* evdns gets an id, not a pointer: a query answered after its lookup (or
 * the whole resolver) was freed then finds nothing instead of freed
 * memory. One list for the process; the service has one thread. */
static struct resolve_req_list resolve_live =
    TAILQ_HEAD_INITIALIZER(resolve_live);
static uintptr_t resolve_next_id = 1;

static struct resolve_req *
resolve_find(uintptr_t id)
{
	struct resolve_req *req;

	TAILQ_FOREACH(req, &resolve_live, next)
		if (req->id == id)
			return req;
	return NULL;
}

bool
resolve_is_numeric(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return host != NULL &&
	    (inet_pton(AF_INET, host, buf) == 1 ||
		inet_pton(AF_INET6, host, buf) == 1);
}

/* Letters, digits, '-', '_' (container names), labels of 1..63, at most
 * one trailing dot. Anything else never reaches DNS. */
static bool
resolve_name_ok(const char *host)
{
	size_t len = strlen(host), label = 0;

	if (len == 0 || len > 253 || host[0] == '.')
		return false;
	for (const char *p = host; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*p) || *p == '-' ||
		    *p == '_') {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* ---- hosts(5) table ---- */

static void
resolver_add_hostent(struct resolver *r, const char *name, int family,
    const char *ip)
{
	struct resolve_hostent *e;

	if (r->nhosts == r->hosts_cap) {
		r->hosts_cap = r->hosts_cap ? r->hosts_cap * 2 : 16;
		e = xcalloc(r->hosts_cap, sizeof(*e));
		if (r->nhosts > 0)
			memcpy(e, r->hosts, r->nhosts * sizeof(*e));
		free(r->hosts);
		r->hosts = e;
	}
	e = &r->hosts[r->nhosts++];
	e->name = xstrdup(name);
	e->family = family;
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
}

/* "ip name [alias...]  # comment"; lines with a bad address are skipped,
 * as the C library does. */
static void
resolver_parse_hosts_line(struct resolver *r, char *line)
{
	unsigned char addr[sizeof(struct in6_addr)];
	char ip[RESOLVE_IP_MAX], *save = NULL, *tok, *hash;
	int family = AF_INET;

	if ((hash = strchr(line, '#')) != NULL)
		*hash = '\0';
	if ((tok = strtok_r(line, " \t\r\n", &save)) == NULL)
		return;
	if (inet_pton(AF_INET, tok, addr) != 1) {
		family = AF_INET6;
		if (inet_pton(AF_INET6, tok, addr) != 1)
			return;
	}
	inet_ntop(family, addr, ip, sizeof(ip));
	while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL)
		resolver_add_hostent(r, tok, family, ip);
}

int
resolver_add_hosts(struct resolver *r, const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (f == NULL)
		return -1;
	while (getline(&line, &cap, f) >= 0)
		resolver_parse_hosts_line(r, line);
	free(line);
	fclose(f);
	return 0;
}

/* The first IPv4 entry wins, else the first IPv6 one. */
static const char *
resolver_hosts_lookup(const struct resolver *r, const char *host)
{
	size_t len = strlen(host);
	const char *v6 = NULL;

	if (len > 0 && host[len - 1] == '.')
		len--;
	for (size_t i = 0; i < r->nhosts; i++) {
		const struct resolve_hostent *e = &r->hosts[i];

		if (strlen(e->name) != len ||
		    strncasecmp(e->name, host, len) != 0)
			continue;
		if (e->family == AF_INET)
			return e->ip;
		if (v6 == NULL)
			v6 = e->ip;
	}
	return v6;
}

/* ---- one lookup ---- */

static void
resolve_req_free(struct resolve_req *req)
{
	TAILQ_REMOVE(&resolve_live, req, next);
	event_free(req->ev_timeout);
	event_free(req->ev_deliver);
	free(req);
}

/* A lookup lives on while evdns still owes it an answer. */
static void
resolve_req_release(struct resolve_req *req)
{
	if (req->cb == NULL && !req->pending_a && !req->pending_aaaa)
		resolve_req_free(req);
}

static void
resolve_finish(struct resolve_req *req, const char *ip, const char *err)
{
	if (req->done)
		return;
	req->done = true;
	if (ip != NULL)
		snprintf(req->ip, sizeof(req->ip), "%s", ip);
	else
		snprintf(req->err, sizeof(req->err), "%s", err);
	event_del(req->ev_timeout);
	if (req->cb != NULL)
		event_active(req->ev_deliver, EV_TIMEOUT, 0);
}

/* The lookup is let go before the callback runs, which may then start
 * new lookups or free its own owner freely. */
static void
resolve_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_req *req = arg;
	resolve_cb cb = req->cb;
	void *cb_arg = req->arg;
	char ip[RESOLVE_IP_MAX], err[sizeof(req->err)];
	bool ok = req->ip[0] != '\0';

	UNUSED(fd);
	UNUSED(what);
	memcpy(ip, req->ip, sizeof(ip));
	memcpy(err, req->err, sizeof(err));
	req->cb = NULL;
	resolve_req_release(req);
	if (cb != NULL)
		cb(cb_arg, ok ? ip : NULL, ok ? NULL : err);
}

/* evdns sends each query to the next nameserver in turn. When they
 * disagree (podman lists its own DNS, which knows the compose services,
 * before the host's, which does not) a name then resolves or fails by
 * turns. The system resolver asks the first one and moves on only when it
 * fails; do the same: one server at a time, the next after a failure. */
static int
resolver_use_server(struct resolver *r, size_t i)
{
	int rc;

	evdns_base_clear_nameservers_and_suspend(r->dns);
	rc = evdns_base_nameserver_ip_add(r->dns, r->servers[i]);
	if (rc != 0)
		log_warn("dns", "bad nameserver", "{s:s}", "nameserver",
		    r->servers[i]);
	evdns_base_resume(r->dns);
	r->cur_server = i;
	return rc == 0 ? 0 : -1;
}

static void
resolver_server_failed(struct resolver *r)
{
	size_t next;

	if (r->nservers < 2)
		return;
	next = (r->cur_server + 1) % r->nservers;
	log_info("dns", "nameserver failed, trying the next", "{s:s, s:s}",
	    "failed", r->servers[r->cur_server], "next", r->servers[next]);
	resolver_use_server(r, next);
}

/* A lookup's A and AAAA queries and its own timeout may all fail: move
 * past its nameserver once, or with two servers the lookup would rotate
 * straight back to the one that failed. */
static void
resolve_blame_server(struct resolve_req *req)
{
	if (req->blamed)
		return;
	req->blamed = true;
	resolver_server_failed(req->r);
}

static void
resolver_read_servers(struct resolver *r, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[256];

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL &&
	    r->nservers < RESOLVE_MAX_SERVERS) {
		char addr[RESOLVE_IP_MAX + 8];

		if (sscanf(line, " nameserver %53s", addr) == 1)
			snprintf(r->servers[r->nservers++],
			    sizeof(r->servers[0]), "%s", addr);
	}
	fclose(f);
}

static void
resolve_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_req *req = arg;

	UNUSED(fd);
	UNUSED(what);
	if (req->pending_a || req->pending_aaaa)
		resolve_blame_server(req);
	if (req->v6[0] != '\0')
		resolve_finish(req, req->v6, NULL);
	else
		resolve_finish(req, NULL, "timeout");
}

/* Both queries are in: report the best of what came back. */
static void
resolve_settle(struct resolve_req *req)
{
	if (req->pending_a || req->pending_aaaa)
		return;
	if (req->v6[0] != '\0')
		resolve_finish(req, req->v6, NULL);
	else if (req->dns_err == DNS_ERR_NONE)
		resolve_finish(req, NULL, "no address for name");
	else
		resolve_finish(req, NULL, evdns_err_to_string(req->dns_err));
	resolve_req_release(req);
}

static void
resolve_on_dns(int result, char type, int count, void *addresses, uintptr_t id,
    bool is_a)
{
	struct resolve_req *req = resolve_find(id);
	char ip[RESOLVE_IP_MAX];

	if (req == NULL)
		return;
	if (is_a)
		req->pending_a = false;
	else
		req->pending_aaaa = false;
	if (result == DNS_ERR_NONE && count > 0 && type == DNS_IPv4_A) {
		inet_ntop(AF_INET, addresses, ip, sizeof(ip));
		resolve_finish(req, ip, NULL);
	} else if (result == DNS_ERR_NONE && count > 0 &&
	    type == DNS_IPv6_AAAA) {
		inet_ntop(AF_INET6, addresses, req->v6, sizeof(req->v6));
	} else if (req->dns_err == DNS_ERR_NONE) {
		req->dns_err = result;
	}
	if (result == DNS_ERR_TIMEOUT || result == DNS_ERR_SERVERFAILED ||
	    result == DNS_ERR_REFUSED)
		resolve_blame_server(req);
	resolve_settle(req);
}

static void
resolve_on_a(int result, char type, int count, int ttl, void *addresses,
    void *arg)
{
	UNUSED(ttl);
	resolve_on_dns(result, type, count, addresses, (uintptr_t)arg, true);
}

static void
resolve_on_aaaa(int result, char type, int count, int ttl, void *addresses,
    void *arg)
{
	UNUSED(ttl);
	resolve_on_dns(result, type, count, addresses, (uintptr_t)arg, false);
}

static void
resolve_start_dns(struct resolver *r, struct resolve_req *req, const char *host)
{
	void *id = (void *)req->id;

	req->pending_a = evdns_base_resolve_ipv4(r->dns, host, 0, resolve_on_a,
			     id) != NULL;
	req->pending_aaaa = evdns_base_resolve_ipv6(r->dns, host, 0,
				resolve_on_aaaa, id) != NULL;
	if (!req->pending_a && !req->pending_aaaa)
		resolve_finish(req, NULL, "DNS query could not be sent");
}

struct resolve_req *
resolve_host(struct resolver *r, const char *host, int64_t timeout_ms,
    resolve_cb cb, void *arg)
{
	struct resolve_req *req;
	unsigned char addr[sizeof(struct in6_addr)];
	char ip[RESOLVE_IP_MAX];
	const char *hit;
	struct timeval tv;

	if (r->closing)
		return NULL;
	req = xcalloc(1, sizeof(*req));
	req->r = r;
	req->id = resolve_next_id++;
	req->cb = cb;
	req->arg = arg;
	req->ev_timeout = evtimer_new(r->base, resolve_on_timeout, req);
	req->ev_deliver = event_new(r->base, -1, 0, resolve_on_deliver, req);
	TAILQ_INSERT_TAIL(&resolve_live, req, next);

	/* Every answer, even one known now, is delivered from the loop. */
	if (host == NULL)
		resolve_finish(req, NULL, "invalid host name");
	else if (inet_pton(AF_INET, host, addr) == 1)
		resolve_finish(req, inet_ntop(AF_INET, addr, ip, sizeof(ip)),
		    NULL);
	else if (inet_pton(AF_INET6, host, addr) == 1)
		resolve_finish(req, inet_ntop(AF_INET6, addr, ip, sizeof(ip)),
		    NULL);
	else if (!resolve_name_ok(host))
		resolve_finish(req, NULL, "invalid host name");
	else if ((hit = resolver_hosts_lookup(r, host)) != NULL)
		resolve_finish(req, hit, NULL);
	else if (!r->have_dns)
		resolve_finish(req, NULL,
		    "not in the hosts file and no DNS server configured");
	else
		resolve_start_dns(r, req, host);
	if (!req->done) {
		tv = util_tv(timeout_ms > 0 ? timeout_ms : 1);
		event_add(req->ev_timeout, &tv);
	}
	return req;
}

void
resolve_cancel(struct resolve_req *req)
{
	if (req == NULL || req->cb == NULL)
		return;
	req->cb = NULL;
	event_del(req->ev_timeout);
	event_del(req->ev_deliver);
	resolve_req_release(req);
}

/* ---- the resolver ---- */

/* evdns passes 1 for a warning, 0 for anything less. */
static void
resolve_evdns_log(int is_warn, const char *msg)
{
	log_write(is_warn ? LOG_WARN : LOG_DEBUG, "dns", "evdns", "{s:s}",
	    "detail", msg);
}

struct resolver *
resolver_new(struct event_base *base)
{
	struct resolver *r = xcalloc(1, sizeof(*r));

	r->base = base;
	evdns_set_log_fn(resolve_evdns_log);
	/* Idle nameserver sockets must not keep the loop alive. */
	r->dns = evdns_base_new(base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (r->dns != NULL) {
		r->have_dns = evdns_base_count_nameservers(r->dns) > 0;
		resolver_read_servers(r, "/etc/resolv.conf");
		if (r->have_dns && r->nservers > 1 &&
		    resolver_use_server(r, 0) != 0)
			r->have_dns = false;
	} else {
		log_warn("dns",
		    "no usable /etc/resolv.conf: resolving from "
		    "the hosts file only",
		    NULL);
		r->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (r->dns == NULL) {
			log_error("dns", "out of memory", NULL);
			abort();
		}
	}
	if (resolver_add_hosts(r, "/etc/hosts") != 0)
		log_debug("dns", "no /etc/hosts", NULL);
	if (resolver_hosts_lookup(r, "localhost") == NULL) {
		resolver_add_hostent(r, "localhost", AF_INET, "127.0.0.1");
		resolver_add_hostent(r, "localhost", AF_INET6, "::1");
	}
	return r;
}

int
resolver_set_nameservers(struct resolver *r, const char *const *addrs, size_t n)
{
	r->nservers = 0;
	for (size_t i = 0; i < n && i < RESOLVE_MAX_SERVERS; i++)
		snprintf(r->servers[r->nservers++], sizeof(r->servers[0]), "%s",
		    addrs[i]);
	r->have_dns = r->nservers > 0 && resolver_use_server(r, 0) == 0;
	return r->have_dns ? 0 : -1;
}

void
resolver_free(struct resolver *r)
{
	struct resolve_req *req, *tmp;
	bool again = true;

	if (r == NULL)
		return;
	r->closing = true;
	/* A callback may cancel other lookups: rescan after each one. */
	while (again) {
		again = false;
		TAILQ_FOREACH(req, &resolve_live, next) {
			resolve_cb cb = req->cb;

			if (req->r != r || cb == NULL)
				continue;
			req->cb = NULL;
			event_del(req->ev_deliver);
			cb(req->arg, NULL, "cancelled");
			again = true;
			break;
		}
	}
	for (req = TAILQ_FIRST(&resolve_live); req != NULL; req = tmp) {
		tmp = TAILQ_NEXT(req, next);
		if (req->r == r)
			resolve_req_free(req);
	}
	/* 0: drop queued queries without running their callbacks. */
	evdns_base_free(r->dns, 0);
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i].name);
	free(r->hosts);
	free(r);
}
