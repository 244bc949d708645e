/* query.c - validation of query strings. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "query.h"

/* Digits only: strtol alone would take "+5", " 5" and "5abc"'s prefix. */
static int
query_uint(const char *s, long max, long *out)
{
	char *end;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtol(s, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max ? 0 : -1;
}

/* The pairs of query string q (NULL or empty: none) into kv, which the
 * caller clears whatever this returns. */
static int
query_kv(const char *q, struct evkeyvalq *kv, char *err, size_t errlen)
{
	TAILQ_INIT(kv);
	if (q == NULL || *q == '\0' || evhttp_parse_query_str(q, kv) == 0)
		return 0;
	snprintf(err, errlen, "malformed query string");
	return -1;
}

/* The one value of name, NULL when absent; -1 when given twice. */
static int
query_one(struct evkeyvalq *kv, const char *name, const char **val, char *err,
    size_t errlen)
{
	struct evkeyval *h;

	*val = NULL;
	TAILQ_FOREACH(h, kv, next) {
		if (strcmp(h->key, name) != 0)
			continue;
		if (*val != NULL) {
			snprintf(err, errlen, "%s is given more than once",
			    name);
			return -1;
		}
		*val = h->value;
	}
	return 0;
}

static int
query_int_param(struct evkeyvalq *kv, const char *name, long min, long max,
    int *out, char *err, size_t errlen)
{
	const char *val;
	long v;

	if (query_one(kv, name, &val, err, errlen) != 0)
		return -1;
	if (val == NULL)
		return 0;
	if (query_uint(val, max, &v) != 0 || v < min) {
		snprintf(err, errlen,
		    "%s must be a whole number from %ld to %ld", name, min,
		    max);
		return -1;
	}
	*out = (int)v;
	return 0;
}

static int
query_limit_offset(struct evkeyvalq *kv, int *limit, int *offset, char *err,
    size_t errlen)
{
	*limit = QUERY_LIMIT_DEFAULT;
	*offset = 0;
	if (query_int_param(kv, "limit", 1, QUERY_LIMIT_MAX, limit, err,
		errlen) != 0)
		return -1;
	return query_int_param(kv, "offset", 0, INT_MAX, offset, err, errlen);
}

int
query_parse_list(const char *q, int *limit, int *offset, char *err,
    size_t errlen)
{
	struct evkeyvalq kv;
	int rc = query_kv(q, &kv, err, errlen);

	if (rc == 0)
		rc = query_limit_offset(&kv, limit, offset, err, errlen);
	evhttp_clear_headers(&kv);
	return rc;
}

static int
query_filter(const char *s, enum message_filter *f)
{
	/* clang-format off */
	static const struct { const char *name; enum message_filter f; }
	    names[] = {
		{ "sent", MESSAGE_SENT }, { "pending", MESSAGE_PENDING },
		{ "failed", MESSAGE_FAILED }, { "all", MESSAGE_ALL },
	};
	/* clang-format on */

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*f = names[i].f;
			return 0;
		}
	}
	return -1;
}

int
query_parse_listing(const char *q, struct query_list *out, char *err,
    size_t errlen)
{
	struct evkeyvalq kv;
	const char *status, *after;
	int rc = -1;

	out->filter = MESSAGE_SENT;
	out->after[0] = '\0';
	if (query_kv(q, &kv, err, errlen) != 0 ||
	    query_limit_offset(&kv, &out->limit, &out->offset, err, errlen) !=
		0 ||
	    query_one(&kv, "status", &status, err, errlen) != 0 ||
	    query_one(&kv, "after", &after, err, errlen) != 0)
		goto out;
	if (status != NULL && query_filter(status, &out->filter) != 0) {
		snprintf(err, errlen,
		    "status must be one of pending, sent, failed, all");
		goto out;
	}
	if (after != NULL) {
		if (*after == '\0' || strlen(after) > QUERY_CURSOR_MAX) {
			snprintf(err, errlen,
			    "after must be the next cursor of a previous page");
			goto out;
		}
		strcpy(out->after, after);
	}
	rc = 0;
out:
	evhttp_clear_headers(&kv);
	return rc;
}

/* n digits at s, into *v. */
static int
query_digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* RFC 3339 date-time, checked by hand: PostgreSQL would also take
 * "yesterday", "epoch" and many other forms. */
static int
query_rfc3339(const char *s)
{
	int y, mo, d, h, mi, sec, oh, om;
	const char *p = s + 19;

	if (strlen(s) < 20 || query_digits(s, 4, &y) != 0 || s[4] != '-' ||
	    query_digits(s + 5, 2, &mo) != 0 || s[7] != '-' ||
	    query_digits(s + 8, 2, &d) != 0 || (s[10] != 'T' && s[10] != 't') ||
	    query_digits(s + 11, 2, &h) != 0 || s[13] != ':' ||
	    query_digits(s + 14, 2, &mi) != 0 || s[16] != ':' ||
	    query_digits(s + 17, 2, &sec) != 0)
		return -1;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return -1;
		for (p++; isdigit((unsigned char)*p); p++)
			;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 0;
	if ((*p == '+' || *p == '-') && query_digits(p + 1, 2, &oh) == 0 &&
	    p[3] == ':' && query_digits(p + 4, 2, &om) == 0 && p[6] == '\0' &&
	    oh <= 23 && om <= 59)
		return 0;
	return -1;
}

int
query_parse_since(const char *q, char *since, char *err, size_t errlen)
{
	struct evkeyvalq kv;
	const char *val;
	int rc = -1;

	since[0] = '\0';
	if (query_kv(q, &kv, err, errlen) != 0 ||
	    query_one(&kv, "since", &val, err, errlen) != 0)
		goto out;
	if (val != NULL) {
		if (strlen(val) >= 40 || query_rfc3339(val) != 0) {
			snprintf(err, errlen,
			    "since must be an RFC 3339 date-time, e.g. "
			    "2026-11-29T10:00:00Z");
			goto out;
		}
		strcpy(since, val);
	}
	rc = 0;
out:
	evhttp_clear_headers(&kv);
	return rc;
}

int
query_parse_id(const char *s, int64_t *id)
{
	int64_t v = 0;
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		int d = s[n] - '0';

		if (!isdigit((unsigned char)s[n]) || v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (n == 0)
		return -1;
	*id = v;
	return 0;
}
