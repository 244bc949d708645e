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

static int
query_int_param(struct evkeyvalq *kv, const char *name, long min, long max,
    int *out, char *err, size_t errlen)
{
	struct evkeyval *h;
	const char *val = NULL;
	long v;

	TAILQ_FOREACH(h, kv, next) {
		if (strcmp(h->key, name) != 0)
			continue;
		if (val != NULL) {
			snprintf(err, errlen, "%s is given more than once",
			    name);
			return -1;
		}
		val = h->value;
	}
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

int
query_parse_list(const char *q, int *limit, int *offset, char *err,
    size_t errlen)
{
	struct evkeyvalq kv;
	int rc;

	*limit = QUERY_LIMIT_DEFAULT;
	*offset = 0;
	if (q == NULL || *q == '\0')
		return 0;
	TAILQ_INIT(&kv);
	if (evhttp_parse_query_str(q, &kv) != 0) {
		evhttp_clear_headers(&kv);
		snprintf(err, errlen, "malformed query string");
		return -1;
	}
	rc = query_int_param(&kv, "limit", 1, QUERY_LIMIT_MAX, limit, err,
	    errlen);
	if (rc == 0)
		rc = query_int_param(&kv, "offset", 0, INT_MAX, offset, err,
		    errlen);
	evhttp_clear_headers(&kv);
	return rc;
}
