/* fuzz_http.c - the whole request path: bytes in, evhttp's parser, the
 * router, a handler, the reply out, over a Unix socket (no port) and with
 * no database: every driver is made as app_new makes it but none is
 * started, so whatever waits on PostgreSQL answers 503 at once.
 *
 * Per input: connect, write it all, half-close, run the loop until the
 * server closes (or a bound of loop turns), read whatever came back. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "config.h"
#include "docs.h"
#include "fuzz.h"
#include "http_server.h"
#include "log.h"
#include "pg.h"
#include "pgpool.h"
#include "redis.h"
#include "resolve.h"
#include "scheduler.h"
#include "service.h"
#include "webhook.h"

/* A request's own deadline (REQUEST_TIMEOUT), short: nothing answers. */
#define FUZZ_REQUEST_TIMEOUT_MS 2
#define FUZZ_HEALTH "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
/* Loop turns an input may take before it counts as a hang. */
#define FUZZ_TURNS 2000

static struct {
	struct event_base *base;
	struct config cfg;
	struct api api;
	struct http_server *http;
	struct sockaddr_un addr;
	socklen_t addrlen;
} fz;

static void
fuzz_setup(void)
{
	struct resolver *res;
	struct pg_conn *pg;
	struct pgpool *pool;
	struct redis_client *redis;
	struct webhook *wh;
	struct sched *sched;
	char err[512];
	int fd;

	log_set_level(LOG_ERROR);
	/* Defaults only: the environment is not the input here. */
	for (size_t i = 0; i < config_nvars; i++)
		unsetenv(config_vars[i].name);
	if (config_load(&fz.cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_http: %s\n", err);
		abort();
	}
	fz.base = event_base_new();
	res = resolver_new(fz.base);
	pg = pg_new(fz.base, res, fz.cfg.database_dsn, 1000);
	pool = pgpool_new(fz.base, res, fz.cfg.database_dsn, 1000, 0, pg);
	redis = redis_new(fz.base, res, fz.cfg.redis_host, fz.cfg.redis_port,
	    "", 0, 1000);
	wh = webhook_new(fz.base, "http://127.0.0.1:9/webhook", "", 1000, 1);
	sched = sched_new(fz.base, &fz.cfg, pg, wh, redis);
	fz.api.svc = service_new(fz.base, pg, pool, redis, sched, 16);
	fz.api.docs = docs_new(fz.cfg.swagger_dir);
	fz.http = http_server_new(fz.base, api_routes, api_routes_count,
	    &fz.api, FUZZ_REQUEST_TIMEOUT_MS);
	fz.api.http = fz.http;
	/* An abstract Unix name: no file, no port, gone with the process. */
	fz.addr.sun_family = AF_UNIX;
	snprintf(fz.addr.sun_path + 1, sizeof(fz.addr.sun_path) - 1,
	    "gopulse-fuzz-%d", (int)getpid());
	fz.addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(fz.addr.sun_path + 1));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&fz.addr, fz.addrlen) != 0 ||
	    listen(fd, 16) != 0 || http_server_listen_fd(fz.http, fd) != 0) {
		perror("fuzz_http: listen");
		abort();
	}
}

/* The answer's first bytes, for the one check that knows the answer. */
static char fuzz_head[16];
static size_t fuzz_head_len;

/* Reads what is there; 1 once the server has closed, 0 otherwise. */
static int
fuzz_read(int fd)
{
	char buf[16384];

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n > 0) {
			size_t k = sizeof(fuzz_head) - 1 - fuzz_head_len;

			k = (size_t)n < k ? (size_t)n : k;
			memcpy(fuzz_head + fuzz_head_len, buf, k);
			fuzz_head_len += k;
			continue;
		}
		if (n == 0)
			return 1;
		return errno == EAGAIN || errno == EINTR ? 0 : 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd, turns, closed = 0;
	size_t off = 0;

	if (fz.base == NULL)
		fuzz_setup(); /* once, on the first input */
	memset(fuzz_head, 0, sizeof(fuzz_head));
	fuzz_head_len = 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&fz.addr, fz.addrlen) == 0);
	for (turns = 0; turns < FUZZ_TURNS && !closed; turns++) {
		if (off < size) {
			ssize_t n = write(fd, data + off, size - off);

			if (n > 0)
				off += (size_t)n;
			else if (errno != EAGAIN)
				off = size; /* the server hung up first */
			if (off == size)
				shutdown(fd, SHUT_WR);
		} else if (size == 0 && turns == 0) {
			shutdown(fd, SHUT_WR);
		}
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
		closed = fuzz_read(fd);
		/* Past the writes, wait for the loop (request deadlines,
		 * evhttp's own timers) rather than spin. */
		if (!closed && off == size)
			event_base_loop(fz.base, EVLOOP_ONCE);
	}
	close(fd);
	/* Let evhttp see the close and free the connection. */
	for (int i = 0; i < 4; i++)
		event_base_loop(fz.base, EVLOOP_NONBLOCK);
	FUZZ_CHECK(closed);
	/* Liveness: a well-formed first request is answered, whatever
	 * follows it on the connection. */
	if (size >= sizeof(FUZZ_HEALTH) - 1 &&
	    memcmp(data, FUZZ_HEALTH, sizeof(FUZZ_HEALTH) - 1) == 0)
		FUZZ_CHECK(strncmp(fuzz_head, "HTTP/1.1 200", 12) == 0);
	return 0;
}
