/* pgarray.c - PostgreSQL array literals for unnest() batches. */
#include <stdlib.h>
#include <string.h>

#include "pgarray.h"
#include "util.h"

static void
pgarray_put(struct pgarray *a, const char *s, size_t n)
{
	if (a->len + n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap : 64;
		char *nb;

		while (a->len + n + 2 > cap)
			cap *= 2;
		nb = xmalloc(cap);
		if (a->len)
			memcpy(nb, a->buf, a->len);
		free(a->buf);
		a->buf = nb;
		a->cap = cap;
	}
	memcpy(a->buf + a->len, s, n);
	a->len += n;
}

void
pgarray_init(struct pgarray *a)
{
	memset(a, 0, sizeof(*a));
	pgarray_put(a, "{", 1);
}

void
pgarray_add(struct pgarray *a, const char *s)
{
	if (a->len > 1)
		pgarray_put(a, ",", 1);
	if (s == NULL) {
		pgarray_put(a, "NULL", 4);
		return;
	}
	/* Always quoted: an unquoted element could be read as NULL or split
	 * on spaces and commas. Runs between the characters to escape are
	 * copied whole. */
	pgarray_put(a, "\"", 1);
	for (;;) {
		size_t n = strcspn(s, "\"\\");

		pgarray_put(a, s, n);
		s += n;
		if (*s == '\0')
			break;
		pgarray_put(a, "\\", 1);
		pgarray_put(a, s++, 1);
	}
	pgarray_put(a, "\"", 1);
}

void
pgarray_add_int(struct pgarray *a, long long v)
{
	char num[24];
	char *p = num + sizeof(num);
	/* Negated in unsigned arithmetic: LLONG_MIN has no positive twin. */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
				       (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	if (a->len > 1)
		pgarray_put(a, ",", 1);
	pgarray_put(a, p, (size_t)(num + sizeof(num) - p));
}

const char *
pgarray_text(struct pgarray *a)
{
	a->buf[a->len] = '}';
	a->buf[a->len + 1] = '\0';
	return a->buf;
}

void
pgarray_fini(struct pgarray *a)
{
	free(a->buf);
	memset(a, 0, sizeof(*a));
}
