/* fuzz_router.c - the route table lookup, on the path as the router
 * decodes it (exact, template and prefix routes), and the Allow header for
 * any method mask. */
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "fuzz.h"
#include "router.h"

/* Does path fit template tpl, segment by segment? Written apart from the
 * router's own matcher, so the two check each other: a "{name}" segment
 * takes any non-empty segment, every other one must be equal. */
static int
fuzz_fits_template(const char *tpl, const char *path)
{
	while (*tpl == '/' && *path == '/') {
		size_t tn = strcspn(++tpl, "/"), pn = strcspn(++path, "/");

		if (tpl[0] == '{' ? pn == 0 || tpl[tn - 1] != '}' :
				    tn != pn || strncmp(tpl, path, tn) != 0)
			return 0;
		tpl += tn;
		path += pn;
	}
	return *tpl == '\0' && *path == '\0';
}

static void
fuzz_check_route(const struct route *r, const char *path)
{
	size_t n;

	if (r == NULL)
		return;
	n = strlen(r->path);
	if (n > 0 && r->path[n - 1] == '*')
		FUZZ_CHECK(strncmp(path, r->path, n - 1) == 0);
	else if (strchr(r->path, '{') != NULL)
		FUZZ_CHECK(fuzz_fits_template(r->path, path));
	else
		FUZZ_CHECK(strcmp(path, r->path) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *raw = fuzz_cstr(data, size);
	char allow[64];
	char *path;
	unsigned mask = 0;

	fuzz_check_route(router_find(api_routes, api_routes_count, raw), raw);
	/* As router_dispatch does for a path with a '%'. */
	path = evhttp_uridecode(raw, 0, NULL);
	if (path != NULL) {
		fuzz_check_route(router_find(api_routes, api_routes_count,
				     path),
		    path);
		free(path);
	}
	for (size_t i = 0; i < size && i < sizeof(int); i++)
		mask = mask << 8 | data[i];
	router_allow((int)mask, allow, sizeof(allow));
	FUZZ_CHECK(memchr(allow, '\0', sizeof(allow)) != NULL);
	free(raw);
	return 0;
}
