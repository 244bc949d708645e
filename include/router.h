/* router.h - a static table of {path, methods, handler}; 404 and 405. */
#ifndef GOPULSE_ROUTER_H
#define GOPULSE_ROUTER_H

#include <stddef.h>

#include <event2/http.h>

typedef void (*route_handler)(struct evhttp_request *req, void *arg);

struct route {
	/* exact and decoded; a template whose "{name}" segments match any
	 * one segment; or a prefix ending in "*". Exact paths win, then
	 * templates, then prefixes, each in table order. */
	const char *path;
	int methods; /* EVHTTP_REQ_* bits; GET implies HEAD */
	route_handler handler;
};

/* Finds the route for req and calls it, or answers 404 / 405 (with Allow)
 * / 204 for OPTIONS on a known path. */
void router_dispatch(const struct route *routes, size_t n,
    struct evhttp_request *req, void *arg);
/* The two halves of router_dispatch, for a caller that wants to know the
 * route (the metrics label it): the route of req's path or NULL, then the
 * call, or the 404 / 405 / 204. */
const struct route *router_match(const struct route *routes, size_t n,
    struct evhttp_request *req);
void router_call(const struct route *r, struct evhttp_request *req, void *arg);
/* "GET, HEAD, OPTIONS" for a method mask; buf of 64 bytes is enough. */
void router_allow(int methods, char *buf, size_t len);
/* The route of a decoded path, or NULL. */
const struct route *router_find(const struct route *routes, size_t n,
    const char *path);

#endif
