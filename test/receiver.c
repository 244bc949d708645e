/*
 * webhook-receiver: a local stand-in for the real webhook endpoint.  `make run`
 * uses it so deliveries are visible; the integration tests use it to script how
 * the far end misbehaves (errors, slowness, hangs, garbage) and to inspect what
 * arrived.  Self-contained on purpose: it must not share bugs with the service.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/ssl.h>

#ifndef RECV_MAX_LOG
#define RECV_MAX_LOG 100000 /* settable so a test build can reach the cap */
#endif
#define RECV_MAX_BODY (1024 * 1024)
#define RECV_MAX_HEADERS (16 * 1024)
#define RECV_TIMEOUT_S 30
/* Mode huge: a 200 whose body is this many zero blocks (256 MiB), all
 * references to one static block, so it costs us no memory. */
#define RECV_HUGE_BLOCK (64 * 1024)
#define RECV_HUGE_BLOCKS 4096

enum recv_mode {
	RECV_ACCEPT,
	RECV_STATUS,
	RECV_SLOW,
	RECV_HANG,
	RECV_GARBAGE,
	RECV_NOJSON,
	RECV_FAIL_THEN_ACCEPT,
	RECV_HUGE,
	RECV_RESET,
	RECV_MODE_COUNT
};

/* clang-format off */
static const char *const recv_mode_names[RECV_MODE_COUNT] = {
	"accept", "status", "slow", "hang", "garbage", "nojson", "fail_then_accept",
	"huge", "reset",
};
/* clang-format on */

struct recv_settings {
	enum recv_mode mode;
	int status;
	int delay_ms;
	int retry_after; /* 0: no Retry-After header */
	int fail_count;
};

/* The integer settings, shared by the command line and PUT /_control. */
static const struct recv_field {
	const char *name;
	size_t off;
	int lo, hi;
} recv_fields[] = {
	{ "status", offsetof(struct recv_settings, status), 200, 599 },
	{ "delay_ms", offsetof(struct recv_settings, delay_ms), 0, 3600000 },
	{ "retry_after", offsetof(struct recv_settings, retry_after), 0,
	    86400 },
	{ "fail_count", offsetof(struct recv_settings, fail_count), 0,
	    INT_MAX },
};

/* A slow answer waiting on its timer; listed so that exit can free it. */
struct recv_slow {
	struct recv_app *app;
	struct evhttp_request *req;
	struct event *timer;
	json_t *entry; /* own reference: the log may drop it meanwhile */
	struct recv_slow *prev, *next;
};

struct recv_app {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp *https; /* --tls-port: the same answers over TLS */
	SSL_CTX *tls;
	struct event *sigint, *sigterm;
	struct recv_settings set;
	int failed; /* forced failures already sent in fail_then_accept */
	const char *path;
	int quiet;
	json_t *log;
	json_int_t seq; /* never reset, so a seq names one request for good */
	struct recv_slow *slow;
};

static int
recv_mode_parse(const char *s)
{
	for (int i = 0; i < RECV_MODE_COUNT; i++)
		if (strcmp(s, recv_mode_names[i]) == 0)
			return i;
	return -1;
}

static void
recv_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* Takes line; a constructor that failed upstream just costs the line. */
static void
recv_emit(json_t *line)
{
	if (line != NULL && json_dumpf(line, stdout, JSON_COMPACT) == 0)
		fputc('\n', stdout);
	json_decref(line);
}

static int
recv_dump_cb(const char *buf, size_t len, void *arg)
{
	return evbuffer_add(arg, buf, len);
}

/* Takes body; NULL means a constructor failed, which becomes a plain 500. */
static void
recv_send(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);

	if (body == NULL ||
	    json_dump_callback(body, recv_dump_cb, out, JSON_COMPACT) != 0) {
		evbuffer_drain(out, evbuffer_get_length(out));
		evbuffer_add_printf(out, "{\"error\":\"out of memory\"}");
		code = 500;
	}
	json_decref(body);
	/* evhttp 2.1 would append a body to a HEAD answer and break keep-alive framing. */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD)
		evbuffer_drain(out, evbuffer_get_length(out));
	evhttp_send_reply(req, code, NULL, NULL);
}

static void
recv_error(struct evhttp_request *req, int code, const char *msg,
    const char *allow)
{
	if (allow != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", allow);
	recv_send(req, code, json_pack("{s:s}", "error", msg));
}

/* Borrows the whole input buffer as one flat string (not NUL-terminated). */
static const char *
recv_body(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *p = (const char *)evbuffer_pullup(in, -1);

	*len = p != NULL ? evbuffer_get_length(in) : 0;
	return p != NULL ? p : "";
}

static json_t *
recv_headers_json(struct evhttp_request *req)
{
	json_t *h = json_object();

	for (struct evkeyval *kv =
		 evhttp_request_get_input_headers(req)->tqh_first;
	     h != NULL && kv != NULL; kv = kv->next.tqe_next) {
		char *name = strdup(kv->key);
		json_t *val = json_stringn(kv->value, strlen(kv->value));
		if (name == NULL) {
			json_decref(val);
			json_decref(h);
			return NULL;
		}
		for (char *p = name; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		/*
		 * A repeated header shows its last value.  A non-UTF-8 value shows as
		 * null; a non-UTF-8 name cannot be a JSON key, so it is left out.
		 */
		json_object_set_new(h, name, val != NULL ? val : json_null());
		free(name);
	}
	return h;
}

/* Appends the request to the log; returns a borrowed entry or NULL. */
/* On the https listener: whether the client resumed an earlier TLS
 * session (an abbreviated handshake, no certificate checked again). */
static int
recv_record_tls(json_t *e, struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn != NULL ?
	    evhttp_connection_get_bufferevent(conn) :
	    NULL;
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

	if (ssl == NULL)
		return 0;
	/* Which connection: tells a new one from a kept-alive one (the
	 * address is unique while the connection lives). */
	return json_object_set_new(e, "tls_resumed",
		   json_boolean(SSL_session_reused(ssl))) |
	    json_object_set_new(e, "tls_connection",
		json_integer((json_int_t)(uintptr_t)conn));
}

static json_t *
recv_record(struct recv_app *app, struct evhttp_request *req)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path =
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	size_t len;
	const char *body = recv_body(req, &len);
	json_t *e = json_object(), *b = json_stringn(body, len);
	char now[40];
	int bad = 0;

	recv_now(now, sizeof(now));
	path = path != NULL ? path : "";
	/* json_object_set_new fails on a NULL object or value: one flag checks all. */
	bad |= json_object_set_new(e, "seq", json_integer(++app->seq));
	bad |= json_object_set_new(e, "method",
	    json_string(cmd == EVHTTP_REQ_POST ? "POST" :
		    cmd == EVHTTP_REQ_GET      ? "GET" :
		    cmd == EVHTTP_REQ_PUT      ? "PUT" :
		    cmd == EVHTTP_REQ_DELETE   ? "DELETE" :
		    cmd == EVHTTP_REQ_HEAD     ? "HEAD" :
						 "OTHER"));
	bad |= json_object_set_new(e, "path", json_stringn(path, strlen(path)));
	bad |= json_object_set_new(e, "received_at", json_string(now));
	bad |= json_object_set_new(e, "headers", recv_headers_json(req));
	bad |= json_object_set_new(e, "body", b != NULL ? b : json_null());
	if (b == NULL)
		bad |= json_object_set_new(e, "body_invalid_utf8", json_true());
	bad |= json_object_set_new(e, "status", json_null());
	bad |= recv_record_tls(e, req);
	if (bad)
		json_decref(e);
	if (bad || json_array_append_new(app->log, e) != 0) {
		fprintf(stderr,
		    "webhook-receiver: cannot record request %lld\n",
		    (long long)app->seq);
		return NULL;
	}
	/* O(n) shift, but only past the cap: keeps the log a plain array. */
	if (json_array_size(app->log) > RECV_MAX_LOG)
		json_array_remove(app->log, 0);
	return e;
}

/* Records the answer (-1: none, the request hangs) and prints the log line. */
static void
recv_done(struct recv_app *app, json_t *entry, int code)
{
	json_t *raw = json_object_get(entry, "body"), *body;
	char now[40];

	json_object_set_new(entry, "status",
	    code >= 0 ? json_integer(code) : json_null());
	if (app->quiet)
		return;
	/* Show a JSON body as JSON, so a newcomer reads {"to":..,"content":..}. */
	body = json_is_string(raw) ? json_loadb(json_string_value(raw),
					 json_string_length(raw), 0, NULL) :
				     NULL;
	if (body == NULL)
		body = raw != NULL ? json_incref(raw) : json_null();
	recv_now(now, sizeof(now));
	recv_emit(json_pack("{s:s,s:s,s:s,s:s,s:O?,s:o,s:O*,s:o}", "ts", now,
	    "level", "info", "msg", "webhook request", "component", "receiver",
	    "webhook_id",
	    json_object_get(json_object_get(entry, "headers"), "webhook-id"),
	    "status", code >= 0 ? json_integer(code) : json_null(),
	    "message_id", json_object_get(entry, "message_id"), "body", body));
}

static void
recv_accept(struct recv_app *app, struct evhttp_request *req, json_t *entry)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	char id[37], *p = id;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		recv_done(app, entry, 500);
		recv_error(req, 500, "no randomness", NULL);
		return;
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		*p++ = hex[r[i] >> 4];
		*p++ = hex[r[i] & 15];
	}
	*p = '\0';
	/* Kept so tests can match the id the service stores against this answer. */
	json_object_set_new(entry, "message_id", json_string(id));
	recv_done(app, entry, 202);
	recv_send(req, 202,
	    json_pack("{s:s,s:s}", "message", "Accepted", "messageId", id));
}

/* A hostile far end: 200 and a body far larger than any client should
 * read. A client that hangs up early just frees the connection. */
static void
recv_huge(struct evhttp_request *req)
{
	static const char block[RECV_HUGE_BLOCK];
	struct evbuffer *out = evhttp_request_get_output_buffer(req);

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/octet-stream");
	for (int i = 0; i < RECV_HUGE_BLOCKS; i++)
		evbuffer_add_reference(out, block, sizeof(block), NULL, NULL);
	evhttp_send_reply(req, 200, NULL, NULL);
}

/* Frees s but never touches s->req: that belongs to evhttp. */
static void
recv_slow_free(struct recv_app *app, struct recv_slow *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		app->slow = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	event_free(s->timer);
	json_decref(s->entry);
	free(s);
}

static void
recv_on_slow(evutil_socket_t fd, short what, void *arg)
{
	struct recv_slow *s = arg;

	(void)fd;
	(void)what;
	recv_accept(s->app, s->req, s->entry);
	recv_slow_free(s->app, s);
}

static void
recv_slow_start(struct recv_app *app, struct evhttp_request *req, json_t *entry)
{
	struct recv_slow *s = calloc(1, sizeof(*s));
	struct timeval tv = { app->set.delay_ms / 1000,
		(app->set.delay_ms % 1000) * 1000 };

	if (s == NULL ||
	    (s->timer = evtimer_new(app->base, recv_on_slow, s)) == NULL) {
		free(s);
		recv_done(app, entry, 500);
		recv_error(req, 500, "out of memory", NULL);
		return;
	}
	s->app = app;
	s->req = req;
	s->entry = json_incref(entry);
	s->next = app->slow;
	if (app->slow != NULL)
		app->slow->prev = s;
	app->slow = s;
	evtimer_add(s->timer, &tv);
}

/* Freed from the loop, not from inside evhttp's request callback (which
 * still uses the connection when it returns). The client is waiting for an
 * answer, so evhttp does not free the connection on its own meanwhile. */
static void
recv_on_reset(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evhttp_connection_free(arg);
}

/* A far end that drops the connection without an answer (curl: "Empty reply
 * from server"). evhttp shuts the write side first, so the client sees EOF;
 * SO_LINGER 0 then makes the close abortive (an RST, no TIME_WAIT here). */
static void
recv_reset(struct recv_app *app, struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	struct linger lg = { 1, 0 };
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (event_base_once(app->base, -1, EV_TIMEOUT, recv_on_reset, conn,
		NULL) != 0)
		recv_error(req, 500, "cannot reset", NULL);
}

static void
recv_on_webhook(struct recv_app *app, struct evhttp_request *req)
{
	json_t *entry = recv_record(app, req);
	enum recv_mode mode = app->set.mode;
	char n[16];

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		recv_done(app, entry, 405);
		recv_error(req, 405, "method not allowed", "POST");
		return;
	}
	if (mode == RECV_FAIL_THEN_ACCEPT)
		mode = app->failed < app->set.fail_count ?
		    (app->failed++, RECV_STATUS) :
		    RECV_ACCEPT;
	switch (mode) {
	case RECV_STATUS:
		if (app->set.retry_after > 0) {
			snprintf(n, sizeof(n), "%d", app->set.retry_after);
			evhttp_add_header(
			    evhttp_request_get_output_headers(req),
			    "Retry-After", n);
		}
		recv_done(app, entry, app->set.status);
		recv_error(req, app->set.status, "forced status", NULL);
		break;
	case RECV_SLOW:
		recv_slow_start(app, req, entry);
		break;
	case RECV_HANG:
		/* No reference kept: evhttp_free releases the request at exit. */
		recv_done(app, entry, -1);
		break;
	case RECV_GARBAGE:
		recv_done(app, entry, 200);
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Content-Type", "text/plain");
		evbuffer_add(evhttp_request_get_output_buffer(req),
		    "not json at all", 15);
		evhttp_send_reply(req, 200, NULL, NULL);
		break;
	case RECV_NOJSON:
		recv_done(app, entry, 202);
		evhttp_send_reply(req, 202, NULL, NULL);
		break;
	case RECV_HUGE:
		recv_done(app, entry, 200);
		recv_huge(req);
		break;
	case RECV_RESET:
		recv_done(app, entry, -1);
		recv_reset(app, req);
		break;
	default:
		recv_accept(app, req, entry);
		break;
	}
}

static json_t *
recv_settings_json(struct recv_app *app)
{
	const struct recv_settings *s = &app->set;

	return json_pack("{s:s,s:i,s:i,s:o,s:i,s:i}", "mode",
	    recv_mode_names[s->mode], "status", s->status, "delay_ms",
	    s->delay_ms, "retry_after",
	    s->retry_after > 0 ? json_integer(s->retry_after) : json_null(),
	    "fail_count", s->fail_count, "failed", app->failed);
}

/* Checks one field of PUT /_control into *set; on error fills msg, returns -1. */
static int
recv_apply(struct recv_settings *set, const char *key, json_t *val, char *msg,
    size_t size)
{
	if (strcmp(key, "mode") == 0) {
		int m = json_is_string(val) ?
		    recv_mode_parse(json_string_value(val)) :
		    -1;
		if (m < 0)
			return snprintf(msg, size, "unknown mode"), -1;
		set->mode = (enum recv_mode)m;
		return 0;
	}
	if (strcmp(key, "retry_after") == 0 && json_is_null(val)) {
		set->retry_after = 0; /* null clears the header */
		return 0;
	}
	for (size_t i = 0; i < sizeof(recv_fields) / sizeof(recv_fields[0]);
	     i++) {
		const struct recv_field *f = &recv_fields[i];
		if (strcmp(key, f->name) != 0)
			continue;
		if (!json_is_integer(val) || json_integer_value(val) < f->lo ||
		    json_integer_value(val) > f->hi)
			return snprintf(msg, size,
				   "%s must be an integer in [%d, %d]", key,
				   f->lo, f->hi),
			       -1;
		*(int *)((char *)set + f->off) = (int)json_integer_value(val);
		return 0;
	}
	return snprintf(msg, size, "unknown field \"%s\"", key), -1;
}

static void
recv_on_control_put(struct recv_app *app, struct evhttp_request *req)
{
	struct recv_settings next = app->set;
	size_t len;
	const char *body = recv_body(req, &len);
	json_error_t err;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err),
	       *val;
	const char *key;
	char msg[256] = "";

	if (root == NULL)
		snprintf(msg, sizeof(msg), "invalid JSON: %s", err.text);
	else if (!json_is_object(root))
		snprintf(msg, sizeof(msg), "body must be a JSON object");
	else
		json_object_foreach(root, key, val)
			if (recv_apply(&next, key, val, msg, sizeof(msg)) != 0)
				break;
	json_decref(root);
	if (msg[0] != '\0') {
		recv_error(req, 400, msg, NULL);
		return;
	}
	app->set = next;
	app->failed = 0; /* every PUT restarts the fail_then_accept count */
	recv_send(req, 200, recv_settings_json(app));
}

static void
recv_on_request(struct evhttp_request *req, void *arg)
{
	struct recv_app *app = arg;
	const char *path =
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;

	path = path != NULL ? path : "";
	if (strcmp(path, app->path) == 0)
		recv_on_webhook(app, req);
	else if (strcmp(path, "/_control") == 0 && get)
		recv_send(req, 200, recv_settings_json(app));
	else if (strcmp(path, "/_control") == 0 && cmd == EVHTTP_REQ_PUT)
		recv_on_control_put(app, req);
	else if (strcmp(path, "/_control") == 0)
		recv_error(req, 405, "method not allowed", "GET, HEAD, PUT");
	else if (strcmp(path, "/_requests") == 0 && get)
		recv_send(req, 200,
		    json_pack("{s:I,s:O}", "count",
			(json_int_t)json_array_size(app->log), "requests",
			app->log));
	else if (strcmp(path, "/_requests") == 0 && cmd == EVHTTP_REQ_DELETE)
		recv_send(req, 200,
		    json_array_clear(app->log) == 0 ?
			json_pack("{s:i}", "count", 0) :
			NULL);
	else if (strcmp(path, "/_requests") == 0)
		recv_error(req, 405, "method not allowed", "GET, HEAD, DELETE");
	else if (strcmp(path, "/health") == 0 && get)
		recv_send(req, 200, json_pack("{s:s}", "status", "ok"));
	else if (strcmp(path, "/health") == 0)
		recv_error(req, 405, "method not allowed", "GET, HEAD");
	else
		recv_error(req, 404, "not found", NULL);
}

static void
recv_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct recv_app *app = arg;

	(void)sig;
	(void)what;
	event_base_loopexit(app->base, NULL);
}

static char recv_libevent_warning[256];
static int recv_libevent_live;

/* Before we listen, libevent's warnings go into our one-line startup error. */
static void
recv_on_libevent_log(int severity, const char *msg)
{
	if (severity < EVENT_LOG_WARN)
		return;
	if (recv_libevent_live)
		fprintf(stderr, "webhook-receiver: libevent: %s\n", msg);
	else
		snprintf(recv_libevent_warning, sizeof(recv_libevent_warning),
		    "%s", msg);
}

static const char *
recv_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : dflt;
}

static int
recv_parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* A path that survives shells and YAML: printable ASCII, and not one of ours. */
static int
recv_path_ok(const char *p)
{
	if (p[0] != '/' || strcmp(p, "/_control") == 0 ||
	    strcmp(p, "/_requests") == 0 || strcmp(p, "/health") == 0)
		return 0;
	for (; *p; p++)
		if (*p < 0x21 || *p > 0x7e || *p == '?' || *p == '#')
			return 0;
	return 1;
}

/* Every listener answers alike; only the TLS one wraps its connections. */
static struct evhttp *
recv_http_new(struct recv_app *app)
{
	struct evhttp *http = evhttp_new(app->base);

	if (http == NULL)
		return NULL;
	evhttp_set_max_body_size(http, RECV_MAX_BODY);
	evhttp_set_max_headers_size(http, RECV_MAX_HEADERS);
	evhttp_set_timeout(http, RECV_TIMEOUT_S);
	evhttp_set_allowed_methods(http,
	    EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
		EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
	evhttp_set_default_content_type(http, "application/json");
	/* Lets a client still uploading an oversized body read its 413. */
	evhttp_set_flags(http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_gencb(http, recv_on_request, app);
	return http;
}

static struct bufferevent *
recv_tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(arg);

	return ssl == NULL ?
	    NULL :
	    bufferevent_openssl_socket_new(base, -1, ssl,
		BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

/* The https listener: cert is a PEM chain (leaf first), key its key. */
static int
recv_tls_listen(struct recv_app *app, const char *addr, int port,
    const char *cert, const char *key)
{
	app->tls = SSL_CTX_new(TLS_server_method());
	if (app->tls == NULL ||
	    SSL_CTX_use_certificate_chain_file(app->tls, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(app->tls, key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "webhook-receiver: cannot load %s / %s\n", cert,
		    key);
		return -1;
	}
	if ((app->https = recv_http_new(app)) == NULL)
		return -1;
	evhttp_set_bevcb(app->https, recv_tls_bev, app->tls);
	if (evhttp_bind_socket_with_handle(app->https, addr,
		(ev_uint16_t)port) == NULL) {
		fprintf(stderr, "webhook-receiver: cannot listen on %s:%d\n",
		    addr, port);
		return -1;
	}
	return 0;
}

static int
recv_usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "webhook-receiver: %s: %s (try --help)\n", what, arg);
	return 2;
}

int
main(int argc, char **argv)
{
	/* clang-format off */
	static const struct option opts[] = {
		{ "status", required_argument, NULL, 0 }, { "delay-ms", required_argument, NULL, 1 },
		{ "retry-after", required_argument, NULL, 2 }, { "fail-count", required_argument, NULL, 3 },
		{ "bind", required_argument, NULL, 'b' }, { "port", required_argument, NULL, 'p' },
		{ "path", required_argument, NULL, 'P' }, { "mode", required_argument, NULL, 'm' },
		{ "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' },
		{ "tls-port", required_argument, NULL, 'T' }, { "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 },
	};
	/* clang-format on */
	struct recv_app app = { .path = recv_env("RECEIVER_PATH", "/webhook"),
		.set.status = 500 };
	const char *addr = recv_env("RECEIVER_BIND", "0.0.0.0");
	const char *port_s = recv_env("RECEIVER_PORT", "9090");
	const char *mode_s = recv_env("RECEIVER_MODE", "accept");
	const char *tls_port_s = NULL, *tls_cert = NULL, *tls_key = NULL;
	int c, port, tls_port = 0, mode, rc = 1;
	char now[40];

	opterr = 0; /* our own one-line messages instead of getopt's */
	while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (c >= 0 && c <= 3) {
			const struct recv_field *f = &recv_fields[c];
			if (recv_parse_int(optarg, f->lo, f->hi,
				(int *)((char *)&app.set + f->off)) != 0)
				return recv_usage_error("bad value", optarg);
		} else if (c == 'b' || c == 'p' || c == 'P' || c == 'm') {
			*(c == 'b'	 ? &addr :
				c == 'p' ? &port_s :
				c == 'P' ? &app.path :
					   &mode_s) = optarg;
		} else if (c == 'T' || c == 'C' || c == 'K') {
			*(c == 'T'	 ? &tls_port_s :
				c == 'C' ? &tls_cert :
					   &tls_key) = optarg;
		} else if (c == 'q') {
			app.quiet = 1;
		} else if (c == 'h') {
			printf(
			    "usage: webhook-receiver [--bind ADDR] [--port N] [--path /webhook] "
			    "[--mode MODE] [--status CODE] [--delay-ms N] [--retry-after N] [--fail-count N] "
			    "[--quiet] [--tls-port N --tls-cert PEM --tls-key PEM]\nmodes: accept status slow hang garbage nojson fail_then_accept huge reset\n"
			    "env: RECEIVER_BIND RECEIVER_PORT RECEIVER_PATH RECEIVER_MODE\n");
			return 0;
		} else {
			return recv_usage_error(c == ':' ? "missing value for" :
							   "unknown option",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		return recv_usage_error("unexpected argument", argv[optind]);
	if (recv_parse_int(port_s, 1, 65535, &port) != 0)
		return recv_usage_error("bad port", port_s);
	if (tls_port_s != NULL &&
	    (recv_parse_int(tls_port_s, 1, 65535, &tls_port) != 0 ||
		tls_cert == NULL || tls_key == NULL))
		return recv_usage_error("--tls-port needs a port, --tls-cert "
					"and --tls-key",
		    tls_port_s);
	if (!recv_path_ok(app.path))
		return recv_usage_error("bad path", app.path);
	if ((mode = recv_mode_parse(mode_s)) < 0)
		return recv_usage_error("unknown mode", mode_s);
	app.set.mode = (enum recv_mode)mode;

	signal(SIGPIPE, SIG_IGN);
	event_set_log_callback(recv_on_libevent_log);
	setvbuf(stdout, NULL, _IOLBF, 0);
	app.log = json_array();
	app.base = event_base_new();
	app.http = app.base != NULL ? recv_http_new(&app) : NULL;
	app.sigint = app.base != NULL ?
	    evsignal_new(app.base, SIGINT, recv_on_signal, &app) :
	    NULL;
	app.sigterm = app.base != NULL ?
	    evsignal_new(app.base, SIGTERM, recv_on_signal, &app) :
	    NULL;
	if (app.log == NULL || app.http == NULL || app.sigint == NULL ||
	    app.sigterm == NULL || event_add(app.sigint, NULL) != 0 ||
	    event_add(app.sigterm, NULL) != 0) {
		fprintf(stderr,
		    "webhook-receiver: cannot set up the event loop\n");
		goto out;
	}
	if (evhttp_bind_socket_with_handle(app.http, addr, (ev_uint16_t)port) ==
	    NULL) {
		fprintf(stderr,
		    "webhook-receiver: cannot listen on %s:%d: %s\n", addr,
		    port,
		    recv_libevent_warning[0] != '\0' ? recv_libevent_warning :
						       strerror(errno));
		goto out;
	}
	if (tls_port != 0 &&
	    recv_tls_listen(&app, addr, tls_port, tls_cert, tls_key) != 0)
		goto out;
	recv_libevent_live = 1;
	/* Printed even with --quiet: scripts wait for it to know we are up. */
	recv_now(now, sizeof(now));
	recv_emit(json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:s}", "ts", now,
	    "level", "info", "msg", "receiver listening", "component",
	    "receiver", "bind", addr, "port", port, "path", app.path, "mode",
	    recv_mode_names[app.set.mode]));
	rc = event_base_dispatch(app.base) == 0 ? 0 : 1;
out:
	/* Pending slow and hanging requests are not answered: evhttp_free frees them. */
	while (app.slow != NULL)
		recv_slow_free(&app, app.slow);
	if (app.http != NULL)
		evhttp_free(app.http);
	if (app.https != NULL)
		evhttp_free(app.https);
	SSL_CTX_free(app.tls);
	if (app.sigint != NULL)
		event_free(app.sigint);
	if (app.sigterm != NULL)
		event_free(app.sigterm);
	if (app.base != NULL)
		event_base_free(app.base);
	json_decref(app.log);
	libevent_global_shutdown();
	return rc;
}
