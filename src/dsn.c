/* dsn.c - a libpq connection string, checked at start and masked for logs.
 *
 * PQconninfoParse knows keywords and syntax only. libpq checks values in
 * connectOptions2 and PQconnectPoll, that is on every connection attempt,
 * so a typo such as sslmode=requre would end up in the reconnect loop
 * forever instead of stopping start-up. The rules below are libpq 15's
 * (fe-connect.c); test_config.c holds them against the installed libpq. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#include "dsn.h"
#include "util.h"

/* Options that take one of a fixed list of values (case matters). */
static const struct {
	const char *keyword;
	const char *values[7];
} dsn_enums[] = {
	{ "sslmode",
	    { "disable", "allow", "prefer", "require", "verify-ca",
		"verify-full" } },
	{ "gssencmode", { "disable", "prefer", "require" } },
	{ "channel_binding", { "disable", "prefer", "require" } },
	{ "target_session_attrs",
	    { "any", "read-write", "read-only", "primary", "standby",
		"prefer-standby" } },
};

/* Options libpq reads with parse_int_param. pg.c passes its own keepalive
 * and tcp_user_timeout values after the DSN's, and the kernel, not libpq,
 * bounds those: only their form is checked here. */
static const char *const dsn_ints[] = {
	"connect_timeout",
	"keepalives",
	"keepalives_idle",
	"keepalives_interval",
	"keepalives_count",
	"tcp_user_timeout",
};

/* In order: a range is valid when min is not above max. */
static const char *const dsn_tls[] = {
	"TLSv1",
	"TLSv1.1",
	"TLSv1.2",
	"TLSv1.3",
};

struct dsn_opts {
	PQconninfoOption *given; /* from the DSN */
	PQconninfoOption *dflt;	 /* service, PG* variables, libpq's */
};

static const char *
dsn_find(const PQconninfoOption *opts, const char *keyword)
{
	for (const PQconninfoOption *o = opts; o != NULL && o->keyword != NULL;
	     o++)
		if (strcmp(o->keyword, keyword) == 0)
			return o->val;
	return NULL;
}

/* What libpq will use for keyword; *from says when it is not the DSN's. */
static const char *
dsn_get(const struct dsn_opts *o, const char *keyword, const char **from)
{
	const char *v = dsn_find(o->given, keyword);

	*from = v != NULL ? "" : "not in the DSN";
	return v != NULL ? v : dsn_find(o->dflt, keyword);
}

/* PQconndefaults knows only PGSERVICE, so the DSN's service is put there
 * for the call; at start-up no other thread reads the environment. */
PQconninfoOption *
dsn_defaults(const char *service)
{
	PQconninfoOption *defs;
	const char *old;
	char *saved = NULL;

	if (service == NULL)
		return PQconndefaults();
	if ((old = getenv("PGSERVICE")) != NULL)
		saved = xstrdup(old);
	setenv("PGSERVICE", service, 1);
	defs = PQconndefaults();
	if (saved != NULL)
		setenv("PGSERVICE", saved, 1);
	else
		unsetenv("PGSERVICE");
	free(saved);
	return defs;
}

static int
dsn_bad(char *why, size_t whylen, const char *keyword, const char *value,
    const char *from, const char *what)
{
	snprintf(why, whylen, "%s \"%s\"%s%s%s %s", keyword, value,
	    *from ? " (" : "", from, *from ? ")" : "", what);
	return -1;
}

/* libpq's parse_int_param: strtol, an int, nothing but spaces after. */
static bool
dsn_int_ok(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (end == s || errno != 0 || v < INT_MIN || v > INT_MAX)
		return false;
	while (isspace((unsigned char)*end))
		end++;
	*out = v;
	return *end == '\0';
}

static size_t
dsn_count(const char *list)
{
	size_t n = 1;

	for (; *list != '\0'; list++)
		n += *list == ',';
	return n;
}

static int
dsn_tls_rank(const char *v)
{
	for (size_t i = 0; i < ARRAY_LEN(dsn_tls); i++)
		if (strcasecmp(v, dsn_tls[i]) == 0)
			return (int)i;
	return -1;
}

static int
dsn_check_values(const struct dsn_opts *o, char *why, size_t whylen)
{
	const char *v, *from, *min, *min_from, *max, *max_from;
	char what[128];
	long n;

	for (size_t i = 0; i < ARRAY_LEN(dsn_enums); i++) {
		const char *const *allowed = dsn_enums[i].values;
		size_t k;

		if ((v = dsn_get(o, dsn_enums[i].keyword, &from)) == NULL)
			continue;
		for (k = 0; allowed[k] != NULL; k++)
			if (strcmp(v, allowed[k]) == 0)
				break;
		if (allowed[k] != NULL)
			continue;
		strcpy(what, "is not one of (");
		for (k = 0; allowed[k] != NULL; k++)
			snprintf(what + strlen(what),
			    sizeof(what) - strlen(what), "%s%s", allowed[k],
			    allowed[k + 1] ? ", " : ")");
		return dsn_bad(why, whylen, dsn_enums[i].keyword, v, from,
		    what);
	}
	for (size_t i = 0; i < ARRAY_LEN(dsn_ints); i++)
		if ((v = dsn_get(o, dsn_ints[i], &from)) != NULL &&
		    !dsn_int_ok(v, &n))
			return dsn_bad(why, whylen, dsn_ints[i], v, from,
			    "is not a whole number");
	min = dsn_get(o, "ssl_min_protocol_version", &min_from);
	max = dsn_get(o, "ssl_max_protocol_version", &max_from);
	if (min != NULL && *min != '\0' && dsn_tls_rank(min) < 0)
		return dsn_bad(why, whylen, "ssl_min_protocol_version", min,
		    min_from,
		    "is not one of (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)");
	if (max != NULL && *max != '\0' && dsn_tls_rank(max) < 0)
		return dsn_bad(why, whylen, "ssl_max_protocol_version", max,
		    max_from,
		    "is not one of (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)");
	if (min != NULL && *min != '\0' && max != NULL && *max != '\0' &&
	    dsn_tls_rank(min) > dsn_tls_rank(max)) {
		snprintf(what, sizeof(what),
		    "is above ssl_max_protocol_version \"%s\"", max);
		return dsn_bad(why, whylen, "ssl_min_protocol_version", min,
		    min_from, what);
	}
	return 0;
}

/* Hosts, their addresses and ports: one list each, equally long. */
static int
dsn_check_hosts(const struct dsn_opts *o, char *why, size_t whylen)
{
	const char *host, *host_from, *addr, *addr_from, *port, *port_from;
	size_t nhosts = 1;
	char *list, *tok, *end;

	host = dsn_get(o, "host", &host_from);
	addr = dsn_get(o, "hostaddr", &addr_from);
	port = dsn_get(o, "port", &port_from);
	if (addr != NULL && *addr != '\0') {
		nhosts = dsn_count(addr);
		if (host != NULL && *host != '\0' &&
		    dsn_count(host) != nhosts) {
			snprintf(why, whylen,
			    "host lists %zu names for %zu "
			    "hostaddr values",
			    dsn_count(host), nhosts);
			return -1;
		}
		list = xstrdup(addr);
		for (tok = list; tok != NULL; tok = end) {
			struct addrinfo hints, *ai = NULL;

			if ((end = strchr(tok, ',')) != NULL)
				*end++ = '\0';
			if (*tok == '\0')
				continue;
			memset(&hints, 0, sizeof(hints));
			hints.ai_flags = AI_NUMERICHOST;
			hints.ai_socktype = SOCK_STREAM;
			if (getaddrinfo(tok, NULL, &hints, &ai) != 0) {
				dsn_bad(why, whylen, "hostaddr", tok, addr_from,
				    "is not a numeric IP address");
				free(list);
				return -1;
			}
			freeaddrinfo(ai);
		}
		free(list);
	} else if (host != NULL && *host != '\0') {
		nhosts = dsn_count(host);
	}
	if (port == NULL || *port == '\0')
		return 0;
	if (dsn_count(port) != 1 && dsn_count(port) != nhosts) {
		snprintf(why, whylen, "port lists %zu numbers for %zu hosts",
		    dsn_count(port), nhosts);
		return -1;
	}
	list = xstrdup(port);
	for (tok = list; tok != NULL; tok = end) {
		long n;

		if ((end = strchr(tok, ',')) != NULL)
			*end++ = '\0';
		if (*tok != '\0' &&
		    (!dsn_int_ok(tok, &n) || n < 1 || n > 65535)) {
			dsn_bad(why, whylen, "port", tok, port_from,
			    "is not a number from 1 to 65535");
			free(list);
			return -1;
		}
	}
	free(list);
	return 0;
}

/* ---------------------------------------------------------------- secrets */

struct dsn_span {
	const char *p;
	size_t n;
};

/* Where a password may sit in a DSN libpq could not parse: a URI's user
 * info after ':' (libpq ends it at the first '@' or '/'), and what follows
 * "password=" or "sslpassword=", with any words after it that hold no '='
 * (an unquoted password with a space reads as stray words). */
static size_t
dsn_secret_spans(const char *dsn, struct dsn_span *spans, size_t max)
{
	const char *p, *colon;
	size_t n = 0;

	if ((p = strstr(dsn, "://")) != NULL) {
		const char *at = p + 3 + strcspn(p + 3, "@/");

		colon = memchr(p + 3, ':', (size_t)(at - p - 3));
		if (*at == '@' && colon != NULL && n < max)
			spans[n++] = (struct dsn_span) { colon + 1,
				(size_t)(at - colon - 1) };
	}
	for (p = dsn; (p = strstr(p, "password")) != NULL && n < max;) {
		const char *v = p + strlen("password"), *e;

		p = v;
		v += strspn(v, " \t");
		if (*v != '=')
			continue;
		v += 1 + strspn(v + 1, " \t");
		if (*v == '\'') {
			for (e = v + 1; *e != '\0' && *e != '\''; e++)
				if (*e == '\\' && e[1] != '\0')
					e++;
		} else {
			e = v + strcspn(v, " \t\r\n&");
		}
		/* Stray words up to the next keyword=value. */
		for (;;) {
			const char *w = e + strspn(e, " \t\r\n");
			size_t wl = strcspn(w, " \t\r\n");

			if (wl == 0 || memchr(w, '=', wl) != NULL)
				break;
			e = w + wl;
		}
		spans[n++] = (struct dsn_span) { v, (size_t)(e - v) };
	}
	return n;
}

static bool
dsn_overlaps(const char *q, size_t qn, const struct dsn_span *spans,
    size_t nspans)
{
	bool word = false;

	for (size_t i = 0; i < qn; i++)
		word |= isalnum((unsigned char)q[i]) != 0;
	for (size_t i = 0; i < nspans; i++) {
		if (spans[i].n == 0)
			continue;
		if (memmem(q, qn, spans[i].p, spans[i].n) != NULL ||
		    (word && memmem(spans[i].p, spans[i].n, q, qn) != NULL))
			return true;
	}
	return false;
}

/* libpq's parse errors quote pieces of the DSN ("invalid percent-encoded
 * token", even the whole URI): mask each that is or holds a password. */
static void
dsn_redact(const char *msg, const char *dsn, char *out, size_t outlen)
{
	struct dsn_span spans[8];
	size_t nspans = dsn_secret_spans(dsn, spans, ARRAY_LEN(spans));
	size_t used = 0;
	const char *p = msg, *close;

	while (*p != '\0' && *p != '\n' && used + 1 < outlen) {
		int len;

		if (*p == '"' && (close = strchr(p + 1, '"')) != NULL &&
		    dsn_overlaps(p + 1, (size_t)(close - p - 1), spans,
			nspans)) {
			len = snprintf(out + used, outlen - used, "\"*****\"");
			p = close + 1;
		} else if (*p == '"' && close != NULL) {
			len = snprintf(out + used, outlen - used, "%.*s",
			    (int)(close - p + 1), p);
			p = close + 1;
		} else {
			out[used] = *p++;
			len = 1;
		}
		used += (size_t)len < outlen - used ? (size_t)len :
						      outlen - used - 1;
	}
	out[used] = '\0';
}

/* ---------------------------------------------------------------- public */

int
dsn_check(const char *dsn, char *why, size_t whylen)
{
	struct dsn_opts o;
	char *perr = NULL;
	int rc;

	o.given = PQconninfoParse(dsn, &perr);
	if (o.given == NULL) {
		dsn_redact(perr != NULL ? perr : "out of memory", dsn, why,
		    whylen);
		PQfreemem(perr);
		return -1;
	}
	o.dflt = dsn_defaults(dsn_find(o.given, "service"));
	rc = dsn_check_values(&o, why, whylen) == 0 &&
		dsn_check_hosts(&o, why, whylen) == 0 ?
	    0 :
	    -1;
	PQconninfoFree(o.dflt);
	PQconninfoFree(o.given);
	return rc;
}

char *
dsn_mask(const char *dsn)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
	char *out, *next;

	/* Unparseable: show only what cannot be a secret. */
	if (opts == NULL)
		return xstrdup("(unparseable, not shown)");
	out = xstrdup("");
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || *o->val == '\0')
			continue;
		/* libpq's own mark for a value to hide ("*"). */
		next = xasprintf("%s%s%s=%s", out, *out ? " " : "", o->keyword,
		    o->dispchar[0] == '*' ? "*****" : o->val);
		free(out);
		out = next;
	}
	PQconninfoFree(opts);
	return out;
}
