/* app.c - owns the event base and every subsystem; runs and stops them.
 *
 * Shutdown follows pgbouncer's modes: the first SIGTERM/SIGINT drains
 * (stop accepting, stop the timers, let what is in flight finish, bounded
 * by SHUTDOWN_TIMEOUT), a second one leaves the loop at once. With
 * SHUTDOWN_DELAY the drain starts that much later: meanwhile /ready says
 * 503 and everything else goes on, so that load balancers stop routing
 * here before the listener closes. */
#include <signal.h>
#include <stdlib.h>

#include "app.h"
#include "cacheheal.h"
#include "backlog.h"
#include "docs.h"
#include "http_server.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "migrate.h"
#include "pg.h"
#include "pgpool.h"
#include "producer.h"
#include "redis.h"
#include "resolve.h"
#include "scheduler.h"
#include "service.h"
#include "timing.h"
#include "util.h"
#include "webhook.h"

/* A Redis command that has not answered in this long is given up on. */

#define APP_DRAIN_CHECK_MS 50
/* After the deadline, time for the 503s we just wrote to reach clients. */
#define APP_FLUSH_MS 100

static bool
app_idle(const struct app *app)
{
	return http_server_inflight(app->http) == 0 &&
	    !sched_busy(app->sched) && pg_pending(app->pg) == 0 &&
	    pgpool_pending(app->apipool) == 0 &&
	    redis_pending(app->redis) == 0 && !prod_busy(app->producer) &&
	    !backlog_busy(app->backlog);
}

static void
app_on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;
	struct timeval flush = util_tv(APP_FLUSH_MS);

	UNUSED(fd);
	UNUSED(what);
	if (app_idle(app)) {
		log_info("app", "drained, exiting", NULL);
		flush = util_tv(0);
	} else if (util_now_ms() >= app->drain_deadline_ms) {
		log_warn("app",
		    "shutdown deadline passed, abandoning work in "
		    "flight",
		    "{s:I, s:I, s:I, s:I, s:I}", "http_requests",
		    (json_int_t)http_server_inflight(app->http),
		    "webhook_requests", (json_int_t)sched_inflight(app->sched),
		    "unrecorded_outcomes",
		    (json_int_t)sched_unrecorded(app->sched), "db_queries",
		    (json_int_t)(pg_pending(app->pg) +
			pgpool_pending(app->apipool)),
		    "redis_commands", (json_int_t)redis_pending(app->redis));
		http_server_abort_inflight(app->http);
		/* Their leases run out and they are sent again later. */
		webhook_abort_all(app->webhook);
	} else {
		return;
	}
	event_del(app->ev_drain);
	app->state = APP_DONE;
	event_base_loopexit(app->base, &flush);
}

static void
app_drain(struct app *app)
{
	struct timeval tv = util_tv(APP_DRAIN_CHECK_MS);

	app->state = APP_DRAINING;
	app->drain_deadline_ms = util_now_ms() + app->cfg->shutdown_timeout_ms;
	http_server_stop_accepting(app->http);
	prod_stop(app->producer);
	backlog_stop(app->backlog);
	sched_stop(app->sched);
	event_add(app->ev_drain, &tv);
}

static void
app_on_delay_over(evutil_socket_t fd, short what, void *arg)
{
	struct app *app = arg;

	UNUSED(fd);
	UNUSED(what);
	log_info("app", "shutdown delay over, draining", "{s:I}", "deadline_ms",
	    (json_int_t)app->cfg->shutdown_timeout_ms);
	app_drain(app);
}

static void
app_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;
	struct timeval delay = util_tv(app->cfg->shutdown_delay_ms);

	UNUSED(what);
	if (app->state != APP_RUNNING) {
		log_warn("app", "second signal, exiting now", "{s:i}", "signal",
		    (int)sig);
		app->exit_code = 1;
		event_base_loopbreak(app->base);
		return;
	}
	log_info("app", "shutting down", "{s:i, s:I, s:I}", "signal", (int)sig,
	    "delay_ms", (json_int_t)app->cfg->shutdown_delay_ms, "deadline_ms",
	    (json_int_t)app->cfg->shutdown_timeout_ms);
	service_set_shutting_down(app->svc);
	if (app->cfg->shutdown_delay_ms > 0) {
		app->state = APP_DELAYING;
		event_add(app->ev_delay, &delay);
		return;
	}
	app_drain(app);
}

/* SIGHUP usually asks a daemon to reopen its log file; ours logs to
 * stdout and has nothing to reopen or reload (the environment is fixed at
 * start), so the signal is noted and otherwise ignored, in every state:
 * left at its default it would end the process with work in flight. */
static void
app_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	UNUSED(sig);
	UNUSED(what);
	UNUSED(arg);
	log_info("app", "SIGHUP ignored", "{s:s}", "reason",
	    "logs go to stdout and the environment is read once: nothing to "
	    "reopen or reload");
}

struct app *
app_new(const struct config *cfg)
{
	struct app *app = xcalloc(1, sizeof(*app));
	struct event_config *ec = event_config_new();

	app->cfg = cfg;
	/* Millisecond timers (deadlines, short test intervals) need the
	 * precise clock rather than the coarse one. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	event_config_set_max_dispatch_interval(ec, NULL, LOOP_BURST,
	    LOOP_PRIO_REST);
	app->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (app->base == NULL ||
	    event_base_priority_init(app->base, LOOP_PRIORITIES) != 0) {
		log_error("app", "cannot create the event base", NULL);
		if (app->base != NULL)
			event_base_free(app->base);
		free(app);
		return NULL;
	}
	app->docs = docs_new(cfg->swagger_dir);
	app->resolver = resolver_new(app->base);
	app->pg = pg_new(app->base, app->resolver, cfg->database_dsn,
	    cfg->db_query_timeout_ms);
	pg_set_pipeline_depth(app->pg, cfg->db_pipeline_depth);
	pg_set_metrics(app->pg, &metrics.pg_delivery);
	migrate_attach(app->pg);
	/* The API's own connections wait for this one's migrations. */
	app->apipool = pgpool_new(app->base, app->resolver, cfg->database_dsn,
	    cfg->db_query_timeout_ms, cfg->api_db_connections, app->pg);
	app->redis = redis_new(app->base, app->resolver, cfg->redis_host,
	    cfg->redis_port, cfg->redis_password, cfg->redis_db,
	    TIMING_REDIS_OP_MS);
	app->webhook = webhook_new(app->base, cfg->webhook_url,
	    cfg->webhook_auth_key, cfg->webhook_timeout_ms,
	    cfg->webhook_concurrency);
	webhook_set_ca_file(app->webhook, cfg->webhook_ca_file);
	webhook_set_secret(app->webhook, cfg->webhook_secret);
	app->producer = prod_new(app->base, app->pg, cfg->producer_interval_ms);
	app->backlog = backlog_new(app->base, app->pg);
	app->sched = sched_new(app->base, cfg, app->pg, app->webhook,
	    app->redis);
	app->cacheheal = cacheheal_new(app->base, app->pg, app->redis,
	    cfg->cache_ttl_ms);
	app->svc = service_new(app->base, app->pg, app->apipool, app->redis,
	    app->sched, (size_t)cfg->api_db_queue);
	app->http = http_server_new(app->base, api_routes, api_routes_count,
	    &app->api, cfg->request_timeout_ms);
	app->api = (struct api) { .svc = app->svc,
		.http = app->http,
		.docs = app->docs,
		.token = cfg->api_token };
	if (cfg->api_token[0] == '\0')
		log_warn("api",
		    "API_TOKEN is not set: the mutating endpoints (every POST) "
		    "are open to anyone who can reach the port",
		    NULL);
	app->ev_sigterm = evsignal_new(app->base, SIGTERM, app_on_signal, app);
	app->ev_sigint = evsignal_new(app->base, SIGINT, app_on_signal, app);
	app->ev_sighup = evsignal_new(app->base, SIGHUP, app_on_sighup, app);
	app->ev_delay = evtimer_new(app->base, app_on_delay_over, app);
	app->ev_drain = event_new(app->base, -1, EV_PERSIST, app_on_drain_check,
	    app);
	if (http_server_listen(app->http, cfg->bind_addr, cfg->port) != 0) {
		app_free(app);
		return NULL;
	}
	return app;
}

int
app_run(struct app *app)
{
	event_add(app->ev_sigterm, NULL);
	event_add(app->ev_sigint, NULL);
	event_add(app->ev_sighup, NULL);
	pg_start(app->pg);
	pgpool_start(app->apipool);
	redis_start(app->redis);
	prod_start(app->producer);
	backlog_start(app->backlog);
	if (app->cfg->autostart)
		sched_start(app->sched);
	log_info("app", "started", "{s:s, s:s}", "version", GOPULSE_VERSION,
	    "event_method", event_base_get_method(app->base));
	event_base_dispatch(app->base);
	log_info("app", "stopped", "{s:i}", "exit_code", app->exit_code);
	return app->exit_code;
}

/* Order matters: requests are answered before evhttp frees them; the
 * webhook and the database fail their leftover work (whose callbacks touch
 * the scheduler, the producer, request contexts and Redis) before those
 * owners go; libraries tied to the base go before the base. */
void
app_free(struct app *app)
{
	if (app == NULL)
		return;
	http_server_free(app->http);
	webhook_free(app->webhook);
	pg_free(app->pg);
	pgpool_free(app->apipool);
	redis_free(app->redis);
	prod_free(app->producer);
	backlog_free(app->backlog);
	sched_free(app->sched);
	cacheheal_free(app->cacheheal);
	service_free(app->svc);
	resolver_free(app->resolver);
	docs_free(app->docs);
	event_free(app->ev_sigterm);
	event_free(app->ev_sigint);
	event_free(app->ev_sighup);
	event_free(app->ev_delay);
	event_free(app->ev_drain);
	event_base_free(app->base);
	free(app);
}
