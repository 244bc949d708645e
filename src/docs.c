/* docs.c - the Swagger UI files, mapped read-only at start-up.
 *
 * The files are about 2 MiB, most of it swagger-ui-bundle.js, and most
 * instances never serve them. Mapped from their files instead of copied
 * onto the heap, they cost no private memory at all and count in RSS only
 * once served (and then as clean, shared page-cache pages the kernel can
 * drop). Start-up asks the kernel to read them ahead (MADV_WILLNEED, no
 * waiting), so serving them later takes no disk read on the loop unless
 * memory pressure evicted them meanwhile. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docs.h"
#include "log.h"
#include "util.h"

/* The UI is ~1.5 MiB; anything far beyond that is not ours to serve. */
#define DOCS_MAX_FILE (8 * 1024 * 1024)
#define DOCS_MAX_FILES 64

struct docs {
	char *dir;
	struct docs_file files[DOCS_MAX_FILES];
	size_t nfiles;
};

static const char *
docs_content_type(const char *name)
{
	/* clang-format off */
	static const struct { const char *ext, *type; } types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".json", "application/json" },
		{ ".map", "application/json" },
		{ ".png", "image/png" },
		{ ".svg", "image/svg+xml" },
	};
	/* clang-format on */
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot != NULL && i < ARRAY_LEN(types); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

/* Maps path read-only; *len is its size. NULL when it is not a regular
 * file we can read, or too large. A truncation of a mapped file would
 * make serving it fault (SIGBUS): installs replace the files (a new inode,
 * see `make swagger-ui`), they never rewrite them in place. */
static const char *
docs_map(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	void *p;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > DOCS_MAX_FILE) {
		close(fd);
		return NULL;
	}
	*len = (size_t)st.st_size;
	if (*len == 0) {
		close(fd);
		return ""; /* mmap refuses a length of 0 */
	}
	p = mmap(NULL, *len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd); /* the mapping keeps the file */
	if (p == MAP_FAILED)
		return NULL;
	/* Into the page cache now, not into our page tables. */
	(void)madvise(p, *len, MADV_WILLNEED);
	return p;
}

static void
docs_unmap(const struct docs_file *f)
{
	if (f->len > 0)
		munmap((void *)f->data, f->len);
}

struct docs *
docs_new(const char *dir)
{
	struct docs *d = xcalloc(1, sizeof(*d));
	DIR *dp = opendir(dir);
	struct dirent *de;

	d->dir = xstrdup(dir);
	if (dp == NULL) {
		log_warn("docs", "Swagger UI unavailable: no assets",
		    "{s:s, s:s}", "dir", dir, "reason", strerror(errno));
		return d;
	}
	while ((de = readdir(dp)) != NULL && d->nfiles < DOCS_MAX_FILES) {
		const char *type = docs_content_type(de->d_name);
		struct docs_file *f = &d->files[d->nfiles];
		char *path;

		if (de->d_name[0] == '.' || type == NULL)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		f->data = docs_map(path, &f->len);
		free(path);
		if (f->data == NULL)
			continue;
		f->name = xstrdup(de->d_name);
		f->content_type = type;
		d->nfiles++;
	}
	closedir(dp);
	if (docs_ui_ready(d))
		log_info("docs", "Swagger UI ready", "{s:s, s:I}", "dir", dir,
		    "files", (json_int_t)d->nfiles);
	else
		log_warn("docs",
		    "Swagger UI unavailable: assets missing "
		    "(run make swagger-ui)",
		    "{s:s}", "dir", dir);
	return d;
}

const struct docs_file *
docs_find(const struct docs *d, const char *name)
{
	for (size_t i = 0; i < d->nfiles; i++)
		if (strcmp(d->files[i].name, name) == 0)
			return &d->files[i];
	return NULL;
}

int
docs_ui_ready(const struct docs *d)
{
	return docs_find(d, "index.html") != NULL &&
	    docs_find(d, "swagger-ui-bundle.js") != NULL;
}

const char *
docs_dir(const struct docs *d)
{
	return d->dir;
}

void
docs_free(struct docs *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nfiles; i++) {
		free((char *)d->files[i].name);
		docs_unmap(&d->files[i]);
	}
	free(d->dir);
	free(d);
}
