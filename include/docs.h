/* docs.h - the Swagger UI files, mapped read-only at start-up and read
 * ahead into the page cache (no disk I/O on the loop); pages enter the
 * process's memory only when served. */
#ifndef GOPULSE_DOCS_H
#define GOPULSE_DOCS_H

#include <stddef.h>

struct docs;

struct docs_file {
	const char *name;
	const char *content_type;
	const char *data; /* mapped read-only from the file: not NUL-ended */
	size_t len;
};

/* Loads the regular files of dir (not recursive); a missing or incomplete
 * dir is logged and leaves the UI unavailable, never a start-up error. */
struct docs *docs_new(const char *dir);
void docs_free(struct docs *d);
/* NULL when not there; name has no '/'. */
const struct docs_file *docs_find(const struct docs *d, const char *name);
/* True when index.html and the bundle it needs are both there. */
int docs_ui_ready(const struct docs *d);
const char *docs_dir(const struct docs *d);

#endif
