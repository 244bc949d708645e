/* pgarray.h - PostgreSQL array literals, so one statement can carry many
 * rows through unnest() instead of one round trip per row. */
#ifndef GOPULSE_PGARRAY_H
#define GOPULSE_PGARRAY_H

#include <stddef.h>

struct pgarray {
	char *buf;
	size_t len;
	size_t cap;
};

void pgarray_init(struct pgarray *a);
/* NULL adds an SQL NULL; anything else is quoted and escaped. */
void pgarray_add(struct pgarray *a, const char *s);
/* A number needs no quotes: written as it is, without snprintf. */
void pgarray_add_int(struct pgarray *a, long long v);
/* "{...}", NUL-terminated; owned by a until pgarray_fini. */
const char *pgarray_text(struct pgarray *a);
void pgarray_fini(struct pgarray *a);

#endif
