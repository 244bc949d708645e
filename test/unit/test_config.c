/* test_config.c - durations, every variable's validation, defaults. */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"

static const char *const all_vars[] = {
	"DATABASE_DSN", "REDIS_ADDR", "REDIS_PASSWORD", "REDIS_DB",
	"WEBHOOK_HOST", "WEBHOOK_PATH", "PORT", "BIND_ADDR",
	"PRODUCER_INTERVAL", "SCHEDULER_INTERVAL", "SCHEDULER_BATCH_SIZE",
	"DRAIN_ON_START", "AUTOSTART", "WEBHOOK_AUTH_KEY", "WEBHOOK_TIMEOUT",
	"WEBHOOK_CONCURRENCY", "MAX_ATTEMPTS", "RETRY_BASE_DELAY", "CACHE_TTL",
	"LOG_LEVEL", "REQUEST_TIMEOUT", "DB_QUERY_TIMEOUT", "SHUTDOWN_TIMEOUT",
};

static void
clear_env(void)
{
	for (size_t i = 0; i < sizeof(all_vars) / sizeof(all_vars[0]); i++)
		unsetenv(all_vars[i]);
}

static void
test_duration_valid(void)
{
	static const struct { const char *in; int64_t ms; } cases[] = {
		{ "0", 0 }, { "45", 45000 }, { "1.5", 1500 }, { "250ms", 250 },
		{ "30s", 30000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "1h30m", 5400000 }, { "1m30s", 90000 }, { "1.5s", 1500 },
		{ "0.5ms", 1 }, { "2h0m1s", 7201000 }, { "8760h", 31536000000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		const char *why = NULL;

		CHECK(config_parse_duration(cases[i].in, &ms, &why) == 0);
		CHECK(ms == cases[i].ms);
		if (ms != cases[i].ms)
			fprintf(stderr, "  %s -> %lld\n", cases[i].in,
			    (long long)ms);
	}
}

static void
test_duration_invalid(void)
{
	static const char *const cases[] = {
		"", "5x", "-1s", "abc", "s", "1m5", "5 s", " 5s", "0x10s",
		"1e3s", "inf", "nan", "1.s.", "8761h", "10d", "5S", "+5s",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms;
		const char *why = NULL;
		int rc = config_parse_duration(cases[i], &ms, &why);

		CHECK(rc == -1);
		CHECK(why != NULL && *why != '\0');
		if (rc != -1)
			fprintf(stderr, "  accepted \"%s\"\n", cases[i]);
	}
}

static void
test_defaults(void)
{
	struct config c;
	char err[256];

	clear_env();
	CHECK(config_load(&c, err, sizeof(err)) == 0);
	CHECK(c.port == 8080);
	CHECK_STR(c.bind_addr, "0.0.0.0");
	CHECK_STR(c.redis_host, "localhost");
	CHECK(c.redis_port == 6379);
	CHECK(c.redis_db == 0);
	CHECK_STR(c.webhook_url, "http://localhost:9090/webhook");
	CHECK(c.producer_interval_ms == 30000);
	CHECK(c.scheduler_interval_ms == 120000);
	CHECK(c.scheduler_batch_size == 2);
	CHECK(c.drain_on_start && c.autostart);
	CHECK(c.webhook_timeout_ms == 10000);
	CHECK(c.webhook_concurrency == 64);
	CHECK(c.max_attempts == 5);
	CHECK(c.retry_base_delay_ms == 5000);
	CHECK(c.cache_ttl_ms == 24LL * 3600 * 1000);
	CHECK(c.log_level == LOG_INFO);
	CHECK(c.shutdown_timeout_ms == 10000);
	CHECK_STR(c.redis_password, "");
	CHECK_STR(c.webhook_auth_key, "");
	config_fini(&c);
}

static void
test_set_values(void)
{
	struct config c;
	char err[256];

	clear_env();
	setenv("PORT", "9000", 1);
	setenv("REDIS_ADDR", "redis.internal:6380", 1);
	setenv("PRODUCER_INTERVAL", "0", 1);
	setenv("AUTOSTART", "false", 1);
	setenv("DRAIN_ON_START", "off", 1);
	setenv("LOG_LEVEL", "debug", 1);
	setenv("SCHEDULER_BATCH_SIZE", "0", 1);
	setenv("BIND_ADDR", "::1", 1);
	setenv("WEBHOOK_AUTH_KEY", "k", 1);
	setenv("CACHE_TTL", "", 1);	/* empty = default */
	CHECK(config_load(&c, err, sizeof(err)) == 0);
	CHECK(c.port == 9000);
	CHECK_STR(c.redis_host, "redis.internal");
	CHECK(c.redis_port == 6380);
	CHECK(c.producer_interval_ms == 0);
	CHECK(!c.autostart && !c.drain_on_start);
	CHECK(c.log_level == LOG_DEBUG);
	CHECK(c.scheduler_batch_size == 0);
	CHECK_STR(c.bind_addr, "::1");
	CHECK_STR(c.webhook_auth_key, "k");
	CHECK(c.cache_ttl_ms == 24LL * 3600 * 1000);
	config_fini(&c);
	clear_env();
}

static void
test_webhook_join(void)
{
	static const struct { const char *host, *path, *url; } cases[] = {
		{ "http://a:1", "/webhook", "http://a:1/webhook" },
		{ "http://a:1/", "/webhook", "http://a:1/webhook" },
		{ "http://a:1//", "webhook", "http://a:1/webhook" },
		{ "https://a", "//x/y", "https://a/x/y" },
		{ "https://webhook.site/abc", "", "https://webhook.site/abc/" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		char err[256];

		clear_env();
		setenv("WEBHOOK_HOST", cases[i].host, 1);
		if (*cases[i].path)
			setenv("WEBHOOK_PATH", cases[i].path, 1);
		else
			setenv("WEBHOOK_PATH", "/", 1);
		CHECK(config_load(&c, err, sizeof(err)) == 0);
		CHECK_STR(c.webhook_url, cases[i].url);
		config_fini(&c);
	}
	clear_env();
}

static void
test_bad_values(void)
{
	static const struct { const char *var, *val; } cases[] = {
		{ "PRODUCER_INTERVAL", "5x" }, { "PRODUCER_INTERVAL", "-5s" },
		{ "SCHEDULER_INTERVAL", "0" }, { "SCHEDULER_INTERVAL", "soon" },
		{ "PORT", "0" }, { "PORT", "65536" }, { "PORT", "80a" },
		{ "PORT", "-1" }, { "REDIS_ADDR", "localhost" },
		{ "REDIS_ADDR", "localhost:0" }, { "REDIS_ADDR", ":6379" },
		{ "REDIS_DB", "x" }, { "REDIS_DB", "-1" },
		{ "WEBHOOK_HOST", "ftp://x" }, { "WEBHOOK_HOST", "localhost:9090" },
		{ "WEBHOOK_HOST", "http://" }, { "WEBHOOK_PATH", "/a b" },
		{ "BIND_ADDR", "everywhere" }, { "SCHEDULER_BATCH_SIZE", "-1" },
		{ "DRAIN_ON_START", "maybe" }, { "AUTOSTART", "2" },
		{ "WEBHOOK_TIMEOUT", "0" }, { "WEBHOOK_CONCURRENCY", "0" },
		{ "MAX_ATTEMPTS", "0" }, { "RETRY_BASE_DELAY", "1x" },
		{ "CACHE_TTL", "500ms" }, { "LOG_LEVEL", "verbose" },
		{ "DATABASE_DSN", "host=a port=" "'unterminated" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config c;
		char err[256] = "";

		clear_env();
		setenv(cases[i].var, cases[i].val, 1);
		CHECK(config_load(&c, err, sizeof(err)) == -1);
		/* One line that names the variable and shows the value. */
		CHECK(strstr(err, cases[i].var) != NULL);
		CHECK(strchr(err, '\n') == NULL);
		if (strcmp(cases[i].var, "DATABASE_DSN") != 0)
			CHECK(strstr(err, cases[i].val) != NULL);
		if (strstr(err, cases[i].var) == NULL)
			fprintf(stderr, "  %s=%s: %s\n", cases[i].var,
			    cases[i].val, err);
	}
	clear_env();
}

static void
test_secrets_masked(void)
{
	char *m = config_mask_dsn("postgres://u:hunter2@db:5432/x?sslmode=disable");
	struct config c;
	char err[256] = "";

	CHECK(strstr(m, "hunter2") == NULL);
	CHECK(strstr(m, "password=*****") != NULL);
	CHECK(strstr(m, "host=db") != NULL);
	free(m);
	m = config_mask_dsn("host=db password=hunter2 dbname=x");
	CHECK(strstr(m, "hunter2") == NULL);
	free(m);
	/* A bad DSN is reported without its password. */
	clear_env();
	setenv("DATABASE_DSN", "postgres://u:hunter2@db:notaport/x", 1);
	CHECK(config_load(&c, err, sizeof(err)) == -1);
	CHECK(strstr(err, "DATABASE_DSN") != NULL);
	CHECK(strstr(err, "hunter2") == NULL);
	clear_env();
}

int
main(void)
{
	RUN(test_duration_valid);
	RUN(test_duration_invalid);
	RUN(test_defaults);
	RUN(test_set_values);
	RUN(test_webhook_join);
	RUN(test_bad_values);
	RUN(test_secrets_masked);
	return harness_done();
}
