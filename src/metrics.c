/* metrics.c - the process's Prometheus metrics and their text format.
 *
 * The writer walks the struct in a fixed order, one family after another,
 * each with its HELP and TYPE: the names, labels and meanings here are
 * the ones the README's Monitoring section lists (a test compares them). */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#include "circuit.h"
#include "common.h"
#include "metrics.h"
#include "util.h"

struct metrics metrics;

/* clang-format off */
static const int64_t webhook_bounds[] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000,
};
static const char *const webhook_le[] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
	"1", "2.5", "5", "10", "30",
};
static const int64_t http_bounds[] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 500000, 1000000, 2500000, 5000000,
};
static const char *const http_le[] = {
	"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
	"0.25", "0.5", "1", "2.5", "5",
};
/* clang-format on */

const struct metrics_buckets metrics_webhook_buckets = {
	ARRAY_LEN(webhook_bounds), webhook_bounds, webhook_le
};
const struct metrics_buckets metrics_http_buckets = { ARRAY_LEN(http_bounds),
	http_bounds, http_le };

static const char *const outcome_names[METRICS_OUT_N] = {
	[METRICS_OUT_2XX] = "2xx",
	[METRICS_OUT_3XX] = "3xx",
	[METRICS_OUT_4XX] = "4xx",
	[METRICS_OUT_5XX] = "5xx",
	[METRICS_OUT_TIMEOUT] = "timeout",
	[METRICS_OUT_ERROR] = "error",
	[METRICS_OUT_ABORTED] = "aborted",
};
static const char *const fail_names[METRICS_FAIL_N] = {
	[METRICS_FAIL_4XX] = "http_4xx",
	[METRICS_FAIL_EXHAUSTED] = "attempts_exhausted",
};
static const char *const cache_names[METRICS_CACHE_N] = {
	[METRICS_CACHE_OK] = "ok",
	[METRICS_CACHE_ERROR] = "error",
	[METRICS_CACHE_SKIPPED] = "skipped",
};

void
metrics_init(void)
{
	memset(&metrics, 0, sizeof(metrics));
	metrics.pending = metrics.due = -1;
	metrics.start_wall_ms = util_wall_ms();
}

void
metrics_hist_observe(struct metrics_hist *h, const struct metrics_buckets *b,
    int64_t us)
{
	size_t i = 0;

	if (us < 0)
		us = 0;
	/* A dozen bounds: a linear search is as fast as any. */
	while (i < b->n && us > b->bound_us[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum_us += (uint64_t)us;
}

void
metrics_webhook_observe(enum metrics_outcome out, int64_t elapsed_ms)
{
	metrics_hist_observe(&metrics.webhook[out], &metrics_webhook_buckets,
	    elapsed_ms * 1000);
}

void
metrics_http_observe(const char *route, int code, int64_t us)
{
	struct metrics_http_route *r = NULL;
	struct metrics_http_code *c = NULL;

	if (route == NULL)
		route = "other";
	for (size_t i = 0; i < metrics.nroutes && r == NULL; i++)
		if (metrics.routes[i].route == route)
			r = &metrics.routes[i];
	if (r == NULL && metrics.nroutes < METRICS_HTTP_ROUTES_MAX) {
		r = &metrics.routes[metrics.nroutes++];
		r->route = route;
	}
	for (size_t i = 0; i < metrics.ncodes && c == NULL; i++)
		if (metrics.codes[i].route == route &&
		    metrics.codes[i].code == code)
			c = &metrics.codes[i];
	if (c == NULL && metrics.ncodes < METRICS_HTTP_CODES_MAX) {
		c = &metrics.codes[metrics.ncodes++];
		c->route = route;
		c->code = code;
	}
	if (r == NULL || c == NULL) {
		metrics.http_unrecorded++;
		return;
	}
	metrics_hist_observe(&r->hist, &metrics_http_buckets, us);
	c->count++;
}

/* ---- the text format ---- */

static void
metrics_head(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

static void
metrics_u64(struct evbuffer *out, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metrics_head(out, name, type, help);
	evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, v);
}

/* Microseconds as seconds, exactly: no floating point on either side. */
static void
metrics_seconds(struct evbuffer *out, uint64_t us)
{
	evbuffer_add_printf(out, "%" PRIu64 ".%06" PRIu64, us / 1000000,
	    us % 1000000);
}

/* One histogram series; labels "" or `k="v",` (with the comma). */
static void
metrics_hist_write(struct evbuffer *out, const char *name, const char *labels,
    const struct metrics_hist *h, const struct metrics_buckets *b)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < b->n; i++) {
		cum += h->bucket[i];
		evbuffer_add_printf(out, "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n",
		    name, labels, b->le[i], cum);
	}
	evbuffer_add_printf(out, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", name,
	    labels, h->count);
	evbuffer_add_printf(out, "%s_sum{%.*s} ", name,
	    (int)(*labels ? strlen(labels) - 1 : 0), labels);
	metrics_seconds(out, h->sum_us);
	evbuffer_add_printf(out, "\n%s_count{%.*s} %" PRIu64 "\n", name,
	    (int)(*labels ? strlen(labels) - 1 : 0), labels, h->count);
}

static void
metrics_build_info(struct evbuffer *out)
{
	const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
	int pq = PQlibVersion();

	metrics_head(out, "gopulse_build_info", "gauge",
	    "Always 1; the labels name the version and the libraries it runs "
	    "with.");
	evbuffer_add_printf(out,
	    "gopulse_build_info{version=\"%s\",libevent=\"%s\","
	    "libcurl=\"%s\",libpq=\"%d.%d\",hiredis=\"%d.%d.%d\","
	    "openssl=\"%s\"} 1\n",
	    GOPULSE_VERSION, event_get_version(), curl->version, pq / 10000,
	    pq % 10000, HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
	    OpenSSL_version(OPENSSL_VERSION_STRING));
}

static void
metrics_messages(struct evbuffer *out)
{
	metrics_u64(out, "gopulse_messages_produced_total", "counter",
	    "Messages the producer inserted.", metrics.produced);
	metrics_u64(out, "gopulse_messages_sent_total", "counter",
	    "Messages delivered (2xx) and recorded as sent.", metrics.sent);
	metrics_u64(out, "gopulse_messages_retried_total", "counter",
	    "Failed attempts recorded with the message due again later.",
	    metrics.retried);
	metrics_head(out, "gopulse_messages_failed_total", "counter",
	    "Messages recorded as failed for good, by reason.");
	for (size_t i = 0; i < METRICS_FAIL_N; i++)
		evbuffer_add_printf(out,
		    "gopulse_messages_failed_total{reason=\"%s\"} %" PRIu64
		    "\n",
		    fail_names[i], metrics.failed[i]);
	if (metrics.pending >= 0) {
		metrics_u64(out, "gopulse_messages_pending", "gauge",
		    "Pending messages as last counted (every 15 s).",
		    (uint64_t)metrics.pending);
		metrics_u64(out, "gopulse_messages_due", "gauge",
		    "Of the pending messages, those due as last counted.",
		    (uint64_t)metrics.due);
	}
}

static void
metrics_webhook(struct evbuffer *out)
{
	char labels[32];

	metrics_head(out, "gopulse_webhook_request_duration_seconds",
	    "histogram",
	    "Webhook attempts by outcome class, and how long they took.");
	for (size_t i = 0; i < METRICS_OUT_N; i++) {
		snprintf(labels, sizeof(labels), "outcome=\"%s\",",
		    outcome_names[i]);
		metrics_hist_write(out,
		    "gopulse_webhook_request_duration_seconds", labels,
		    &metrics.webhook[i], &metrics_webhook_buckets);
	}
	metrics_u64(out, "gopulse_webhook_requests_in_flight", "gauge",
	    "Webhook requests posted and not finished.",
	    (uint64_t)metrics.webhook_inflight);
}

static void
metrics_http(struct evbuffer *out)
{
	char labels[96];

	metrics_head(out, "gopulse_http_requests_total", "counter",
	    "API answers by route and status code.");
	for (size_t i = 0; i < metrics.ncodes; i++)
		evbuffer_add_printf(out,
		    "gopulse_http_requests_total{route=\"%s\",code=\"%d\"} "
		    "%" PRIu64 "\n",
		    metrics.codes[i].route, metrics.codes[i].code,
		    metrics.codes[i].count);
	metrics_head(out, "gopulse_http_request_duration_seconds", "histogram",
	    "API requests by route, from their arrival to their answer.");
	for (size_t i = 0; i < metrics.nroutes; i++) {
		snprintf(labels, sizeof(labels), "route=\"%s\",",
		    metrics.routes[i].route);
		metrics_hist_write(out, "gopulse_http_request_duration_seconds",
		    labels, &metrics.routes[i].hist, &metrics_http_buckets);
	}
}

static void
metrics_links(struct evbuffer *out)
{
	metrics_head(out, "gopulse_postgres_up", "gauge",
	    "1 when the pool has a ready PostgreSQL connection (delivery: "
	    "the scheduler's, api: the API's own).");
	evbuffer_add_printf(out,
	    "gopulse_postgres_up{pool=\"delivery\"} %d\n"
	    "gopulse_postgres_up{pool=\"api\"} %d\n",
	    metrics.pg_delivery.ready > 0, metrics.pg_api.ready > 0);
	metrics_head(out, "gopulse_postgres_reconnects_total", "counter",
	    "PostgreSQL reconnect attempts after a failed or lost "
	    "connection.");
	evbuffer_add_printf(out,
	    "gopulse_postgres_reconnects_total{pool=\"delivery\"} %" PRIu64 "\n"
	    "gopulse_postgres_reconnects_total{pool=\"api\"} %" PRIu64 "\n",
	    metrics.pg_delivery.reconnects, metrics.pg_api.reconnects);
	metrics_u64(out, "gopulse_redis_up", "gauge",
	    "1 when the Redis connection is ready.", metrics.redis.ready > 0);
	metrics_u64(out, "gopulse_redis_reconnects_total", "counter",
	    "Redis reconnect attempts after a failed or lost connection.",
	    metrics.redis.reconnects);
	metrics_head(out, "gopulse_cache_writes_total", "counter",
	    "Cache entries of sent messages, by result (skipped: Redis was "
	    "not ready, the entry is missed).");
	for (size_t i = 0; i < METRICS_CACHE_N; i++)
		evbuffer_add_printf(out,
		    "gopulse_cache_writes_total{result=\"%s\"} %" PRIu64 "\n",
		    cache_names[i], metrics.cache_writes[i]);
	metrics_u64(out, "gopulse_circuit_state", "gauge",
	    "The receiver's circuit: 0 closed, 1 open, 2 half-open.",
	    (uint64_t)(metrics.circuit != NULL ? metrics.circuit->state :
						 CIRCUIT_CLOSED));
	metrics_u64(out, "gopulse_scheduler_active", "gauge",
	    "1 while automatic sending is on.", (uint64_t)metrics.sending);
}

/* The usual process_* family, read from the kernel at each scrape (the
 * same files the official clients read). */
static void
metrics_process(struct evbuffer *out)
{
	struct rusage ru;
	struct rlimit rl;
	unsigned long long vsz = 0, rss = 0;
	long page = sysconf(_SC_PAGESIZE);
	uint64_t cpu_us = 0, fds = 0;
	FILE *f;
	DIR *d;

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 +
		    (uint64_t)ru.ru_utime.tv_usec +
		    (uint64_t)ru.ru_stime.tv_sec * 1000000 +
		    (uint64_t)ru.ru_stime.tv_usec;
	metrics_head(out, "process_cpu_seconds_total", "counter",
	    "Total user and system CPU time spent in seconds.");
	evbuffer_add_printf(out, "process_cpu_seconds_total ");
	metrics_seconds(out, cpu_us);
	evbuffer_add(out, "\n", 1);
	if ((f = fopen("/proc/self/statm", "r")) != NULL) {
		if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
			vsz = rss = 0;
		fclose(f);
	}
	metrics_u64(out, "process_resident_memory_bytes", "gauge",
	    "Resident memory size in bytes.", (uint64_t)rss * (uint64_t)page);
	metrics_u64(out, "process_virtual_memory_bytes", "gauge",
	    "Virtual memory size in bytes.", (uint64_t)vsz * (uint64_t)page);
	if ((d = opendir("/proc/self/fd")) != NULL) {
		struct dirent *e;

		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				fds++;
		closedir(d);
		/* Not the one opendir itself holds. */
		fds = fds > 0 ? fds - 1 : 0;
	}
	metrics_u64(out, "process_open_fds", "gauge",
	    "Number of open file descriptors.", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		metrics_u64(out, "process_max_fds", "gauge",
		    "Maximum number of open file descriptors.",
		    (uint64_t)rl.rlim_cur);
	metrics_head(out, "process_start_time_seconds", "gauge",
	    "Start time of the process since unix epoch in seconds.");
	evbuffer_add_printf(out, "process_start_time_seconds ");
	metrics_seconds(out, (uint64_t)metrics.start_wall_ms * 1000);
	evbuffer_add(out, "\n", 1);
}

void
metrics_write(struct evbuffer *out)
{
	metrics_build_info(out);
	metrics_messages(out);
	metrics_webhook(out);
	metrics_http(out);
	metrics_links(out);
	metrics_process(out);
}
