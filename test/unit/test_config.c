/* test_config.c - durations, the table's rows (every variable's default,
 * range, errors and log field), the DSN checks against libpq itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "config.h"
#include "dsn.h"
#include "harness.h"
#include "util.h"

static void
clear_env(void)
{
	for (size_t i = 0; i < config_nvars; i++)
		unsetenv(config_vars[i].name);
}

/* config_load with only name=value set: 0 or -1, err filled. */
static int
load_with(const char *name, const char *value, struct config *c, char *err,
    size_t errlen)
{
	int rc;

	clear_env();
	setenv(name, value, 1);
	err[0] = '\0';
	rc = config_load(c, err, errlen);
	clear_env();
	return rc;
}

static void
test_duration_valid(void)
{
	/* clang-format off */
	static const struct { const char *in; int64_t ms; } cases[] = {
		{ "0", 0 }, { "45", 45000 }, { "1.5", 1500 }, { "250ms", 250 },
		{ "30s", 30000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "1h30m", 5400000 }, { "1m30s", 90000 }, { "1.5s", 1500 },
		{ "0.5ms", 1 }, { "2h0m1s", 7201000 }, { "8760h", 31536000000 },
		{ "0s", 0 }, { "0ms", 0 }, { "0.0s", 0 }, { "0h0m", 0 },
		{ "0.001", 1 },
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
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
	/* clang-format off */
	static const char *const cases[] = {
		"", "5x", "-1s", "abc", "s", "1m5", "5 s", " 5s", "0x10s",
		"1e3s", "inf", "nan", "1.s.", "8761h", "10d", "5S", "+5s",
		/* below 1ms, but not zero: must not round to "off" */
		"0.4ms", "0.0004", "0.0001s", "0.000001m",
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
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
test_duration_format(void)
{
	static const struct {
		int64_t ms;
		const char *out;
	} cases[] = {
		{ 0, "0" },
		{ 1, "1ms" },
		{ 10, "10ms" },
		{ 1500, "1s500ms" },
		{ 30000, "30s" },
		{ 120000, "2m" },
		{ 5400000, "1h30m" },
		{ 86400000, "24h" },
		{ 31536000000, "8760h" },
		{ 3723004, "1h2m3s4ms" },
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char buf[32];
		int64_t back = -1;
		const char *why;

		config_format_duration(cases[i].ms, buf, sizeof(buf));
		CHECK_STR(buf, cases[i].out);
		/* What the log shows reads back as the same duration. */
		CHECK(config_parse_duration(buf, &back, &why) == 0);
		CHECK(back == cases[i].ms);
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
	CHECK_STR(c.redis_addr, "localhost:6379");
	CHECK_STR(c.redis_host, "localhost");
	CHECK(c.redis_port == 6379);
	CHECK(c.redis_db == 0);
	CHECK_STR(c.webhook_host, "http://localhost:9090");
	CHECK_STR(c.webhook_path, "/webhook");
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
	CHECK(c.request_timeout_ms == 5000);
	CHECK(c.db_query_timeout_ms == 15000);
	CHECK(c.shutdown_delay_ms == 0);
	CHECK(c.shutdown_timeout_ms == 10000);
	CHECK_STR(c.redis_password, "");
	CHECK_STR(c.webhook_auth_key, "");
	CHECK_STR(c.swagger_dir, "web/swagger");
	CHECK_STR(c.database_dsn,
	    "postgres://postgres:postgres@localhost:5432/"
	    "gopulse_messages?sslmode=disable");
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
	setenv("SHUTDOWN_TIMEOUT", "0s", 1);
	setenv("SHUTDOWN_DELAY", "5s", 1);
	setenv("CACHE_TTL", "", 1); /* empty = default */
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
	CHECK(c.shutdown_timeout_ms == 0);
	CHECK(c.shutdown_delay_ms == 5000);
	CHECK(c.cache_ttl_ms == 24LL * 3600 * 1000);
	config_fini(&c);
	clear_env();
}

static void
test_webhook_join(void)
{
	/* clang-format off */
	static const struct { const char *host, *path, *url; } cases[] = {
		{ "http://a:1", "/webhook", "http://a:1/webhook" },
		{ "http://a:1/", "/webhook", "http://a:1/webhook" },
		{ "http://a:1//", "webhook", "http://a:1/webhook" },
		{ "https://a", "//x/y", "https://a/x/y" },
		{ "https://webhook.site/abc", "", "https://webhook.site/abc/" },
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
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

/* The one shape main prints, `invalid VAR="shown": why`, on one line of
 * printable ASCII whatever bytes the value held: JSON refuses bytes that
 * are not UTF-8, and an error that could not be printed left start-up
 * failing without a word. */
static void
check_error(const char *var, const char *shown, const char *err)
{
	char head[128];
	bool ok;

	snprintf(head, sizeof(head), "invalid %s=\"", var);
	ok = strncmp(err, head, strlen(head)) == 0 &&
	    strstr(err, shown) != NULL;
	for (const char *p = err; *p; p++)
		ok = ok && *p >= 0x20 && *p < 0x7f;
	CHECK(ok);
	if (!ok)
		fprintf(stderr, "  %s (%s): %s\n", var, shown, err);
}

static void
test_bad_values(void)
{
	/* clang-format off */
	static const struct { const char *var, *val; } cases[] = {
		{ "PRODUCER_INTERVAL", "5x" }, { "PRODUCER_INTERVAL", "-5s" },
		{ "PRODUCER_INTERVAL", "0.4ms" }, { "SHUTDOWN_TIMEOUT", "0.1ms" },
		{ "SCHEDULER_INTERVAL", "0" }, { "SCHEDULER_INTERVAL", "soon" },
		{ "PORT", "0" }, { "PORT", "65536" }, { "PORT", "80a" },
		{ "PORT", "-1" }, { "PORT", "8080abc" },
		{ "REDIS_ADDR", "localhost" },
		{ "REDIS_ADDR", "localhost:0" }, { "REDIS_ADDR", ":6379" },
		{ "REDIS_DB", "x" }, { "REDIS_DB", "-1" },
		{ "WEBHOOK_HOST", "ftp://x" }, { "WEBHOOK_HOST", "localhost:9090" },
		{ "WEBHOOK_HOST", "http://" }, { "WEBHOOK_PATH", "/a b" },
		{ "BIND_ADDR", "everywhere" }, { "BIND_ADDR", "::1%lo" },
		{ "SCHEDULER_BATCH_SIZE", "-1" },
		{ "DRAIN_ON_START", "maybe" }, { "AUTOSTART", "2" },
		{ "WEBHOOK_TIMEOUT", "0" }, { "WEBHOOK_CONCURRENCY", "0" },
		{ "MAX_ATTEMPTS", "0" }, { "RETRY_BASE_DELAY", "1x" },
		{ "CACHE_TTL", "500ms" }, { "LOG_LEVEL", "verbose" },
		/* bytes that are not printable ASCII: shown as \xNN */
		{ "PORT", "8\xd1" }, { "LOG_LEVEL", "in\nfo" },
		{ "WEBHOOK_PATH", "/\xff\x1b[2J" },
		{ "API_TOKEN_FILE", "/nonexistent/\xd1" },
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct config c;
		char err[512], shown[128], *o = shown;

		for (const char *p = cases[i].val; *p; p++)
			o += sprintf(o,
			    *p >= 0x20 && *p < 0x7f ? "%c" : "\\x%02x",
			    (unsigned char)*p);
		CHECK(load_with(cases[i].var, cases[i].val, &c, err,
			  sizeof(err)) == -1);
		check_error(cases[i].var, shown, err);
	}
}

/* Walks the table: each row's default loads, the ends of its range are
 * accepted and one step beyond them is refused with a good error. */
static void
test_every_row(void)
{
	for (size_t i = 0; i < config_nvars; i++) {
		const struct config_var *var = &config_vars[i];
		char v[64], err[512];
		struct config c;

		CHECK(*var->name != '\0' && *var->doc != '\0');
		CHECK(var->field < sizeof(struct config));
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(config_vars[k].name, var->name) != 0);
		CHECK(load_with(var->name, var->dflt, &c, err, sizeof(err)) ==
		    0);
		config_fini(&c);
		if (var->kind == CONFIG_BOOL) {
			CHECK(load_with(var->name, "maybe", &c, err,
				  sizeof(err)) == -1);
			check_error(var->name, "maybe", err);
		}
		if (var->kind != CONFIG_INT && var->kind != CONFIG_DURATION)
			continue;
		CHECK(var->min <= var->max);
		for (int end = 0; end < 4; end++) {
			/* min, max, min - 1, max + 1 */
			int64_t n = end % 2 == 0 ? var->min : var->max;
			bool ok = end < 2;

			n += end == 2 ? -1 : end == 3 ? 1 : 0;
			if (n < 0 || (n == 0 && (var->flags & CONFIG_ZERO_OFF)))
				continue;
			snprintf(v, sizeof(v), "%lld%s", (long long)n,
			    var->kind == CONFIG_DURATION ? "ms" : "");
			CHECK(load_with(var->name, v, &c, err, sizeof(err)) ==
			    (ok ? 0 : -1));
			if (ok)
				config_fini(&c);
			else
				check_error(var->name, v, err);
		}
		/* Zero is allowed exactly when the row says so. */
		if (var->min > 0) {
			int rc = load_with(var->name, "0", &c, err,
			    sizeof(err));

			CHECK(rc == ((var->flags & CONFIG_ZERO_OFF) ? 0 : -1));
			if (rc == 0)
				config_fini(&c);
		}
	}
}

static void
test_load_var(void)
{
	struct config c;
	char err[256];

	memset(&c, 0, sizeof(c));
	clear_env();
	setenv("PORT", "8080abc", 1);
	setenv("SCHEDULER_INTERVAL", "nonsense", 1); /* not asked for */
	CHECK(config_load_var(&c, "PORT", err, sizeof(err)) == -1);
	CHECK(strstr(err, "PORT=\"8080abc\"") != NULL);
	setenv("PORT", "9001", 1);
	setenv("BIND_ADDR", "::1", 1);
	CHECK(config_load_var(&c, "PORT", err, sizeof(err)) == 0);
	CHECK(config_load_var(&c, "BIND_ADDR", err, sizeof(err)) == 0);
	CHECK(c.port == 9001);
	CHECK_STR(c.bind_addr, "::1");
	CHECK(config_load_var(&c, "NO_SUCH_SETTING", err, sizeof(err)) == -1);
	config_fini(&c);
	clear_env();
}

/* The log line has a field per row, each shown by its kind, secrets
 * masked, and nothing else but the version. */
static void
test_log_fields(void)
{
	struct config c;
	char err[256], *dump;
	json_t *j;

	clear_env();
	setenv("REDIS_PASSWORD", "hunter2redis", 1);
	setenv("WEBHOOK_AUTH_KEY", "hunter2key", 1);
	setenv("API_TOKEN", "hunter2token", 1);
	/* base64 of "hunter2secrethunter2secret" */
	setenv("WEBHOOK_SECRET",
	    "whsec_aHVudGVyMnNlY3JldGh1bnRlcjJzZWNyZXQ=", 1);
	setenv("DATABASE_DSN",
	    "postgres://u:hunter2dsn@db:5432/x?"
	    "sslmode=disable&sslpassword=hunter2ssl",
	    1);
	setenv("SCHEDULER_INTERVAL", "90s", 1);
	CHECK(config_load(&c, err, sizeof(err)) == 0);
	j = config_json(&c);
	CHECK(json_object_size(j) == config_nvars + 1);
	for (size_t i = 0; i < config_nvars; i++) {
		json_t *v = json_object_get(j, config_vars[i].name);

		CHECK(v != NULL);
		if (v == NULL)
			fprintf(stderr, "  no %s in the log\n",
			    config_vars[i].name);
		if (config_vars[i].flags & CONFIG_SECRET)
			CHECK_STR(json_string_value(v), "*****");
	}
	CHECK_STR(json_string_value(json_object_get(j, "version")),
	    GOPULSE_VERSION);
	CHECK_STR(json_string_value(json_object_get(j, "SCHEDULER_INTERVAL")),
	    "1m30s");
	CHECK(json_integer_value(json_object_get(j, "PORT")) == 8080);
	CHECK(json_is_true(json_object_get(j, "AUTOSTART")));
	CHECK_STR(json_string_value(json_object_get(j, "LOG_LEVEL")), "info");
	dump = json_dumps(j, JSON_COMPACT);
	CHECK(dump != NULL && strstr(dump, "hunter2") == NULL);
	CHECK(dump != NULL && strstr(dump, "aHVudGVyMnNl") == NULL);
	CHECK(dump != NULL && strstr(dump, "password=*****") != NULL);
	free(dump);
	json_decref(j);
	config_fini(&c);
	/* Unset secrets show as empty, not as "*****". */
	clear_env();
	CHECK(config_load(&c, err, sizeof(err)) == 0);
	j = config_json(&c);
	CHECK_STR(json_string_value(json_object_get(j, "REDIS_PASSWORD")), "");
	json_decref(j);
	config_fini(&c);
}

static void
test_markdown(void)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0, rows = 0;
	FILE *f = open_memstream(&buf, &len);

	config_doc_markdown(f);
	fclose(f);
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), rows++) {
		char want[64];

		if (rows < 2)
			continue;
		snprintf(want, sizeof(want), "| `%s` | ",
		    rows - 2 < config_nvars ? config_vars[rows - 2].name : "?");
		CHECK(strncmp(line, want, strlen(want)) == 0);
	}
	CHECK(rows == config_nvars + 2);
	free(buf);
}

static void
test_dsn_bad(void)
{
	static const char *const cases[] = {
		"host=db port='unterminated",
		"host=db sslmode=bogus",
		"postgres://db/x?sslmode=Require",
		"host=db sslmode=",
		"host=db gssencmode=x",
		"host=db channel_binding=maybe",
		"host=db target_session_attrs=primary-ish",
		"host=db connect_timeout=10s",
		"host=db connect_timeout=",
		"host=db keepalives=yes",
		"host=db keepalives_idle=x",
		"host=db keepalives_interval=1.5",
		"host=db keepalives_count=",
		"host=db keepalives_count=99999999999",
		"host=db tcp_user_timeout=abc",
		"host=db ssl_min_protocol_version=TLSv1.4",
		"host=db ssl_max_protocol_version=SSLv3",
		"host=db ssl_max_protocol_version=TLSv1.1",
		"host=db ssl_min_protocol_version=TLSv1.3 "
		"ssl_max_protocol_version=TLSv1.2",
		"host=db port=0",
		"host=db port=65536",
		"host=db port=54x",
		"host=a,b port=1,2,3",
		"host=a,b hostaddr=127.0.0.1",
		"hostaddr=db.example",
		"hostaddr=127.0.0.1,nope",
		"host=db sslmdoe=require",
		"postgres://db/x?sslmdoe=require",
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct config c;
		char err[512];

		CHECK(load_with("DATABASE_DSN", cases[i], &c, err,
			  sizeof(err)) == -1);
		CHECK(strncmp(err, "invalid DATABASE_DSN=", 21) == 0);
		CHECK(strchr(err, '\n') == NULL);
		if (strncmp(err, "invalid DATABASE_DSN=", 21) != 0)
			fprintf(stderr, "  accepted %s\n", cases[i]);
	}
}

/* A bad DSN is reported without its password, even where libpq's own
 * reason quotes the piece of the DSN that holds it. */
static void
test_dsn_secrets(void)
{
	static const char *const cases[] = {
		"postgres://u:hunter2@db:notaport/x",
		"postgres://u:hunter2@db/x?sslmode=bogus",
		"postgres://u:hun%zzter2@db/x",
		"postgres://u:hunter2@[::1/x",
		"postgres://db/x?password=hun%zzter2",
		"host=db password=hunter2 gssencmode=x",
		"host=db password=hun ter2",
		"host=db password='hun ter2' port=x",
		"host=db password=hunter2 sslpassword=hunter2ssl sslmode=no",
	};
	char *m;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct config c;
		char err[512];

		CHECK(load_with("DATABASE_DSN", cases[i], &c, err,
			  sizeof(err)) == -1);
		CHECK(strstr(err, "DATABASE_DSN") != NULL);
		CHECK(strstr(err, "ter2") == NULL);
		if (strstr(err, "ter2") != NULL)
			fprintf(stderr, "  %s: %s\n", cases[i], err);
	}
	m = dsn_mask("postgres://u:hunter2@db:5432/x?sslmode=disable");
	CHECK(strstr(m, "hunter2") == NULL);
	CHECK(strstr(m, "password=*****") != NULL);
	CHECK(strstr(m, "host=db") != NULL);
	free(m);
	m = dsn_mask("host=db password=hunter2 sslpassword=hunter2 dbname=x");
	CHECK(strstr(m, "hunter2") == NULL);
	CHECK(strstr(m, "sslpassword=*****") != NULL);
	free(m);
}

/* What the DSN leaves out comes from its service, PGSERVICE or PG*
 * variables, as in libpq: checked, and counted in the list lengths. */
static void
test_dsn_defaults(void)
{
	char path[] = "/tmp/gopulse-pgservice-XXXXXX", why[256];
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs("[two]\nhost=127.0.0.1,127.0.0.2\n[bad]\nsslmode=sometimes\n", f);
	fclose(f);
	setenv("PGSERVICEFILE", path, 1);
	unsetenv("PGSERVICE");
	CHECK(dsn_check("service=two port=1,2", why, sizeof(why)) == 0);
	CHECK(dsn_check("service=two port=1,2,3", why, sizeof(why)) == -1);
	CHECK(strstr(why, "3 numbers for 2 hosts") != NULL);
	CHECK(dsn_check("service=bad host=db", why, sizeof(why)) == -1);
	CHECK(strstr(why, "\"sometimes\" (not in the DSN)") != NULL);
	CHECK(getenv("PGSERVICE") == NULL); /* put back as it was */
	setenv("PGSERVICE", "bad", 1);
	CHECK(dsn_check("host=db", why, sizeof(why)) == -1);
	CHECK(dsn_check("host=db sslmode=disable", why, sizeof(why)) == 0);
	CHECK(dsn_check("service=two port=1,2", why, sizeof(why)) == 0);
	CHECK_STR(getenv("PGSERVICE"), "bad");
	unsetenv("PGSERVICE");
	setenv("PGSSLMODE", "bogus", 1);
	CHECK(dsn_check("host=db", why, sizeof(why)) == -1);
	unsetenv("PGSSLMODE");
	setenv("PGPORT", "5432,5433", 1);
	CHECK(dsn_check("host=db", why, sizeof(why)) == -1);
	CHECK(dsn_check("host=a,b", why, sizeof(why)) == 0);
	unsetenv("PGPORT");
	unsetenv("PGSERVICEFILE");
	unlink(path);
}

/* A port on 127.0.0.1 that nobody listens on: libpq is refused at once. */
static int
closed_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* dsn_check against the installed libpq: a DSN it passes is one libpq
 * only fails for the missing server ("Connection refused"), and one it
 * refuses is one libpq refuses before that. Every address is 127.0.0.1,
 * so nothing resolves a name or leaves the machine. The keepalive values
 * are left out: the kernel, not libpq, bounds them, and pg.c sets its own
 * after the DSN. */
static void
test_dsn_matches_libpq(void)
{
	static const struct {
		const char *opts;
		bool ok;
	} cases[] = {
		{ "", true },
		{ "sslmode=require", true },
		{ "sslmode=verify-full", true },
		{ "sslmode=bogus", false },
		{ "sslmode=", false },
		{ "gssencmode=disable", true },
		{ "gssencmode=x", false },
		{ "channel_binding=require", true },
		{ "channel_binding=x", false },
		{ "target_session_attrs=read-write", true },
		{ "target_session_attrs=prefer-standby", true },
		{ "target_session_attrs=x", false },
		{ "connect_timeout=5", true },
		{ "connect_timeout= 7 ", true },
		{ "connect_timeout=-3", true },
		{ "connect_timeout=x", false },
		{ "connect_timeout=", false },
		{ "keepalives=0", true },
		{ "keepalives=x", false },
		{ "keepalives_idle=1x", false },
		{ "keepalives_interval=x", false },
		{ "keepalives_count=99999999999", false },
		{ "tcp_user_timeout=100", true },
		{ "tcp_user_timeout=x", false },
		{ "ssl_max_protocol_version=tlsv1.3", true },
		{ "ssl_min_protocol_version=TLSv1 "
		  "ssl_max_protocol_version=TLSv1.1",
		    true },
		{ "ssl_max_protocol_version=TLSv1.1", false },
		{ "ssl_min_protocol_version=x", false },
		{ "ssl_min_protocol_version=TLSv1.3 "
		  "ssl_max_protocol_version=TLSv1.2",
		    false },
		{ "hostaddr=bogus", false },
		{ "hostaddr=::1", true },
		{ "host=a,b", false },
		{ "port=0", false },
		{ "port=99999", false },
		{ "port=1,2", false },
		{ "sslcompression=x", true },
		{ "replication=bogus", true },
		{ "nosuchoption=1", false },
	};
	int port = closed_port();

	CHECK(port > 0);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char dsn[256], why[256];
		const char *msg;
		bool ours, libpqs;
		PGconn *conn;

		snprintf(dsn, sizeof(dsn),
		    "hostaddr=127.0.0.1 port=%d user=x "
		    "dbname=x %s",
		    port, cases[i].opts);
		ours = dsn_check(dsn, why, sizeof(why)) == 0;
		conn = PQconnectdb(dsn);
		msg = PQerrorMessage(conn);
		libpqs = strstr(msg, "Connection refused") != NULL;
		CHECK(ours == cases[i].ok);
		CHECK(libpqs == cases[i].ok);
		if (ours != cases[i].ok || libpqs != cases[i].ok)
			fprintf(stderr, "  %s: ours %s (%s), libpq: %s\n",
			    cases[i].opts, ours ? "ok" : "refused",
			    ours ? "" : why, msg);
		PQfinish(conn);
	}
}

/* API_TOKEN_FILE: read, one trailing newline dropped; never with
 * API_TOKEN; a missing or empty file stops start-up, and no error shows
 * the token. */
static void
test_token_file(void)
{
	char path[] = "/tmp/gopulse-token-XXXXXX";
	struct config c;
	char err[256];
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	CHECK(f != NULL);
	if (f == NULL)
		return;
	fputs("hunter2file\n", f);
	fclose(f);
	clear_env();
	setenv("API_TOKEN_FILE", path, 1);
	CHECK(config_load(&c, err, sizeof(err)) == 0);
	CHECK_STR(c.api_token, "hunter2file");
	config_fini(&c);
	setenv("API_TOKEN", "other", 1);
	CHECK(config_load(&c, err, sizeof(err)) != 0);
	CHECK(strstr(err, "set one of them") != NULL &&
	    strstr(err, "hunter2") == NULL);
	unsetenv("API_TOKEN");
	f = fopen(path, "w");
	fclose(f);
	CHECK(config_load(&c, err, sizeof(err)) != 0);
	CHECK(strstr(err, "empty") != NULL);
	unlink(path);
	CHECK(config_load(&c, err, sizeof(err)) != 0);
	CHECK(strstr(err, "API_TOKEN_FILE") != NULL);
	clear_env();
}

int
main(void)
{
	RUN(test_duration_valid);
	RUN(test_duration_invalid);
	RUN(test_duration_format);
	RUN(test_defaults);
	RUN(test_set_values);
	RUN(test_webhook_join);
	RUN(test_bad_values);
	RUN(test_every_row);
	RUN(test_load_var);
	RUN(test_log_fields);
	RUN(test_token_file);
	RUN(test_markdown);
	RUN(test_dsn_bad);
	RUN(test_dsn_secrets);
	RUN(test_dsn_defaults);
	RUN(test_dsn_matches_libpq);
	return harness_done();
}
