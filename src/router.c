/* router.c - a static table of {path, methods, handler}; 404 and 405. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "common.h"
#include "reply.h"
#include "router.h"

static int
router_methods(const struct route *r)
{
	int m = r->methods | EVHTTP_REQ_OPTIONS;

	if (m & EVHTTP_REQ_GET)
		m |= EVHTTP_REQ_HEAD;
	return m;
}

void
router_allow(int methods, char *buf, size_t len)
{
	/* clang-format off */
	static const struct { int bit; const char *name; } names[] = {
		{ EVHTTP_REQ_GET, "GET" }, { EVHTTP_REQ_HEAD, "HEAD" },
		{ EVHTTP_REQ_POST, "POST" }, { EVHTTP_REQ_PUT, "PUT" },
		{ EVHTTP_REQ_PATCH, "PATCH" }, { EVHTTP_REQ_DELETE, "DELETE" },
		{ EVHTTP_REQ_OPTIONS, "OPTIONS" },
	};
	/* clang-format on */
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (!(methods & names[i].bit))
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
		    used ? ", " : "", names[i].name);
		if (used >= len)
			break;
	}
}

/* Does a template ("/messages/{id}/retry") match path? Each "{name}"
 * takes one whole, non-empty segment; the rest must be equal. */
static bool
router_template_match(const char *tpl, const char *path)
{
	while (*tpl != '\0') {
		if (*tpl == '{') {
			const char *close = strchr(tpl, '}');

			if (close == NULL || *path == '/' || *path == '\0')
				return false;
			while (*path != '\0' && *path != '/')
				path++;
			tpl = close + 1;
			continue;
		}
		if (*tpl++ != *path++)
			return false;
	}
	return *path == '\0';
}

/* Exact paths first; then templates; then prefix routes (ending in a
 * star), which match anything below the prefix (but not the prefix
 * itself). */
const struct route *
router_find(const struct route *routes, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(routes[i].path, path) == 0 &&
		    strchr(routes[i].path, '{') == NULL)
			return &routes[i];
	for (size_t i = 0; i < n; i++)
		if (strchr(routes[i].path, '{') != NULL &&
		    router_template_match(routes[i].path, path))
			return &routes[i];
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(routes[i].path);

		if (len > 0 && routes[i].path[len - 1] == '*' &&
		    strncmp(routes[i].path, path, len - 1) == 0 &&
		    path[len - 1] != '\0')
			return &routes[i];
	}
	return NULL;
}

/* The Allow header of r, for OPTIONS and 405 only: formatting it costs
 * more than the whole of a /health answer's own work. */
static void
router_add_allow(struct evhttp_request *req, const struct route *r)
{
	char allow[80];

	router_allow(router_methods(r), allow, sizeof(allow));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    allow);
}

const struct route *
router_match(const struct route *routes, size_t n, struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	const struct route *r;

	if (raw == NULL || *raw == '\0')
		raw = "/";
	/* Without a '%' the decoded path is the path itself ('+' stays a
	 * '+' in a path): no copy to make and free. */
	if (strchr(raw, '%') == NULL) {
		r = router_find(routes, n, raw);
	} else {
		char *path = evhttp_uridecode(raw, 0, NULL);

		r = path ? router_find(routes, n, path) : NULL;
		free(path);
	}
	return r;
}

void
router_call(const struct route *r, struct evhttp_request *req, void *arg)
{
	int cmd = (int)evhttp_request_get_command(req);

	if (r == NULL) {
		reply_error(req, 404, "not found");
		return;
	}
	if (cmd == EVHTTP_REQ_OPTIONS) {
		router_add_allow(req, r);
		evhttp_send_reply(req, 204, "No Content", NULL);
		return;
	}
	if (!(router_methods(r) & cmd)) {
		router_add_allow(req, r);
		reply_error(req, 405, "method not allowed");
		return;
	}
	r->handler(req, arg);
}

void
router_dispatch(const struct route *routes, size_t n,
    struct evhttp_request *req, void *arg)
{
	router_call(router_match(routes, n, req), req, arg);
}
