/* test_resolve.c - resolve.c against a fake DNS server on loopback.
 *
 * No network is needed: the resolver is pointed at a UDP socket of this
 * process that answers a few names, says NXDOMAIN to others and ignores
 * "slow.test". Every loop runs under a watchdog timer, so a lookup that
 * never answers fails the test instead of hanging it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"
#include "log.h"
#include "resolve.h"
#include "util.h"

#define WATCHDOG_MS 5000

struct result {
	int calls;
	bool in_submit; /* set around resolve_host */
	bool sync_call; /* the callback ran inside resolve_host */
	char ip[RESOLVE_IP_MAX];
	char err[128];
	int64_t at_ms;
};

static struct event_base *base;
static int outstanding; /* callbacks still expected */
static bool watchdog_fired;

static void
on_result(void *arg, const char *ip, const char *err)
{
	struct result *res = arg;

	res->calls++;
	res->sync_call = res->sync_call || res->in_submit;
	res->at_ms = util_now_ms();
	snprintf(res->ip, sizeof(res->ip), "%s", ip ? ip : "");
	snprintf(res->err, sizeof(res->err), "%s", err ? err : "");
	if (--outstanding == 0)
		event_base_loopexit(base, NULL);
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	UNUSED(arg);
	watchdog_fired = true;
	event_base_loopbreak(base);
}

/* Runs the loop until every expected callback came, or the watchdog. */
static void
run_loop(int64_t limit_ms)
{
	struct event *wd = evtimer_new(base, on_watchdog, NULL);
	struct timeval tv = util_tv(limit_ms);

	watchdog_fired = false;
	event_add(wd, &tv);
	if (outstanding > 0)
		event_base_dispatch(base);
	event_free(wd);
	CHECK(!watchdog_fired);
}

static struct resolve_req *
submit(struct resolver *r, const char *host, int64_t timeout_ms,
    struct result *res)
{
	struct resolve_req *req;

	memset(res, 0, sizeof(*res));
	outstanding++;
	res->in_submit = true;
	req = resolve_host(r, host, timeout_ms, on_result, res);
	res->in_submit = false;
	CHECK(req != NULL);
	return req;
}

/* ---- a fake DNS server ---- */

struct fake_dns {
	int fd;
	int port;
	struct event *ev;
	int queries;
	bool servfail; /* a broken server: SERVFAIL to everything */
};

static void
fake_dns_put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* a.test: A 10.1.2.3 and AAAA fd00::1; six.test: AAAA only;
 * slow.test: never answered; anything else: NXDOMAIN. */
static void
fake_dns_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake_dns *fd_ = arg;
	unsigned char q[512], out[600];
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from,
	    &flen);
	char name[256] = "";
	size_t pos = 12, nl = 0, qend, len;
	unsigned qtype, rcode = 3, ancount = 0;
	unsigned char rdata[16];
	size_t rdlen = 0;

	UNUSED(what);
	if (n < 17)
		return;
	fd_->queries++;
	while (pos < (size_t)n && q[pos] != 0 &&
	    nl + q[pos] + 2 < sizeof(name)) {
		if (nl > 0)
			name[nl++] = '.';
		memcpy(name + nl, q + pos + 1, q[pos]);
		nl += q[pos];
		pos += (size_t)q[pos] + 1;
	}
	name[nl] = '\0';
	qend = pos + 5;
	if (qend > (size_t)n)
		return;
	qtype = (unsigned)q[pos + 1] << 8 | q[pos + 2];
	if (strcasecmp(name, "slow.test") == 0)
		return;
	if (strcasecmp(name, "a.test") == 0 ||
	    strcasecmp(name, "six.test") == 0)
		rcode = 0;
	if (fd_->servfail)
		rcode = 2;
	if (rcode != 0) {
		/* no answer records */
	} else if (strcasecmp(name, "a.test") == 0 && qtype == 1) {
		inet_pton(AF_INET, "10.1.2.3", rdata);
		rdlen = 4;
	} else if (rcode == 0 && qtype == 28) {
		inet_pton(AF_INET6,
		    strcasecmp(name, "a.test") == 0 ? "fd00::1" : "fd00::6",
		    rdata);
		rdlen = 16;
	}
	ancount = rdlen > 0;
	memcpy(out, q, qend);
	fake_dns_put16(out + 2, 0x8180 | rcode);
	fake_dns_put16(out + 6, ancount);
	fake_dns_put16(out + 8, 0);
	fake_dns_put16(out + 10, 0);
	len = qend;
	if (ancount) {
		fake_dns_put16(out + len, 0xc00c);
		fake_dns_put16(out + len + 2, qtype);
		fake_dns_put16(out + len + 4, 1);
		memset(out + len + 6, 0, 4);
		out[len + 9] = 60;
		fake_dns_put16(out + len + 10, (unsigned)rdlen);
		memcpy(out + len + 12, rdata, rdlen);
		len += 12 + rdlen;
	}
	sendto(fd, out, len, 0, (struct sockaddr *)&from, flen);
}

static void
fake_dns_start(struct fake_dns *d)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);

	memset(d, 0, sizeof(*d));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	d->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (d->fd < 0 || bind(d->fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    getsockname(d->fd, (struct sockaddr *)&sin, &slen)) {
		perror("fake dns");
		exit(1);
	}
	evutil_make_socket_nonblocking(d->fd);
	d->port = ntohs(sin.sin_port);
	d->ev = event_new(base, d->fd, EV_READ | EV_PERSIST, fake_dns_on_read,
	    d);
	event_add(d->ev, NULL);
}

static void
fake_dns_stop(struct fake_dns *d)
{
	event_free(d->ev);
	close(d->fd);
}

/* A resolver that asks only the fake server. */
static struct resolver *
fake_resolver(struct fake_dns *d)
{
	struct resolver *r = resolver_new(base);
	char addr[64];
	const char *addrs[] = { addr };

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", d->port);
	CHECK(resolver_set_nameservers(r, addrs, 1) == 0);
	return r;
}

/* ---- tests ---- */

static void
test_numeric(void)
{
	CHECK(resolve_is_numeric("127.0.0.1"));
	CHECK(resolve_is_numeric("::1"));
	CHECK(resolve_is_numeric("fd00::1"));
	CHECK(!resolve_is_numeric("localhost"));
	CHECK(!resolve_is_numeric("127.1"));
	CHECK(!resolve_is_numeric("[::1]"));
	CHECK(!resolve_is_numeric(""));
	CHECK(!resolve_is_numeric(NULL));
}

static void
test_localhost_and_numeric(void)
{
	struct resolver *r = resolver_new(base);
	struct result lh, v4, v6, up;

	submit(r, "localhost", 1000, &lh);
	submit(r, "192.0.2.7", 1000, &v4);
	submit(r, "0:0::1", 1000, &v6);
	submit(r, "LOCALHOST.", 1000, &up);
	/* Known at once, yet never answered inside resolve_host. */
	CHECK(lh.calls == 0 && v4.calls == 0 && v6.calls == 0);
	run_loop(WATCHDOG_MS);
	CHECK(lh.calls == 1 && !lh.sync_call);
	CHECK_STR(lh.ip, "127.0.0.1");
	CHECK(v4.calls == 1);
	CHECK_STR(v4.ip, "192.0.2.7");
	CHECK(v6.calls == 1);
	CHECK_STR(v6.ip, "::1");
	CHECK(up.calls == 1);
	CHECK_STR(up.ip, "127.0.0.1");
	resolver_free(r);
}

static void
test_invalid_names(void)
{
	struct resolver *r = resolver_new(base);
	const char *bad[] = { "", "a..b", ".x", "bad name", "x/y", "é.test" };
	struct result res[ARRAY_LEN(bad) + 1];
	char longname[300];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		submit(r, bad[i], 1000, &res[i]);
	submit(r, longname, 1000, &res[ARRAY_LEN(bad)]);
	run_loop(WATCHDOG_MS);
	for (size_t i = 0; i < ARRAY_LEN(res); i++) {
		CHECK(res[i].calls == 1 && !res[i].sync_call);
		CHECK(res[i].ip[0] == '\0');
		CHECK_STR(res[i].err, "invalid host name");
	}
	resolver_free(r);
}

static void
test_hosts_file(void)
{
	char path[] = "/tmp/test_resolve_hostsXXXXXX";
	int fd = mkstemp(path);
	const char text[] =
	    "# test hosts\n"
	    "10.9.8.7   cache.internal  cache   # trailing comment\n"
	    "fd00::5    v6only.internal\n"
	    "not-an-ip  broken.internal\n";
	struct resolver *r = resolver_new(base);
	struct result a, alias, six, broken;

	CHECK(fd >= 0 &&
	    write(fd, text, sizeof(text) - 1) == (ssize_t)(sizeof(text) - 1));
	close(fd);
	CHECK(resolver_add_hosts(r, path) == 0);
	CHECK(resolver_add_hosts(r, "/nonexistent/hosts") == -1);
	unlink(path);
	/* No DNS at all: a miss must fail fast, not wait for a timeout. */
	{
		const char *bad[] = { "not an address" };

		CHECK(resolver_set_nameservers(r, bad, 1) == -1);
	}
	submit(r, "cache.internal", 1000, &a);
	submit(r, "CACHE", 1000, &alias);
	submit(r, "v6only.internal", 1000, &six);
	submit(r, "broken.internal", 1000, &broken);
	run_loop(WATCHDOG_MS);
	CHECK_STR(a.ip, "10.9.8.7");
	CHECK_STR(alias.ip, "10.9.8.7");
	CHECK_STR(six.ip, "fd00::5");
	CHECK(broken.calls == 1 && broken.ip[0] == '\0');
	CHECK(strstr(broken.err, "no DNS server") != NULL);
	resolver_free(r);
}

static void
test_dns(void)
{
	struct fake_dns d;
	struct resolver *r;
	struct result a, six, nx;

	fake_dns_start(&d);
	r = fake_resolver(&d);
	submit(r, "a.test", 2000, &a);
	submit(r, "six.test", 2000, &six);
	submit(r, "nx.test", 2000, &nx);
	run_loop(WATCHDOG_MS);
	CHECK(a.calls == 1 && !a.sync_call);
	CHECK_STR(a.ip, "10.1.2.3"); /* IPv4 preferred */
	CHECK_STR(six.ip, "fd00::6");
	CHECK(nx.calls == 1 && nx.ip[0] == '\0');
	CHECK_STR(nx.err, "name does not exist");
	CHECK(d.queries >= 6);
	resolver_free(r);
	fake_dns_stop(&d);
}

static void
test_timeout(void)
{
	struct fake_dns d;
	struct resolver *r;
	struct result slow;
	int64_t t0;

	fake_dns_start(&d);
	r = fake_resolver(&d);
	t0 = util_now_ms();
	submit(r, "slow.test", 300, &slow);
	run_loop(WATCHDOG_MS);
	CHECK(slow.calls == 1);
	CHECK_STR(slow.err, "timeout");
	CHECK(slow.at_ms - t0 >= 250 && slow.at_ms - t0 < 2000);
	/* The abandoned query is still with evdns: freeing drops it. */
	resolver_free(r);
	fake_dns_stop(&d);
}

/* Like the system resolver: the first server while it works, the next
 * once it fails, and not back again at the next lookup. */
static void
test_next_nameserver_after_failure(void)
{
	struct fake_dns broken, good;
	struct resolver *r = resolver_new(base);
	char a1[64], a2[64];
	const char *addrs[] = { a1, a2 };
	struct result first, second, third;

	fake_dns_start(&broken);
	fake_dns_start(&good);
	broken.servfail = true;
	snprintf(a1, sizeof(a1), "127.0.0.1:%d", broken.port);
	snprintf(a2, sizeof(a2), "127.0.0.1:%d", good.port);
	CHECK(resolver_set_nameservers(r, addrs, 2) == 0);
	submit(r, "a.test", 2000, &first);
	run_loop(WATCHDOG_MS);
	CHECK(broken.queries > 0 && good.queries == 0);
	CHECK(first.calls == 1);
	submit(r, "a.test", 2000, &second);
	run_loop(WATCHDOG_MS);
	CHECK_STR(second.ip, "10.1.2.3");
	broken.queries = 0;
	submit(r, "a.test", 2000, &third);
	run_loop(WATCHDOG_MS);
	CHECK_STR(third.ip, "10.1.2.3");
	CHECK(broken.queries == 0);
	resolver_free(r);
	fake_dns_stop(&broken);
	fake_dns_stop(&good);
}

static void
on_never(void *arg, const char *ip, const char *err)
{
	UNUSED(ip);
	UNUSED(err);
	(*(int *)arg)++;
}

static void
test_cancel(void)
{
	struct fake_dns d;
	struct resolver *r;
	struct resolve_req *q1, *q2, *q3;
	struct result later;
	int never = 0;

	fake_dns_start(&d);
	r = fake_resolver(&d);
	q1 = resolve_host(r, "localhost", 1000, on_never, &never);
	q2 = resolve_host(r, "a.test", 1000, on_never, &never);
	q3 = resolve_host(r, "slow.test", 1000, on_never, &never);
	resolve_cancel(q1);
	resolve_cancel(q2);
	resolve_cancel(q3);
	/* The loop goes on; the cancelled callbacks must stay silent while
	 * a later lookup completes (and the a.test answers arrive). */
	submit(r, "a.test", 2000, &later);
	run_loop(WATCHDOG_MS);
	CHECK(never == 0);
	CHECK_STR(later.ip, "10.1.2.3");
	resolver_free(r);
	fake_dns_stop(&d);
}

static void
test_free_outstanding(void)
{
	struct fake_dns d;
	struct resolver *r;
	struct result slow, lh;

	fake_dns_start(&d);
	r = fake_resolver(&d);
	submit(r, "slow.test", 5000, &slow);
	submit(r, "localhost", 5000, &lh);
	resolver_free(r);
	CHECK(slow.calls == 1 && lh.calls == 1);
	CHECK_STR(slow.err, "cancelled");
	CHECK_STR(lh.err, "cancelled");
	outstanding = 0;
	fake_dns_stop(&d);
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	base = event_base_new();
	RUN(test_numeric);
	RUN(test_localhost_and_numeric);
	RUN(test_invalid_names);
	RUN(test_hosts_file);
	RUN(test_dns);
	RUN(test_timeout);
	RUN(test_next_nameserver_after_failure);
	RUN(test_cancel);
	RUN(test_free_outstanding);
	event_base_free(base);
	return harness_done();
}
