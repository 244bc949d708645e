/* resolve.h - host name resolution on the event loop (libevent evdns).
 *
 * Nothing here blocks: numeric addresses and hosts(5) entries are answered
 * from memory, other names go to the DNS servers of /etc/resolv.conf over
 * evdns. Use it so that hiredis and libpq only ever see numeric addresses
 * (both would otherwise call the blocking getaddrinfo on the loop).
 *
 * The callback of a lookup runs exactly once, from the loop and never
 * inside resolve_host, unless the lookup is cancelled first. The handle
 * is valid until the callback has started or resolve_cancel returned;
 * never use it after that.
 */
#ifndef GOPULSE_RESOLVE_H
#define GOPULSE_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "common.h"

/* Longest numeric text handed to a callback, with its NUL. */
#define RESOLVE_IP_MAX 46

struct resolver;
struct resolve_req;

/* ip is numeric text (IPv4 preferred, else IPv6) and err NULL, or ip is
 * NULL and err says why ("timeout", "cancelled", "name does not exist",
 * ...). Both are borrowed for the call. */
typedef void (*resolve_cb)(void *arg, const char *ip, const char *err);

/* Never NULL. Reads /etc/hosts and /etc/resolv.conf once, now. Without a
 * usable resolv.conf (some containers) it logs a warning and answers from
 * the hosts file only; other names then fail at once. */
struct resolver *resolver_new(struct event_base *base);
/* Lookups still outstanding get their callback now, with "cancelled".
 * Free its users (redis clients) first, event_base_free after; never
 * call it from inside a resolve_cb. */
void resolver_free(struct resolver *r);

/* Adds the entries of a file in hosts(5) format; -1 if it can't be read.
 * For tests and for setups with an extra hosts file. */
int resolver_add_hosts(struct resolver *r, const char *path) MUSTCHECK;
/* Replaces the DNS servers by "ip" or "ip:port" entries, asked one at a
 * time in this order, the next after a failure, as the ones of
 * resolv.conf are (tests, or a sidecar resolver). Call it while no lookup
 * is outstanding. */
int resolver_set_nameservers(struct resolver *r, const char *const *addrs,
    size_t n) MUSTCHECK;

/* Starts a lookup that gives up after timeout_ms (at least 1 ms). Returns
 * NULL, with no callback, only while resolver_free is running. */
struct resolve_req *resolve_host(struct resolver *r, const char *host,
    int64_t timeout_ms, resolve_cb cb, void *arg);
/* The callback will not run. */
void resolve_cancel(struct resolve_req *req);

/* An IPv4 or IPv6 address in numeric form (no brackets, no port). */
bool resolve_is_numeric(const char *host);

#endif
