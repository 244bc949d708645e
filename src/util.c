/* util.c - allocation that aborts on OOM, clocks, backoff, randomness. */
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void
util_oom(void)
{
	/* An allocation failure leaves nothing sane to do in one thread. */
	fputs("{\"level\":\"error\",\"msg\":\"out of memory\"}\n", stderr);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		util_oom();
	return p;
}

void *
xcalloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);

	if (p == NULL)
		util_oom();
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		util_oom();
	return p;
}

int64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
util_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Timestamps are formatted for the second they fall in, and a busy second
 * asks for the same one over and over (every log line, every /health and
 * every Date header): the text of the last second is kept and reused, so
 * gmtime_r and strftime run once a second instead of once per call. One
 * thread, so one cache each, no lock. */
struct util_second {
	int64_t sec;
	char text[40];
	size_t len;
};

const char *
util_instance(void)
{
	static char name[300];

	if (name[0] == '\0') {
		char host[256];

		if (gethostname(host, sizeof(host)) != 0)
			strcpy(host, "unknown");
		host[sizeof(host) - 1] = '\0';
		snprintf(name, sizeof(name), "%s:%ld", host, (long)getpid());
	}
	return name;
}

static int64_t
util_floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* "2026-11-27T10:30:00", without a zone. */
static const struct util_second *
util_second_iso(int64_t sec)
{
	static struct util_second c = { .sec = INT64_MIN };
	time_t t = (time_t)sec;
	struct tm tm;

	if (c.sec != sec) {
		gmtime_r(&t, &tm);
		c.len = strftime(c.text, sizeof(c.text), "%Y-%m-%dT%H:%M:%S",
		    &tm);
		c.sec = sec;
	}
	return &c;
}

void
util_rfc3339(int64_t wall_ms, int with_ms, char *buf, size_t len)
{
	int64_t sec = util_floor_div(wall_ms, 1000);
	const struct util_second *c = util_second_iso(sec);
	int ms = (int)(wall_ms - sec * 1000);
	char tail[8];
	size_t n = 0;

	if (with_ms) {
		tail[n++] = '.';
		tail[n++] = (char)('0' + ms / 100);
		tail[n++] = (char)('0' + ms / 10 % 10);
		tail[n++] = (char)('0' + ms % 10);
	}
	tail[n++] = 'Z';
	if (len == 0)
		return;
	if (c->len + n >= len) {
		/* Too small: cut, as snprintf would. */
		snprintf(buf, len, "%s%.*s", c->text, (int)n, tail);
		return;
	}
	memcpy(buf, c->text, c->len);
	memcpy(buf + c->len, tail, n);
	buf[c->len + n] = '\0';
}

const char *
util_http_date(int64_t wall_ms)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	static struct util_second c = { .sec = INT64_MIN };
	int64_t sec = util_floor_div(wall_ms, 1000);
	time_t t = (time_t)sec;
	struct tm tm;

	if (c.sec != sec) {
		/* Not strftime's %a and %b: they follow the locale. */
		gmtime_r(&t, &tm);
		snprintf(c.text, sizeof(c.text),
		    "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
		    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
		    tm.tm_hour, tm.tm_min, tm.tm_sec);
		c.sec = sec;
	}
	return c.text;
}

struct timeval
util_tv(int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	return tv;
}

/* xorshift64*: cheap and good enough for jitter and fake data, not secrets.
 * Seeded without waiting for the kernel's pool (GRND_NONBLOCK): early in a
 * container's boot, waiting would stall the loop, and the clock will do. */
static uint64_t util_rng_state;

uint64_t
util_rand(void)
{
	uint64_t x;

	if (util_rng_state == 0) {
		if (getrandom(&util_rng_state, sizeof(util_rng_state),
			GRND_NONBLOCK) != sizeof(util_rng_state) ||
		    util_rng_state == 0)
			util_rng_state = (uint64_t)util_wall_ms() | 1;
	}
	x = util_rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	util_rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

uint64_t
util_rand_below(uint64_t n)
{
	return n ? util_rand() % n : 0;
}

int64_t
util_backoff_ms(int64_t base_ms, int64_t cap_ms, unsigned attempt,
    unsigned jitter_pct)
{
	int64_t d = base_ms;
	int64_t span;

	while (attempt-- > 0 && d < cap_ms)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	span = d * (int64_t)jitter_pct / 100;
	if (span > 0)
		d += (int64_t)util_rand_below((uint64_t)(2 * span + 1)) - span;
	return d < 0 ? 0 : d;
}

/* Every client connection, webhook transfer and database link is a
 * descriptor, and a shell's `ulimit -n 1024` is far below what one loop
 * serves: once accept() meets EMFILE nothing new gets in. The hard limit
 * is ours to take; raising the soft one needs no privilege. */
long
util_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = was;
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LONG_MAX ?
	    LONG_MAX :
	    (long)rl.rlim_cur;
}
