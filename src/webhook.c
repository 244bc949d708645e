/* webhook.c - the webhook client: curl multi's socket API on our loop.
 *
 * curl is only ever called from libevent callbacks (socket events, the one
 * timer) or from our public functions, never from curl's own callbacks,
 * which answer CURLM_RECURSIVE_API_CALL in 7.88. Finished transfers are
 * taken off curl at once and parked on a list; a separate loop event hands
 * them to their callers, so no caller code runs while curl is on the stack.
 *
 * A transfer's memory is reused, not rebuilt per post: its easy handle
 * (options set once), its header list (nodes of its own, only the
 * webhook-id text changes) and its body buffer go back to an idle pool
 * after the callback, up to WEBHOOK_IDLE_MAX of them.
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <curl/curl.h>

#include "jsonbuf.h"
#include "log.h"
#include "sign.h"
#include "timing.h"
#include "util.h"
#include "webhook.h"

#define WEBHOOK_USER_AGENT "gopulse-messages/" GOPULSE_VERSION
/* RFC 9111 1.2.2: a delta-seconds too large to represent counts as 2^31. */
#define WEBHOOK_DELTA_MAX 2147483648LL
/* Longer Retry-After values are nonsense; they are ignored, not cut. */
#define WEBHOOK_RA_MAX 64
/* Idle transfers kept for reuse, at most (each holds an easy handle and
 * curl's receive buffer): enough for the default concurrency; a larger
 * one still reuses these and frees the rest after its burst. */
#define WEBHOOK_IDLE_MAX 64
/* A reply buffer grown past this is freed when its transfer goes idle. */
#define WEBHOOK_BODY_KEEP 4096
/* Content-Type, Accept, webhook-id, x-ins-auth-key (optional),
 * webhook-timestamp and webhook-signature (optional), Expect. */
#define WEBHOOK_NHDR 7
#define WEBHOOK_ID_PREFIX "webhook-id: "
#define WEBHOOK_SIG_PREFIX "webhook-signature: "
/* CURLOPT_CA_CACHE_TIMEOUT: a day, in seconds. */
#define WEBHOOK_CA_CACHE_S 86400L
/* CURLOPT_BUFFERSIZE: curl's minimum. */
#define WEBHOOK_RECV_BUFFER 1024L

/* One socket curl wants watched, attached to it with curl_multi_assign. */
struct webhook_sock {
	LIST_ENTRY(webhook_sock) link;
	struct webhook *wh;
	int what; /* CURL_POLL_* the event is set for */
	struct event *ev;
};

struct webhook_xfer {
	TAILQ_ENTRY(webhook_xfer) link;
	CURL *easy;	    /* kept for the next post */
	struct jsonbuf req; /* POSTFIELDS: lives as long as the transfer */
	struct curl_slist hdr[WEBHOOK_NHDR];
	char id_header[48]; /* hdr's webhook-id line */
	/* With a secret: the timestamp and signature lines, rewritten by
	 * every post (NULL sig_header without one). */
	char ts_header[40];
	char *sig_header;
	size_t sig_size;
	int64_t id;
	webhook_done_cb cb;
	void *arg;
	int64_t started_ms;
	char errbuf[CURL_ERROR_SIZE];
	char *body;
	size_t body_len;
	bool body_truncated;
	int64_t retry_after_s;
	/* The outcome, read before the handle leaves the multi. */
	CURLcode code;
	long http_status;
	long new_conns;
	int64_t elapsed_ms;
	bool aborted;
};

TAILQ_HEAD(webhook_xfer_list, webhook_xfer);

struct webhook {
	struct event_base *base;
	CURLM *multi;
	CURLSH *share; /* TLS sessions, for every handle */
	struct event *ev_timer;
	struct event *ev_deliver;
	char *url;
	char *auth_header; /* NULL when no key is set */
	char *ca_file;	   /* NULL: curl's default bundle */
	struct sign *sign; /* NULL when posts are not signed */
	int64_t timeout_ms;
	size_t concurrency;
	size_t inflight; /* running + done, until the callback starts */
	struct webhook_xfer_list running;
	struct webhook_xfer_list done;
	struct webhook_xfer_list idle; /* ready for the next post */
	size_t nidle;
	LIST_HEAD(, webhook_sock) socks;
	int depth; /* deliveries on the stack */
	bool freeing;
};

/* Allocation failures abort, as xmalloc does. */
static void
webhook_oom(void)
{
	log_error("webhook", "out of memory", NULL);
	abort();
}

static struct event *
webhook_event_new(struct event_base *base, evutil_socket_t fd, short what,
    event_callback_fn cb, void *arg)
{
	struct event *ev = event_new(base, fd, what, cb, arg);

	if (ev == NULL)
		webhook_oom();
	return ev;
}

/* ---- Retry-After ---- */

int64_t
webhook_parse_retry_after(const char *value, int64_t now)
{
	const char *p = value, *end;
	char buf[WEBHOOK_RA_MAX];
	time_t t, tnow = (time_t)now;
	size_t len;

	if (value == NULL)
		return -1;
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	len = (size_t)(end - p);
	if (len == 0)
		return -1;
	if (strspn(p, "0123456789") == len) {
		int64_t secs = 0;

		for (; p < end; p++) {
			secs = secs * 10 + (*p - '0');
			if (secs >= WEBHOOK_DELTA_MAX)
				return WEBHOOK_DELTA_MAX;
		}
		return secs;
	}
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	/* curl's own date parser takes all three HTTP-date forms (IMF-fixdate,
	 * RFC 850, asctime), as the curl tool does for --retry. */
	t = curl_getdate(buf, &tnow);
	if (t < 0)
		return -1;
	if (t <= tnow)
		return 0;
	/* A date in the year 10^9 is as absurd as a huge delta: the same
	 * cap, so no caller multiplies something near INT64_MAX. */
	return t - tnow >= WEBHOOK_DELTA_MAX ? WEBHOOK_DELTA_MAX :
					       (int64_t)(t - tnow);
}

/* ---- curl's callbacks: they record, they never call back into curl ---- */

static size_t
webhook_on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct webhook_xfer *x = arg;
	size_t n = size * nmemb;
	size_t room = WEBHOOK_BODY_MAX - x->body_len;
	size_t keep = n < room ? n : room;

	/* Chunks come in up to WEBHOOK_RECV_BUFFER bytes. */
	if (keep > 0) {
		char *body = realloc(x->body, x->body_len + keep + 1);

		if (body == NULL)
			webhook_oom();
		x->body = body;
		memcpy(x->body + x->body_len, data, keep);
		x->body_len += keep;
		x->body[x->body_len] = '\0';
	}
	/* Past the cap, stop reading: a short count ends the transfer
	 * (CURLE_WRITE_ERROR). Draining a reply we do not keep would hold
	 * the loop for as long as the far end cares to send. */
	if (keep < n) {
		x->body_truncated = true;
		return keep;
	}
	return n;
}

static size_t
webhook_on_header(char *line, size_t size, size_t nitems, void *arg)
{
	static const char name[] = "retry-after:";
	const size_t nlen = sizeof(name) - 1;
	struct webhook_xfer *x = arg;
	size_t n = size * nitems;
	char value[WEBHOOK_RA_MAX];

	/* Every response, interim 1xx ones too, opens with its status line:
	 * only the final one's header may count. */
	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		x->retry_after_s = -1;
	} else if (n > nlen && strncasecmp(line, name, nlen) == 0) {
		if (n - nlen >= sizeof(value)) {
			x->retry_after_s = -1;
			return n;
		}
		memcpy(value, line + nlen, n - nlen);
		value[n - nlen] = '\0';
		x->retry_after_s = webhook_parse_retry_after(value,
		    util_wall_ms() / 1000);
	}
	return n;
}

static void webhook_on_io(evutil_socket_t fd, short events, void *arg);

static void
webhook_sock_free(struct webhook_sock *s)
{
	LIST_REMOVE(s, link);
	event_free(s->ev);
	free(s);
}

/* REMOVE may come for an fd never announced, or after curl closed it; a
 * closed fd's event_del fails quietly in libevent, which is fine. */
static int
webhook_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *sockp)
{
	struct webhook *wh = userp;
	struct webhook_sock *s = sockp;
	short kind = EV_PERSIST;

	UNUSED(easy);
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL)
			webhook_sock_free(s);
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->wh = wh;
		s->what = -1;
		s->ev = webhook_event_new(wh->base, fd, 0, webhook_on_io, s);
		LIST_INSERT_HEAD(&wh->socks, s, link);
		curl_multi_assign(wh->multi, fd, s);
	}
	if (s->what == what)
		return 0;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	event_del(s->ev);
	event_assign(s->ev, wh->base, fd, kind, webhook_on_io, s);
	event_add(s->ev, NULL);
	s->what = what;
	return 0;
}

static int
webhook_on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
	struct webhook *wh = userp;

	UNUSED(multi);
	if (timeout_ms < 0) {
		evtimer_del(wh->ev_timer);
	} else {
		struct timeval tv = util_tv(timeout_ms);

		evtimer_add(wh->ev_timer, &tv);
	}
	/* -1 would mark the multi handle dead for good. */
	return 0;
}

/* ---- driving curl from the loop ---- */

static void
webhook_xfer_free(struct webhook_xfer *x)
{
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	jsonbuf_fini(&x->req);
	free(x->body);
	free(x->sig_header);
	free(x);
}

/* Takes x off curl and parks it for delivery; the easy handle stays with
 * x for its next post. */
static void
webhook_xfer_retire(struct webhook *wh, struct webhook_xfer *x)
{
	curl_multi_remove_handle(wh->multi, x->easy);
	x->elapsed_ms = util_now_ms() - x->started_ms;
	TAILQ_REMOVE(&wh->running, x, link);
	TAILQ_INSERT_TAIL(&wh->done, x, link);
}

static void
webhook_collect(struct webhook *wh)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(wh->multi, &left)) != NULL) {
		struct webhook_xfer *x;
		char *priv = NULL;
		CURL *easy = msg->easy_handle;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		x = (void *)priv;
		/* msg belongs to curl and dies with remove_handle: read
		 * everything first. */
		x->code = msg->data.result;
		curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE,
		    &x->http_status);
		curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &x->new_conns);
		webhook_xfer_retire(wh, x);
	}
	if (!TAILQ_EMPTY(&wh->done))
		event_active(wh->ev_deliver, EV_TIMEOUT, 0);
}

static void
webhook_drive(struct webhook *wh, curl_socket_t fd, int flags)
{
	int running;
	CURLMcode rc = curl_multi_socket_action(wh->multi, fd, flags, &running);

	if (rc != CURLM_OK)
		log_error("webhook", "curl multi failed", "{s:s}", "reason",
		    curl_multi_strerror(rc));
	webhook_collect(wh);
}

static void
webhook_on_io(evutil_socket_t fd, short events, void *arg)
{
	struct webhook_sock *s = arg;
	int flags = 0;

	if (events & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	/* s may be freed inside socket_action; wh outlives it. */
	webhook_drive(s->wh, fd, flags);
}

static void
webhook_on_timer(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	webhook_drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* ---- delivering to our callers ---- */

/* After its callback: into the idle pool, unless the pool is full or the
 * client is going away. */
static void
webhook_xfer_idle(struct webhook *wh, struct webhook_xfer *x)
{
	if (wh->freeing || wh->nidle >= WEBHOOK_IDLE_MAX || x->easy == NULL) {
		webhook_xfer_free(x);
		return;
	}
	if (x->body != NULL && x->body_len >= WEBHOOK_BODY_KEEP) {
		free(x->body);
		x->body = NULL;
	}
	TAILQ_INSERT_HEAD(&wh->idle, x, link);
	wh->nidle++;
}

static void
webhook_report(struct webhook_xfer *x)
{
	struct webhook_result res = {
		.id = x->id,
		.http_status = x->http_status,
		.curl_code = x->code,
		.body = x->body != NULL ? x->body : "",
		.body_len = x->body_len,
		.body_truncated = x->body_truncated,
		.retry_after_s = x->retry_after_s,
		.elapsed_ms = x->elapsed_ms,
		.aborted = x->aborted,
	};

	if (x->aborted) {
		res.http_status = 0;
		res.curl_code = CURLE_ABORTED_BY_CALLBACK;
		res.error = "aborted";
		res.body = "";
		res.body_len = 0;
		res.body_truncated = false;
		res.retry_after_s = -1;
	} else if (x->code == CURLE_WRITE_ERROR && x->body_truncated) {
		/* We cut it: the status line and headers came whole, so the
		 * answer stands; only the reply body is in error. */
		res.curl_code = CURLE_OK;
		res.error = WEBHOOK_REPLY_TOO_LARGE;
	} else if (x->code != CURLE_OK) {
		res.error = x->errbuf[0] ? x->errbuf :
					   curl_easy_strerror(x->code);
	}
	/* Never the key, the content or the url (it may carry userinfo). */
	log_debug("webhook", "request finished",
	    "{s:I, s:i, s:I, s:i, s:s?, s:i, s:b}", "id", (json_int_t)res.id,
	    "status", (int)res.http_status, "elapsed_ms",
	    (json_int_t)res.elapsed_ms, "curl_code", res.curl_code, "error",
	    res.error, "new_connections", (int)x->new_conns, "aborted",
	    res.aborted);
	x->cb(x->arg, &res);
}

static void
webhook_destroy(struct webhook *wh)
{
	struct webhook_xfer *x;

	/* Idle handles are out of the multi handle already. */
	while ((x = TAILQ_FIRST(&wh->idle)) != NULL) {
		TAILQ_REMOVE(&wh->idle, x, link);
		webhook_xfer_free(x);
	}
	/* cleanup closes cached connections through our socket and timer
	 * callbacks, so everything they touch is still alive here. */
	curl_multi_cleanup(wh->multi);
	/* Last: no easy handle uses it any more. */
	curl_share_cleanup(wh->share);
	while (!LIST_EMPTY(&wh->socks))
		webhook_sock_free(LIST_FIRST(&wh->socks));
	event_free(wh->ev_timer);
	event_free(wh->ev_deliver);
	free(wh->auth_header);
	free(wh->ca_file);
	sign_free(wh->sign);
	free(wh->url);
	free(wh);
}

/* The only place callbacks run. One at a time off the head, so a callback
 * that posts, aborts or frees finds the lists consistent. The outermost
 * delivery of a freeing client destroys it: callers return right after. */
static void
webhook_deliver(struct webhook *wh)
{
	struct webhook_xfer *x;

	wh->depth++;
	while ((x = TAILQ_FIRST(&wh->done)) != NULL) {
		TAILQ_REMOVE(&wh->done, x, link);
		wh->inflight--;
		webhook_report(x);
		webhook_xfer_idle(wh, x);
	}
	if (--wh->depth == 0 && wh->freeing)
		webhook_destroy(wh);
}

static void
webhook_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	UNUSED(fd);
	UNUSED(what);
	webhook_deliver(arg);
}

/* ---- public ---- */

struct webhook *
webhook_new(struct event_base *base, const char *url, const char *auth_key,
    int64_t timeout_ms, int concurrency)
{
	struct webhook *wh = xcalloc(1, sizeof(*wh));
	long conns = concurrency > 0 ? concurrency : 1;
	CURLM *m;

	wh->base = base;
	wh->url = xstrdup(url);
	if (auth_key != NULL && *auth_key != '\0')
		wh->auth_header = xasprintf("x-ins-auth-key: %s", auth_key);
	wh->timeout_ms = timeout_ms;
	wh->concurrency = (size_t)conns;
	TAILQ_INIT(&wh->running);
	TAILQ_INIT(&wh->done);
	TAILQ_INIT(&wh->idle);
	LIST_INIT(&wh->socks);
	wh->ev_timer = webhook_event_new(base, -1, 0, webhook_on_timer, wh);
	wh->ev_deliver = webhook_event_new(base, -1, 0, webhook_on_deliver, wh);
	if ((wh->multi = curl_multi_init()) == NULL)
		webhook_oom();
	m = wh->multi;
	/* The connection cache is the multi handle's already; TLS sessions
	 * are each easy handle's unless shared: shared, a new connection
	 * resumes one (an abbreviated handshake, no chain to verify again)
	 * whichever handle made it. One thread: no lock callbacks. */
	if ((wh->share = curl_share_init()) == NULL ||
	    curl_share_setopt(wh->share, CURLSHOPT_SHARE,
		CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		webhook_oom();
	curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, webhook_on_socket);
	curl_multi_setopt(m, CURLMOPT_SOCKETDATA, wh);
	curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, webhook_on_timer_set);
	curl_multi_setopt(m, CURLMOPT_TIMERDATA, wh);
	/* One idle keep-alive connection per slot stays cached for reuse;
	 * the default cache would grow to 4x and the host cap is none. */
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, conns);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	log_info("webhook", "webhook client ready", "{s:I, s:i, s:b}",
	    "timeout_ms", (json_int_t)timeout_ms, "concurrency", (int)conns,
	    "auth_key_set", wh->auth_header != NULL);
	return wh;
}

/* What every post of x shares, set once for its easy handle: the
 * headers are x's own list nodes, of which only the webhook-id text
 * changes. */
static int
webhook_setup(struct webhook *wh, struct webhook_xfer *x)
{
	CURL *e = x->easy;
	long timeout = (long)wh->timeout_ms;
	long connect = timeout < TIMING_WEBHOOK_CONNECT_MS ?
	    timeout :
	    TIMING_WEBHOOK_CONNECT_MS;
	char *lines[WEBHOOK_NHDR];
	size_t n = 0;
	int rc;

	lines[n++] = "Content-Type: application/json";
	lines[n++] = "Accept: application/json";
	lines[n++] = x->id_header;
	if (wh->auth_header != NULL)
		lines[n++] = wh->auth_header;
	if (wh->sign != NULL) {
		x->sig_size = strlen(WEBHOOK_SIG_PREFIX) + sign_len(wh->sign) +
		    1;
		x->sig_header = xmalloc(x->sig_size);
		strcpy(x->sig_header, WEBHOOK_SIG_PREFIX);
		lines[n++] = x->ts_header;
		lines[n++] = x->sig_header;
	}
	/* Without this curl may wait up to 1 s for a 100 Continue. */
	lines[n++] = "Expect:";
	for (size_t i = 0; i < n; i++) {
		x->hdr[i].data = lines[i];
		x->hdr[i].next = i + 1 < n ? &x->hdr[i + 1] : NULL;
	}
	rc = curl_easy_setopt(e, CURLOPT_URL, wh->url);
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1);
	rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdr);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, WEBHOOK_USER_AGENT);
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
	rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect);
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* Ending a transfer mid-resolve detaches the resolver thread instead
	 * of joining it on our only thread. */
	rc |= curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, webhook_on_write);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, webhook_on_header);
	rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	/* curl's receive buffer, one per handle: 16 KiB by default, most of
	 * it never touched by a webhook's few hundred bytes of answer, yet
	 * with 1,000 requests in flight its pages cost ~3 MiB. The smallest
	 * (1 KiB) still takes a typical answer in one read; a long one (kept
	 * up to WEBHOOK_BODY_MAX) comes in more, smaller chunks. */
	rc |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, WEBHOOK_RECV_BUFFER);
	if (wh->ca_file != NULL)
		rc |= curl_easy_setopt(e, CURLOPT_CAINFO, wh->ca_file);
	/* Building the CA store from its file takes ~19 ms of the loop for
	 * Debian's bundle: curl (7.87+, OpenSSL) keeps the one it built in
	 * the multi handle for every later connection of every handle. Said
	 * here rather than left to curl's default (24 h, also how soon a
	 * replaced file is read again). */
	rc |= curl_easy_setopt(e, CURLOPT_CA_CACHE_TIMEOUT, WEBHOOK_CA_CACHE_S);
	rc |= curl_easy_setopt(e, CURLOPT_SHARE, wh->share);
	return rc != CURLE_OK ? -1 : 0;
}

/* An idle transfer, or a new one with its handle set up; NULL when curl
 * cannot make one. */
static struct webhook_xfer *
webhook_xfer_get(struct webhook *wh)
{
	struct webhook_xfer *x = TAILQ_FIRST(&wh->idle);

	if (x != NULL) {
		TAILQ_REMOVE(&wh->idle, x, link);
		wh->nidle--;
		return x;
	}
	x = xcalloc(1, sizeof(*x));
	x->easy = curl_easy_init();
	if (x->easy == NULL || webhook_setup(wh, x) != 0) {
		webhook_xfer_free(x);
		return NULL;
	}
	return x;
}

/* {"to":...,"content":...} as json_dumps(JSON_COMPACT) would write it;
 * -1 on NULL or invalid UTF-8 in either string. */
static int
webhook_body(struct jsonbuf *b, const char *to, const char *content)
{
	jsonbuf_reset(b);
	if (to == NULL || content == NULL)
		return -1;
	jsonbuf_raw(b, "{\"to\":", 6);
	if (jsonbuf_string(b, to) != 0)
		return -1;
	jsonbuf_raw(b, ",\"content\":", 11);
	if (jsonbuf_string(b, content) != 0)
		return -1;
	jsonbuf_raw(b, "}", 1);
	return 0;
}

/* What changes from one post of x to the next. */
static int
webhook_prepare(struct webhook_xfer *x, int64_t id, webhook_done_cb cb,
    void *arg)
{
	const char *body = jsonbuf_text(&x->req);
	int rc;

	snprintf(x->id_header, sizeof(x->id_header),
	    WEBHOOK_ID_PREFIX "msg_%lld", (long long)id);
	x->id = id;
	x->cb = cb;
	x->arg = arg;
	x->errbuf[0] = '\0';
	if (x->body != NULL)
		x->body[0] = '\0';
	x->body_len = 0;
	x->body_truncated = false;
	x->retry_after_s = -1;
	x->code = CURLE_OK;
	x->http_status = 0;
	x->new_conns = 0;
	x->elapsed_ms = 0;
	x->aborted = false;
	x->started_ms = util_now_ms();
	rc = curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)x->req.len);
	rc |= curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, body);
	return rc != CURLE_OK ? -1 : 0;
}

/* The Standard Webhooks headers of this attempt: the timestamp is taken
 * now, so a retry is signed afresh, while the id (msg_<id>) stays the
 * same for every attempt of a message, for receivers that drop repeats. */
static int
webhook_sign(struct webhook *wh, struct webhook_xfer *x)
{
	const size_t plen = strlen(WEBHOOK_SIG_PREFIX);
	int64_t ts = util_wall_ms() / 1000;

	if (wh->sign == NULL)
		return 0;
	snprintf(x->ts_header, sizeof(x->ts_header), "webhook-timestamp: %lld",
	    (long long)ts);
	return sign_message(wh->sign, x->id_header + strlen(WEBHOOK_ID_PREFIX),
	    ts, jsonbuf_text(&x->req), x->req.len, x->sig_header + plen,
	    x->sig_size - plen);
}

void
webhook_set_secret(struct webhook *wh, const char *secrets)
{
	/* Transfers set up before would lack the header lines. */
	assert(wh->nidle == 0 && wh->inflight == 0 && wh->sign == NULL);
	if (secrets == NULL || *secrets == '\0')
		return;
	wh->sign = sign_new(secrets);
	log_info("webhook", "webhook requests are signed", "{s:i}", "secrets",
	    (int)sign_count(wh->sign));
}

int
webhook_post(struct webhook *wh, int64_t id, const char *to,
    const char *content, webhook_done_cb cb, void *arg)
{
	struct webhook_xfer *x;

	if (wh->freeing || wh->inflight >= wh->concurrency)
		return -1;
	if ((x = webhook_xfer_get(wh)) == NULL) {
		log_error("webhook", "cannot set up request", "{s:I}", "id",
		    (json_int_t)id);
		return -1;
	}
	if (webhook_body(&x->req, to, content) != 0) {
		log_warn("webhook", "cannot build request body", "{s:I}", "id",
		    (json_int_t)id);
		webhook_xfer_idle(wh, x);
		return -1;
	}
	/* add_handle only arms the timer: nothing completes in here. */
	if (webhook_prepare(x, id, cb, arg) != 0 || webhook_sign(wh, x) != 0 ||
	    curl_multi_add_handle(wh->multi, x->easy) != CURLM_OK) {
		log_error("webhook", "cannot set up request", "{s:I}", "id",
		    (json_int_t)id);
		webhook_xfer_free(x);
		return -1;
	}
	TAILQ_INSERT_TAIL(&wh->running, x, link);
	wh->inflight++;
	return 0;
}

void
webhook_set_ca_file(struct webhook *wh, const char *path)
{
	free(wh->ca_file);
	wh->ca_file = path != NULL && *path != '\0' ? xstrdup(path) : NULL;
}

size_t
webhook_inflight(const struct webhook *wh)
{
	return wh->inflight;
}

size_t
webhook_capacity(const struct webhook *wh)
{
	return wh->inflight < wh->concurrency ? wh->concurrency - wh->inflight :
						0;
}

void
webhook_abort_all(struct webhook *wh)
{
	struct webhook_xfer *x;

	while ((x = TAILQ_FIRST(&wh->running)) != NULL) {
		x->aborted = true;
		webhook_xfer_retire(wh, x);
	}
	/* Must be last: it may destroy wh (webhook_free). */
	webhook_deliver(wh);
}

void
webhook_free(struct webhook *wh)
{
	if (wh == NULL || wh->freeing)
		return;
	wh->freeing = true;
	webhook_abort_all(wh);
}
