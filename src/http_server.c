/* http_server.c - the evhttp listener, its limits, and requests that wait
 * on the database with a deadline of their own. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/listener.h>

#include "http_server.h"
#include "log.h"
#include "metrics.h"
#include "reply.h"
#include "streak.h"
#include "util.h"

#define HTTP_ACCEPT_PAUSE_MS 100

struct http_ctx {
	LIST_ENTRY(http_ctx) link;  /* on srv->inflight while attached */
	struct http_server *srv;    /* NULL once detached */
	struct evhttp_request *req; /* weak: NULL once answered */
	struct event *deadline;
};

/* The listener's error callback gets evhttp's own argument, not ours,
 * and a completion callback carries no room for a pointer; there is one
 * server per process, so statics find it. */
static struct http_server *http_listening;
static struct http_server *http_serving;

struct http_server {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *ev_resume; /* re-enables accept after EMFILE */
	const struct route *routes;
	size_t nroutes;
	void *arg;
	int64_t request_timeout_ms;
	bool draining;
	size_t ninflight;
	LIST_HEAD(, http_ctx) inflight;
};

/* Microseconds on the monotonic clock, for API request durations. */
static uint64_t
http_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* What the metrics need of a request when its answer is written: its
 * route and its arrival. evhttp keeps no per-request pointer of ours, and
 * a request whose client went away never completes, so anything
 * allocated for it would leak: both travel in the completion callback's
 * argument instead, the route's index (+1, 0 = unrouted) in the low
 * byte, the arrival in microseconds above it (56 bits: 2,000 years of
 * uptime). */
#define HTTP_ROUTE_BITS 8

static void
http_on_complete(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = http_serving;
	uintptr_t packed = (uintptr_t)arg;
	size_t idx = packed & ((1u << HTTP_ROUTE_BITS) - 1);
	uint64_t start = (uint64_t)(packed >> HTTP_ROUTE_BITS);
	const char *route = NULL;

	if (srv != NULL && idx > 0 && idx <= srv->nroutes)
		route = srv->routes[idx - 1].path;
	metrics_http_observe(route, evhttp_request_get_response_code(req),
	    (int64_t)(http_now_us() - start));
}

static void
http_on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = arg;
	struct evbuffer *body = evhttp_request_get_input_buffer(req);
	const struct route *r = router_match(srv->routes, srv->nroutes, req);
	uintptr_t idx = r != NULL ? (uintptr_t)(r - srv->routes) + 1 : 0;

	evhttp_request_set_on_complete_cb(req, http_on_complete,
	    (void *)((uintptr_t)(http_now_us() << HTTP_ROUTE_BITS) | idx));
	if (srv->draining) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		reply_fail(req, SVC_SHUTTING_DOWN, NULL);
		return;
	}
	if (evbuffer_get_length(body) > HTTP_MAX_BODY_SIZE) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Connection", "close");
		reply_error(req, 413, "request body too large");
		return;
	}
	router_call(r, req, srv->arg);
}

static void
http_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *srv = arg;

	UNUSED(fd);
	UNUSED(what);
	if (srv->bound != NULL)
		evconnlistener_enable(
		    evhttp_bound_socket_get_listener(srv->bound));
}

/* Out of descriptors, a level-triggered listener would spin: pause it. */
static void
http_on_accept_error(struct evconnlistener *l, void *arg)
{
	struct http_server *srv = http_listening;
	struct timeval tv = util_tv(HTTP_ACCEPT_PAUSE_MS);
	int err = EVUTIL_SOCKET_ERROR();

	UNUSED(arg);
	if (srv == NULL)
		return;
	log_warn("http", "accept failed, pausing the listener", "{s:s}",
	    "reason", evutil_socket_error_to_string(err));
	evconnlistener_disable(l);
	event_add(srv->ev_resume, &tv);
}

struct http_server *
http_server_new(struct event_base *base, const struct route *routes,
    size_t nroutes, void *arg, int64_t request_timeout_ms)
{
	struct http_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->routes = routes;
	srv->nroutes = nroutes;
	srv->arg = arg;
	/* Route indexes travel in HTTP_ROUTE_BITS (http_on_complete). */
	assert(nroutes < (1u << HTTP_ROUTE_BITS));
	srv->request_timeout_ms = request_timeout_ms;
	LIST_INIT(&srv->inflight);
	srv->ev_resume = evtimer_new(base, http_on_resume, srv);
	srv->http = evhttp_new(base);
	if (srv->http == NULL) {
		log_error("http", "evhttp_new failed", NULL);
		abort();
	}
	evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(srv->http, HTTP_HARD_BODY_SIZE);
	evhttp_set_timeout(srv->http, HTTP_IDLE_TIMEOUT_S);
	/* Let a client still uploading an oversize body read our 413. */
	evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
	/* Every method reaches the router, so a known path answers 405
	 * rather than evhttp's 501. */
	evhttp_set_allowed_methods(srv->http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
		EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
		EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT);
	evhttp_set_default_content_type(srv->http, "application/json");
	evhttp_set_gencb(srv->http, http_on_request, srv);
	http_serving = srv;
	return srv;
}

int
http_server_listen(struct http_server *srv, const char *addr, int port)
{
	srv->bound = evhttp_bind_socket_with_handle(srv->http, addr,
	    (ev_uint16_t)port);
	if (srv->bound == NULL) {
		log_error("http", "cannot listen", "{s:s, s:i, s:s}", "addr",
		    addr, "port", port, "reason", strerror(errno));
		return -1;
	}
	http_listening = srv;
	evconnlistener_set_error_cb(
	    evhttp_bound_socket_get_listener(srv->bound), http_on_accept_error);
	log_info("http", "listening", "{s:s, s:i}", "addr", addr, "port", port);
	return 0;
}

int
http_server_listen_fd(struct http_server *srv, evutil_socket_t fd)
{
	if (evutil_make_socket_nonblocking(fd) != 0)
		return -1;
	srv->bound = evhttp_accept_socket_with_handle(srv->http, fd);
	return srv->bound != NULL ? 0 : -1;
}

void
http_server_stop_accepting(struct http_server *srv)
{
	srv->draining = true;
	http_listening = NULL;
	if (srv->bound != NULL) {
		evhttp_del_accept_socket(srv->http, srv->bound);
		srv->bound = NULL;
	}
	event_del(srv->ev_resume);
}

size_t
http_server_inflight(const struct http_server *srv)
{
	return srv->ninflight;
}

/* Unlinks ctx from the server for good (req answered or forgotten). */
static void
http_ctx_unlink(struct http_ctx *ctx)
{
	ctx->req = NULL;
	if (ctx->srv != NULL) {
		assert(ctx->srv->ninflight > 0);
		LIST_REMOVE(ctx, link);
		ctx->srv->ninflight--;
		ctx->srv = NULL;
	}
	event_del(ctx->deadline);
}

/* Answers req, if any, and unlinks ctx. */
static void
http_ctx_detach(struct http_ctx *ctx, int status, json_t *body)
{
	if (ctx->req != NULL)
		reply_json(ctx->req, status, body);
	else
		json_decref(body);
	http_ctx_unlink(ctx);
}

/* A frozen database makes every waiting request miss its deadline: one
 * warning, counts while it lasts, and a line when requests are answered
 * in time again. */
static struct streak http_late = STREAK_INIT(LOG_WARN, "http",
    "request deadline passed", "request deadlines still passing",
    "requests answered in time again");

static void
http_ctx_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct http_ctx *ctx = arg;

	UNUSED(fd);
	UNUSED(what);
	(void)streak_hit(&http_late, NULL);
	http_ctx_detach(ctx, reply_status(SVC_TIMEOUT),
	    reply_fail_body(SVC_TIMEOUT, NULL));
}

struct http_ctx *
http_ctx_new(struct http_server *srv, struct evhttp_request *req)
{
	struct http_ctx *ctx = xcalloc(1, sizeof(*ctx));
	struct timeval tv = util_tv(srv->request_timeout_ms);

	ctx->srv = srv;
	ctx->req = req;
	ctx->deadline = evtimer_new(srv->base, http_ctx_on_deadline, ctx);
	event_add(ctx->deadline, &tv);
	LIST_INSERT_HEAD(&srv->inflight, ctx, link);
	srv->ninflight++;
	return ctx;
}

void
http_ctx_add_header(struct http_ctx *ctx, const char *name, const char *value)
{
	if (ctx->req != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
		    name, value);
}

void
http_ctx_finish(struct http_ctx *ctx, int status, json_t *body)
{
	if (ctx->req != NULL)
		streak_end(&http_late);
	http_ctx_detach(ctx, status, body);
	event_free(ctx->deadline);
	free(ctx);
}

void
http_ctx_finish_buffer(struct http_ctx *ctx, int status, struct evbuffer *body)
{
	if (ctx->req != NULL) {
		streak_end(&http_late);
		reply_json_buffer(ctx->req, status, body);
	}
	http_ctx_unlink(ctx);
	event_free(ctx->deadline);
	free(ctx);
}

void
http_ctx_fail(struct http_ctx *ctx, enum svc_err err, const char *detail)
{
	if (ctx->req != NULL)
		reply_fail_headers(ctx->req, err);
	http_ctx_finish(ctx, reply_status(err), reply_fail_body(err, detail));
}

/* Contexts stay with the backend op that will free them. */
void
http_server_abort_inflight(struct http_server *srv)
{
	struct http_ctx *ctx;

	while ((ctx = LIST_FIRST(&srv->inflight)) != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
		    "Connection", "close");
		http_ctx_detach(ctx, reply_status(SVC_SHUTTING_DOWN),
		    reply_fail_body(SVC_SHUTTING_DOWN, NULL));
	}
}

void
http_server_free(struct http_server *srv)
{
	if (srv == NULL)
		return;
	/* evhttp_free frees pending requests: answer and forget them first. */
	http_server_abort_inflight(srv);
	http_server_stop_accepting(srv);
	evhttp_free(srv->http);
	http_serving = NULL;
	event_free(srv->ev_resume);
	free(srv);
}
