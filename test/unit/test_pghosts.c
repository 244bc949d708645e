/* test_pghosts.c - which hosts of a DSN need a lookup, and the lists libpq
 * gets once they are resolved.
 *
 * Names resolve from a hosts file of the test's own; DNS goes to a UDP
 * socket of this process that reads nothing, a server that never answers.
 * Every loop runs under a watchdog, so a lookup that never ends fails the
 * test instead of hanging it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "harness.h"
#include "log.h"
#include "pghosts.h"
#include "resolve.h"
#include "util.h"

#define WATCHDOG_MS 5000
#define LOOKUP_MS 300 /* the silent server's lookups give up */

static const struct pghosts_defaults no_defaults = { NULL, NULL, NULL };

/* ---- which names need a lookup ---- */

/* The lookup names of dsn's hosts, "-" for none, joined by spaces; "NULL"
 * when libpq would look up nothing at all. */
static char *
names(const char *dsn, const struct pghosts_defaults *def)
{
	struct pghosts *h = pghosts_new_with(dsn, def ? def : &no_defaults);
	char *out = NULL, *s;

	if (h == NULL)
		return xstrdup("NULL");
	for (size_t i = 0; i < pghosts_count(h); i++) {
		const char *n = pghosts_lookup_name(h, i);

		s = xasprintf("%s%s%s", out ? out : "", out ? " " : "",
		    n ? n : "-");
		free(out);
		out = s;
	}
	pghosts_free(h);
	return out;
}

#define CHECK_NAMES(dsn, def, want) \
	do { \
		char *got_ = names(dsn, def); \
		CHECK_STR(got_, want); \
		free(got_); \
	} while (0)

static void
test_single_hosts(void)
{
	CHECK_NAMES("host=db port=5432 dbname=x", NULL, "db");
	CHECK_NAMES("postgres://u@db.example:5432/x", NULL, "db.example");
	/* Nothing for libpq to look up: no module work either. */
	CHECK_NAMES("host=127.0.0.1 dbname=x", NULL, "NULL");
	CHECK_NAMES("postgres://u@[::1]:5432/x", NULL, "NULL");
	CHECK_NAMES("host=fe80::1%lo dbname=x", NULL, "NULL");
	CHECK_NAMES("host=/var/run/postgresql dbname=x", NULL, "NULL");
	CHECK_NAMES("host=@abstract dbname=x", NULL, "NULL");
	CHECK_NAMES("dbname=x", NULL, "NULL");
	CHECK_NAMES("host=db hostaddr=10.0.0.1 dbname=x", NULL, "NULL");
}

static void
test_host_lists(void)
{
	CHECK_NAMES("host=db1,db2 dbname=x", NULL, "db1 db2");
	CHECK_NAMES("postgres://u@h1:5432,h2:5433/x", NULL, "h1 h2");
	CHECK_NAMES("host=db1,/tmp,10.0.0.1,,@sock,db2", NULL,
	    "db1 - - - - db2");
	/* A hostaddr entry spares its host the lookup; an empty one not. */
	CHECK_NAMES("host=db1,db2,db3 hostaddr=,10.0.0.2,", NULL, "db1 - db3");
	CHECK_NAMES("postgres://u@a,b/x?hostaddr=10.0.0.1,10.0.0.2", NULL,
	    "NULL");
}

/* Lists libpq would refuse (before any lookup) are left to it. */
static void
test_mismatched_lists(void)
{
	CHECK_NAMES("host=a,b hostaddr=10.0.0.1 dbname=x", NULL, "NULL");
	CHECK_NAMES("host=a hostaddr=10.0.0.1,10.0.0.2 dbname=x", NULL, "NULL");
	CHECK_NAMES("host=a,b port=1,2,3 dbname=x", NULL, "NULL");
	CHECK_NAMES("host=a,b port=1,2 dbname=x", NULL, "a b");
	CHECK_NAMES("host=a,b port=1 dbname=x", NULL, "a b");
}

/* Where the DSN is silent, libpq takes PGHOST, PGHOSTADDR, PGPORT. */
static void
test_defaults(void)
{
	struct pghosts_defaults pghost = { "envhost", NULL, NULL };
	struct pghosts_defaults list = { "e1,/tmp,e2", NULL, "1,2,3" };
	struct pghosts_defaults addr = { NULL, "10.0.0.9", NULL };
	struct pghosts_defaults socket = { "/run/postgresql", NULL, NULL };

	CHECK_NAMES("dbname=x", &pghost, "envhost");
	CHECK_NAMES("postgres:///x", &pghost, "envhost");
	CHECK_NAMES("dbname=x", &list, "e1 - e2");
	CHECK_NAMES("dbname=x", &socket, "NULL");
	/* The DSN's own host wins, even an empty one (the default socket). */
	CHECK_NAMES("host=dsnhost dbname=x", &pghost, "dsnhost");
	CHECK_NAMES("host='' dbname=x", &pghost, "NULL");
	/* PGHOSTADDR pairs with the DSN's host: no lookup. */
	CHECK_NAMES("host=dsnhost dbname=x", &addr, "NULL");
	/* The DSN's single port against PGHOST's list is fine for libpq. */
	CHECK_NAMES("dbname=x port=5432", &list, "e1 - e2");
}

/* pghosts_new reads the real environment, as libpq does. */
static void
test_environment(void)
{
	struct pghosts *h;

	setenv("PGHOST", "fromenv,10.1.1.1", 1);
	unsetenv("PGHOSTADDR");
	unsetenv("PGSERVICE");
	h = pghosts_new("dbname=x");
	CHECK(h != NULL);
	if (h != NULL) {
		CHECK(pghosts_count(h) == 2);
		CHECK_STR(pghosts_lookup_name(h, 0), "fromenv");
		CHECK(pghosts_lookup_name(h, 1) == NULL);
		pghosts_free(h);
	}
	setenv("PGHOSTADDR", "10.2.2.2,10.3.3.3", 1);
	CHECK(pghosts_new("dbname=x") == NULL);
	unsetenv("PGHOSTADDR");
	unsetenv("PGHOST");
	CHECK(pghosts_new("dbname=x") == NULL);
}

/* A service file's hosts come before PGHOST, after the DSN's own; the
 * service the DSN names is looked up in PGSERVICE's place, which stays. */
static void
test_service_file(void)
{
	char path[] = "/tmp/test_pghosts_svc_XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	struct pghosts *h;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs("[one]\nhost=svc1,svc2\nport=1,2\n[addr]\nhost=svc3\n"
	      "hostaddr=10.0.0.3\n",
	    f);
	fclose(f);
	setenv("PGSERVICEFILE", path, 1);
	setenv("PGHOST", "fromenv", 1);
	setenv("PGSERVICE", "addr", 1);
	h = pghosts_new("service=one dbname=x");
	CHECK(h != NULL && pghosts_count(h) == 2);
	if (h != NULL) {
		CHECK_STR(pghosts_lookup_name(h, 0), "svc1");
		CHECK_STR(pghosts_lookup_name(h, 1), "svc2");
		pghosts_free(h);
	}
	CHECK_STR(getenv("PGSERVICE"), "addr");
	/* PGSERVICE's service pairs svc3 with an address. */
	CHECK(pghosts_new("dbname=x") == NULL);
	h = pghosts_new("host=dsnhost service=one dbname=x port=5432");
	CHECK(h != NULL && pghosts_count(h) == 1);
	if (h != NULL) {
		CHECK_STR(pghosts_lookup_name(h, 0), "dsnhost");
		pghosts_free(h);
	}
	unsetenv("PGSERVICE");
	h = pghosts_new("service=one dbname=x");
	CHECK(h != NULL);
	pghosts_free(h);
	CHECK(getenv("PGSERVICE") == NULL);
	unsetenv("PGHOST");
	unsetenv("PGSERVICEFILE");
	unlink(path);
}

/* ---- resolving ---- */

struct outcome {
	int calls;
	bool in_call;	/* set around pghosts_resolve */
	bool sync_call; /* the callback ran inside it */
	char err[256];
	int64_t at_ms;
};

static struct event_base *base;
static struct resolver *resolver;
static bool watchdog_fired;

static void
on_done(void *arg, const char *err)
{
	struct outcome *o = arg;

	o->calls++;
	o->sync_call = o->sync_call || o->in_call;
	o->at_ms = util_now_ms();
	snprintf(o->err, sizeof(o->err), "%s", err ? err : "");
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

static void
run_loop(int64_t limit_ms)
{
	struct event *wd = evtimer_new(base, on_watchdog, NULL);
	struct timeval tv = util_tv(limit_ms);

	watchdog_fired = false;
	event_add(wd, &tv);
	event_base_dispatch(base);
	event_free(wd);
}

/* Resolves dsn's hosts; the callback's outcome in *o. */
static struct pghosts *
resolve_dsn(const char *dsn, struct outcome *o)
{
	struct pghosts *h = pghosts_new_with(dsn, &no_defaults);
	int rc;

	memset(o, 0, sizeof(*o));
	CHECK(h != NULL);
	if (h == NULL)
		return NULL;
	o->in_call = true;
	rc = pghosts_resolve(h, resolver, LOOKUP_MS, on_done, o);
	o->in_call = false;
	CHECK(rc == 0);
	run_loop(WATCHDOG_MS);
	CHECK(!watchdog_fired);
	CHECK(o->calls == 1);
	CHECK(!o->sync_call);
	return h;
}

static void
test_resolved_lists(void)
{
	struct outcome o;
	struct pghosts *h = resolve_dsn(
	    "host=db-a.test,/tmp,db6.test,10.0.0.1 port=1,2,3,4", &o);

	if (h == NULL)
		return;
	CHECK_STR(o.err, "");
	CHECK_STR(pghosts_host(h), "db-a.test,/tmp,db6.test,10.0.0.1");
	CHECK_STR(pghosts_hostaddr(h), "10.9.8.7,,::1,");
	CHECK_STR(pghosts_port(h), "1,2,3,4");
	pghosts_free(h);
}

/* A name the DNS never answers is dropped (with its port) after the
 * lookup timeout; the others are tried, in order. */
static void
test_silent_name_is_skipped(void)
{
	struct outcome o;
	int64_t t0 = util_now_ms();
	struct pghosts *h =
	    resolve_dsn("host=stuck.test,db-a.test,/tmp port=11,22,33", &o);

	if (h == NULL)
		return;
	CHECK_STR(o.err, "");
	CHECK_STR(pghosts_host(h), "db-a.test,/tmp");
	CHECK_STR(pghosts_hostaddr(h), "10.9.8.7,");
	CHECK_STR(pghosts_port(h), "22,33");
	CHECK(o.at_ms - t0 >= LOOKUP_MS - 10);
	CHECK(o.at_ms - t0 < LOOKUP_MS + 1000);
	pghosts_free(h);
}

static void
test_one_port_for_all(void)
{
	struct outcome o;
	struct pghosts *h =
	    resolve_dsn("host=db-a.test,stuck.test,db6.test port=5432", &o);

	if (h == NULL)
		return;
	CHECK_STR(pghosts_host(h), "db-a.test,db6.test");
	CHECK_STR(pghosts_hostaddr(h), "10.9.8.7,::1");
	CHECK(pghosts_port(h) == NULL);
	pghosts_free(h);
}

/* The user's hostaddr entries stay where they were. */
static void
test_given_hostaddr_kept(void)
{
	struct outcome o;
	struct pghosts *h = resolve_dsn(
	    "host=bad_name!,db-a.test,stuck.test hostaddr=,,10.1.1.1", &o);

	if (h == NULL)
		return;
	CHECK_STR(pghosts_host(h), "db-a.test,stuck.test");
	CHECK_STR(pghosts_hostaddr(h), "10.9.8.7,10.1.1.1");
	pghosts_free(h);
}

static void
test_no_name_resolves(void)
{
	struct outcome o;
	struct pghosts *h = resolve_dsn("host=stuck.test,bad_name! port=1,2",
	    &o);

	if (h == NULL)
		return;
	CHECK_STR(o.err,
	    "cannot resolve stuck.test: timeout; "
	    "cannot resolve bad_name!: invalid host name");
	pghosts_free(h);
	/* One name: the same words as a single host always had. */
	h = resolve_dsn("postgres://u@stuck.test/x", &o);
	if (h == NULL)
		return;
	CHECK_STR(o.err, "cannot resolve stuck.test: timeout");
	pghosts_free(h);
}

/* Every attempt resolves afresh: a name that failed may be back. */
static void
test_resolve_again(void)
{
	struct outcome o;
	struct pghosts *h = resolve_dsn("host=db-a.test,db6.test", &o);

	if (h == NULL)
		return;
	CHECK_STR(pghosts_hostaddr(h), "10.9.8.7,::1");
	o.calls = 0;
	CHECK(pghosts_resolve(h, resolver, LOOKUP_MS, on_done, &o) == 0);
	run_loop(WATCHDOG_MS);
	CHECK(o.calls == 1);
	CHECK_STR(pghosts_hostaddr(h), "10.9.8.7,::1");
	pghosts_free(h);
}

static void
test_cancel(void)
{
	struct outcome o;
	struct pghosts *h = pghosts_new_with("host=stuck.test,db-a.test",
	    &no_defaults);

	memset(&o, 0, sizeof(o));
	CHECK(pghosts_resolve(h, resolver, LOOKUP_MS, on_done, &o) == 0);
	pghosts_cancel(h);
	/* Past the lookup timeout: nothing may call back. */
	run_loop(LOOKUP_MS + 200);
	CHECK(watchdog_fired);
	CHECK(o.calls == 0);
	/* Freed while lookups are out: they are cancelled, not called. */
	CHECK(pghosts_resolve(h, resolver, LOOKUP_MS, on_done, &o) == 0);
	pghosts_free(h);
	run_loop(LOOKUP_MS + 200);
	CHECK(o.calls == 0);
}

/* A UDP socket that takes queries and never answers. */
static int
silent_dns(char *addr, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &slen) != 0) {
		perror("silent dns");
		exit(1);
	}
	snprintf(addr, len, "127.0.0.1:%d", ntohs(sin.sin_port));
	return fd;
}

int
main(void)
{
	char hosts[] = "/tmp/test_pghosts_XXXXXX", ns[64];
	const char *servers[1] = { ns };
	int fd, dns;
	FILE *f;

	log_set_level(LOG_ERROR);
	RUN(test_single_hosts);
	RUN(test_host_lists);
	RUN(test_mismatched_lists);
	RUN(test_defaults);
	RUN(test_environment);
	RUN(test_service_file);

	base = event_base_new();
	resolver = resolver_new(base);
	dns = silent_dns(ns, sizeof(ns));
	if ((fd = mkstemp(hosts)) < 0 || (f = fdopen(fd, "w")) == NULL) {
		perror("hosts file");
		return 1;
	}
	fputs("10.9.8.7 db-a.test\n::1 db6.test\n", f);
	fclose(f);
	if (resolver_add_hosts(resolver, hosts) != 0 ||
	    resolver_set_nameservers(resolver, servers, 1) != 0) {
		fprintf(stderr, "resolver setup failed\n");
		return 1;
	}
	unlink(hosts);
	RUN(test_resolved_lists);
	RUN(test_silent_name_is_skipped);
	RUN(test_one_port_for_all);
	RUN(test_given_hostaddr_kept);
	RUN(test_no_name_resolves);
	RUN(test_resolve_again);
	RUN(test_cancel);
	resolver_free(resolver);
	event_base_free(base);
	close(dns);
	return harness_done();
}
