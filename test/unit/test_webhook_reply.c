/* test_webhook_reply.c - reply bodies through the real client on a real
 * loop: an in-process evhttp server answers, a watchdog bounds the wait.
 *
 * curl reads a reply in chunks of at most its receive buffer (1 KiB, see
 * WEBHOOK_RECV_BUFFER): a body of several chunks must come back whole, and
 * a huge 200 must be cut at WEBHOOK_BODY_MAX (the transfer ends there)
 * and still count as a 200, with the reply error named. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "harness.h"
#include "webhook.h"

#define MID_LEN 5000
#define BIG_LEN (300 * 1024)

struct got {
	bool done;
	long status;
	int curl_code;
	size_t body_len;
	bool truncated;
	bool reply_error; /* error is WEBHOOK_REPLY_TOO_LARGE */
	char *body;
};

static struct event_base *base;
static int pending;

/* Byte i of every test body: a pattern where a shifted or dropped chunk
 * shows. */
static char
body_byte(size_t i)
{
	return (char)('a' + (i * 7 + i / 1024) % 26);
}

static void
serve(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_request_get_uri(req);
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	size_t len = strcmp(path, "/big") == 0 ? BIG_LEN : MID_LEN;
	char *body = malloc(len);

	(void)arg;
	for (size_t i = 0; i < len; i++)
		body[i] = body_byte(i);
	evbuffer_add(out, body, len);
	free(body);
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void
on_done(void *arg, const struct webhook_result *res)
{
	struct got *g = arg;

	g->done = true;
	g->status = res->http_status;
	g->curl_code = res->curl_code;
	g->body_len = res->body_len;
	g->truncated = res->body_truncated;
	g->reply_error = res->error != NULL &&
	    strcmp(res->error, WEBHOOK_REPLY_TOO_LARGE) == 0;
	g->body = malloc(res->body_len + 1);
	memcpy(g->body, res->body, res->body_len + 1);
	if (--pending == 0)
		event_base_loopexit(base, NULL);
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	fprintf(stderr, "  watchdog: no answer in time\n");
	event_base_loopexit(base, NULL);
}

static bool
body_is_pattern(const struct got *g, size_t len)
{
	if (g->body == NULL || g->body_len != len || g->body[len] != '\0')
		return false;
	for (size_t i = 0; i < len; i++)
		if (g->body[i] != body_byte(i))
			return false;
	return true;
}

/* Posts to path on the server and runs the loop until the callback. */
static void
post(int port, const char *path, struct got *g)
{
	char url[64];
	struct webhook *wh;
	struct event *watchdog = evtimer_new(base, on_watchdog, NULL);
	struct timeval tv = { 10, 0 };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	wh = webhook_new(base, url, "", 5000, 2);
	pending = 1;
	CHECK(webhook_post(wh, 1, "+905551234567", "hello", on_done, g) == 0);
	event_add(watchdog, &tv);
	event_base_dispatch(base);
	event_free(watchdog);
	webhook_free(wh);
}

static int
start_server(struct evhttp **http)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	*http = evhttp_new(base);
	evhttp_set_gencb(*http, serve, NULL);
	bound = evhttp_bind_socket_with_handle(*http, "127.0.0.1", 0);
	if (bound == NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bound),
		(struct sockaddr *)&sin, &slen) != 0)
		return -1;
	return ntohs(sin.sin_port);
}

static void
test_reply_in_many_chunks_whole(void)
{
	struct evhttp *http;
	struct got g = { 0 };
	int port = start_server(&http);

	CHECK(port > 0);
	post(port, "/mid", &g);
	CHECK(g.done);
	CHECK(g.status == 200);
	CHECK(g.curl_code == CURLE_OK);
	CHECK(!g.truncated);
	CHECK(!g.reply_error);
	CHECK(body_is_pattern(&g, MID_LEN));
	free(g.body);
	evhttp_free(http);
}

static void
test_huge_200_capped(void)
{
	struct evhttp *http;
	struct got g = { 0 };
	int port = start_server(&http);

	CHECK(port > 0);
	post(port, "/big", &g);
	CHECK(g.done);
	/* Cut at the cap, not drained: the answer still counts. */
	CHECK(g.status == 200);
	CHECK(g.curl_code == CURLE_OK);
	CHECK(g.truncated);
	CHECK(g.reply_error);
	CHECK(body_is_pattern(&g, WEBHOOK_BODY_MAX));
	free(g.body);
	evhttp_free(http);
}

int
main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	base = event_base_new();
	RUN(test_reply_in_many_chunks_whole);
	RUN(test_huge_200_capped);
	event_base_free(base);
	curl_global_cleanup();
	return harness_done();
}
