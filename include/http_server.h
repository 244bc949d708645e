/* http_server.h - the evhttp listener, its limits, and requests that wait
 * on the database with a deadline of their own. */
#ifndef GOPULSE_HTTP_SERVER_H
#define GOPULSE_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "common.h"
#include "router.h"
#include "service.h"

#define HTTP_MAX_HEADERS_SIZE (16 * 1024)
/* Our limit, answered with a JSON 413. */
#define HTTP_MAX_BODY_SIZE (64 * 1024)
/* evhttp's own limit, past which libevent 2.1 answers 413 itself (in
 * HTML: it has no error hook) before any of our code runs. */
#define HTTP_HARD_BODY_SIZE (1024 * 1024)
#define HTTP_IDLE_TIMEOUT_S 30

struct http_server;
struct http_ctx;

struct http_server *http_server_new(struct event_base *base,
    const struct route *routes, size_t nroutes, void *arg,
    int64_t request_timeout_ms);
int http_server_listen(struct http_server *srv, const char *addr,
    int port) MUSTCHECK;
/* Accepts on a socket already listening (the fuzzer's Unix socket: the
 * whole request path without a port); it is closed with the server. */
int http_server_listen_fd(struct http_server *srv,
    evutil_socket_t fd) MUSTCHECK;
/* Draining: close the listener; keep-alive requests get 503 + close. */
void http_server_stop_accepting(struct http_server *srv);
/* Requests still waiting for an answer. */
size_t http_server_inflight(const struct http_server *srv);
/* 503 (and Connection: close) to every waiting request. */
void http_server_abort_inflight(struct http_server *srv);
/* Aborts what still waits, then frees evhttp and everything. */
void http_server_free(struct http_server *srv);

/* A request that waits on a backend. Its deadline answers 503 and detaches
 * req; the backend's completion then only frees the context. */
struct http_ctx *http_ctx_new(struct http_server *srv,
    struct evhttp_request *req);
/* A header for the answer, if the request is still attached (Location,
 * ...). */
void http_ctx_add_header(struct http_ctx *ctx, const char *name,
    const char *value);
/* Answers (if still attached) and frees ctx. body is stolen. */
void http_ctx_finish(struct http_ctx *ctx, int status, json_t *body);
/* The same with JSON text already written into body (moved out of it;
 * the caller still frees body). */
void http_ctx_finish_buffer(struct http_ctx *ctx, int status,
    struct evbuffer *body);
/* Answers a service error (reply_fail's status and body) and frees ctx. */
void http_ctx_fail(struct http_ctx *ctx, enum svc_err err, const char *detail);

#endif
