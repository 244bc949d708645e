/* docs.c - the Swagger UI files, read once at start-up. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

static char *
docs_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;

	if (f == NULL)
		return NULL;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > DOCS_MAX_FILE) {
		fclose(f);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	*len = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[*len] = '\0';
	return buf;
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
		f->data = docs_read(path, &f->len);
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
		free((char *)d->files[i].data);
	}
	free(d->dir);
	free(d);
}
