/* config.c - every setting, read from the environment and validated once. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "config.h"
#include "util.h"

#define DAY_MS (24LL * 3600 * 1000)

/* An unset or empty variable takes its default: compose files commonly
 * pass VAR= for "not set". */
static const char *
config_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : dflt;
}

static int
config_bad(char *err, size_t errlen, const char *name, const char *value,
    const char *why)
{
	snprintf(err, errlen, "invalid %s=\"%s\": %s", name, value, why);
	return -1;
}

int
config_parse_duration(const char *s, int64_t *ms, const char **why)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	double total = 0;
	const char *p = s;

	if (*p == '-') {
		*why = "negative duration";
		return -1;
	}
	do {
		double v = 0, scale = 1;
		size_t ulen = 0, i;
		int digits = 0;

		/* Digits by hand: strtod would also take hex, exponents, "inf". */
		for (; isdigit((unsigned char)*p); p++, digits++)
			v = v * 10 + (*p - '0');
		if (*p == '.')
			for (p++; isdigit((unsigned char)*p); p++, digits++)
				v += (*p - '0') * (scale /= 10);
		if (digits == 0) {
			*why = "not a number (use e.g. 30s, 2m, 500ms, 1h)";
			return -1;
		}
		while (isalpha((unsigned char)p[ulen]))
			ulen++;
		if (ulen == 0) {
			/* A bare number is seconds, but only on its own. */
			if (*p != '\0' || total != 0) {
				*why = "missing unit (use ms, s, m or h)";
				return -1;
			}
			total = v * 1000;
			break;
		}
		for (i = 0; i < ARRAY_LEN(units); i++)
			if (strlen(units[i].unit) == ulen &&
			    strncmp(p, units[i].unit, ulen) == 0)
				break;
		if (i == ARRAY_LEN(units)) {
			*why = "unknown unit (use ms, s, m or h)";
			return -1;
		}
		total += v * units[i].ms;
		p += ulen;
	} while (*p != '\0');
	if (total > 365.0 * DAY_MS) {
		*why = "out of range (at most 8760h)";
		return -1;
	}
	*ms = (int64_t)llround(total);
	return 0;
}

static int
config_duration(const char *name, const char *dflt, int64_t min_ms,
    int64_t max_ms, bool zero_ok, int64_t *out, char *err, size_t errlen)
{
	const char *v = config_env(name, dflt);
	const char *why;
	char range[96];

	if (config_parse_duration(v, out, &why) != 0)
		return config_bad(err, errlen, name, v, why);
	if (*out == 0 && zero_ok)
		return 0;
	if (*out < min_ms || *out > max_ms) {
		snprintf(range, sizeof(range), "out of range (%s%lldms to %lldms)",
		    zero_ok ? "0 or " : "", (long long)min_ms,
		    (long long)max_ms);
		return config_bad(err, errlen, name, v, range);
	}
	return 0;
}

static int
config_parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
config_int(const char *name, const char *dflt, long min, long max, int *out,
    char *err, size_t errlen)
{
	const char *v = config_env(name, dflt);
	char why[80];
	long n;

	if (config_parse_int(v, min, max, &n) != 0) {
		snprintf(why, sizeof(why), "not a whole number from %ld to %ld",
		    min, max);
		return config_bad(err, errlen, name, v, why);
	}
	*out = (int)n;
	return 0;
}

static int
config_bool(const char *name, const char *dflt, bool *out, char *err,
    size_t errlen)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };
	const char *v = config_env(name, dflt);

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return config_bad(err, errlen, name, v, "not a boolean (true or false)");
}

static int
config_dsn(struct config *cfg, char *err, size_t errlen)
{
	const char *v = config_env("DATABASE_DSN",
	    "postgres://postgres:postgres@localhost:5432/gopulse_messages"
	    "?sslmode=disable");
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(v, &perr);

	if (opts == NULL) {
		char *masked = config_mask_dsn(v);
		char why[256];

		/* libpq's reason never contains the password itself. */
		snprintf(why, sizeof(why), "%s", perr ? perr : "out of memory");
		why[strcspn(why, "\n")] = '\0';
		PQfreemem(perr);
		config_bad(err, errlen, "DATABASE_DSN", masked, why);
		free(masked);
		return -1;
	}
	/* libpq parses ports only when connecting: check them now, so a
	 * typo stops start-up instead of looping on reconnects. */
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		char *ports, *tok, *save = NULL;
		bool bad = false;

		if (strcmp(o->keyword, "port") != 0 || o->val == NULL)
			continue;
		ports = xstrdup(o->val);
		for (tok = strtok_r(ports, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save)) {
			long port;

			if (config_parse_int(tok, 1, 65535, &port) != 0)
				bad = true;
		}
		free(ports);
		if (bad) {
			char *masked = config_mask_dsn(v);

			config_bad(err, errlen, "DATABASE_DSN", masked,
			    "port must be a number from 1 to 65535");
			free(masked);
			PQconninfoFree(opts);
			return -1;
		}
	}
	PQconninfoFree(opts);
	cfg->database_dsn = xstrdup(v);
	return 0;
}

static int
config_redis_addr(struct config *cfg, char *err, size_t errlen)
{
	const char *v = config_env("REDIS_ADDR", "localhost:6379");
	const char *colon = strrchr(v, ':');
	long port;

	if (colon == NULL || colon == v ||
	    config_parse_int(colon + 1, 1, 65535, &port) != 0)
		return config_bad(err, errlen, "REDIS_ADDR", v,
		    "expected host:port with a port from 1 to 65535");
	cfg->redis_host = xstrndup(v, (size_t)(colon - v));
	cfg->redis_port = (int)port;
	return 0;
}

static int
config_webhook(struct config *cfg, char *err, size_t errlen)
{
	const char *host = config_env("WEBHOOK_HOST", "http://localhost:9090");
	const char *path = config_env("WEBHOOK_PATH", "/webhook");
	const char *rest;
	size_t hlen = strlen(host);

	if (strncasecmp(host, "http://", 7) == 0)
		rest = host + 7;
	else if (strncasecmp(host, "https://", 8) == 0)
		rest = host + 8;
	else
		return config_bad(err, errlen, "WEBHOOK_HOST", host,
		    "expected http://host[:port] or https://host[:port]");
	if (*rest == '\0' || *rest == '/' || strpbrk(host, " \t\r\n?#") != NULL)
		return config_bad(err, errlen, "WEBHOOK_HOST", host,
		    "expected http://host[:port] or https://host[:port]");
	if (strpbrk(path, " \t\r\n#") != NULL)
		return config_bad(err, errlen, "WEBHOOK_PATH", path,
		    "must not contain spaces or '#'");
	while (hlen > 0 && host[hlen - 1] == '/')
		hlen--;
	while (*path == '/')
		path++;
	cfg->webhook_host = xstrndup(host, hlen);
	cfg->webhook_path = xasprintf("/%s", path);
	cfg->webhook_url = xasprintf("%s/%s", cfg->webhook_host, path);
	return 0;
}

static int
config_bind(struct config *cfg, char *err, size_t errlen)
{
	const char *v = config_env("BIND_ADDR", "0.0.0.0");
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
		return config_bad(err, errlen, "BIND_ADDR", v,
		    "not a numeric IPv4 or IPv6 address");
	cfg->bind_addr = xstrdup(v);
	return 0;
}

int
config_load(struct config *cfg, char *err, size_t errlen)
{
	const char *lvl;

	memset(cfg, 0, sizeof(*cfg));
	lvl = config_env("LOG_LEVEL", "info");
	if (log_level_parse(lvl, &cfg->log_level) != 0)
		return config_bad(err, errlen, "LOG_LEVEL", lvl,
		    "expected debug, info, warn or error");
	cfg->redis_password = xstrdup(config_env("REDIS_PASSWORD", ""));
	cfg->webhook_auth_key = xstrdup(config_env("WEBHOOK_AUTH_KEY", ""));
	cfg->swagger_dir = xstrdup(config_env("SWAGGER_DIR", "web/swagger"));
	if (config_dsn(cfg, err, errlen) != 0 ||
	    config_redis_addr(cfg, err, errlen) != 0 ||
	    config_int("REDIS_DB", "0", 0, 1023, &cfg->redis_db, err, errlen) ||
	    config_webhook(cfg, err, errlen) != 0 ||
	    config_int("PORT", "8080", 1, 65535, &cfg->port, err, errlen) ||
	    config_bind(cfg, err, errlen) != 0 ||
	    config_duration("PRODUCER_INTERVAL", "30s", 10, DAY_MS, true,
		&cfg->producer_interval_ms, err, errlen) ||
	    config_duration("SCHEDULER_INTERVAL", "2m", 10, DAY_MS, false,
		&cfg->scheduler_interval_ms, err, errlen) ||
	    config_int("SCHEDULER_BATCH_SIZE", "2", 0, 1000000,
		&cfg->scheduler_batch_size, err, errlen) ||
	    config_bool("DRAIN_ON_START", "true", &cfg->drain_on_start, err,
		errlen) ||
	    config_bool("AUTOSTART", "true", &cfg->autostart, err, errlen) ||
	    config_duration("WEBHOOK_TIMEOUT", "10s", 10, 600000, false,
		&cfg->webhook_timeout_ms, err, errlen) ||
	    config_int("WEBHOOK_CONCURRENCY", "64", 1, 4096,
		&cfg->webhook_concurrency, err, errlen) ||
	    config_int("MAX_ATTEMPTS", "5", 1, 1000, &cfg->max_attempts, err,
		errlen) ||
	    config_duration("RETRY_BASE_DELAY", "5s", 10, 3600000, false,
		&cfg->retry_base_delay_ms, err, errlen) ||
	    config_duration("CACHE_TTL", "24h", 1000, 365 * DAY_MS, false,
		&cfg->cache_ttl_ms, err, errlen) ||
	    config_duration("REQUEST_TIMEOUT", "5s", 10, 600000, false,
		&cfg->request_timeout_ms, err, errlen) ||
	    config_duration("DB_QUERY_TIMEOUT", "15s", 100, 3600000, false,
		&cfg->db_query_timeout_ms, err, errlen) ||
	    config_duration("SHUTDOWN_TIMEOUT", "10s", 0, 600000, true,
		&cfg->shutdown_timeout_ms, err, errlen)) {
		config_fini(cfg);
		return -1;
	}
	return 0;
}

void
config_fini(struct config *cfg)
{
	free(cfg->database_dsn);
	free(cfg->redis_host);
	free(cfg->redis_password);
	free(cfg->webhook_host);
	free(cfg->webhook_path);
	free(cfg->webhook_url);
	free(cfg->webhook_auth_key);
	free(cfg->bind_addr);
	free(cfg->swagger_dir);
	memset(cfg, 0, sizeof(*cfg));
}

char *
config_mask_dsn(const char *dsn)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
	char *out = xstrdup("");

	if (opts == NULL) {
		/* Unparseable: show only what cannot be a secret. */
		free(out);
		return xstrdup("(unparseable, not shown)");
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		char *next;

		if (o->val == NULL || *o->val == '\0')
			continue;
		next = xasprintf("%s%s%s=%s", out, *out ? " " : "", o->keyword,
		    strcmp(o->keyword, "password") == 0 ? "*****" : o->val);
		free(out);
		out = next;
	}
	PQconninfoFree(opts);
	return out;
}

void
config_log(const struct config *cfg)
{
	char *dsn = config_mask_dsn(cfg->database_dsn);

	log_info("config", "effective configuration",
	    "{s:s, s:s, s:i, s:s, s:i, s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:i,"
	    " s:b, s:b, s:I, s:i, s:i, s:I, s:I, s:s, s:I, s:I, s:I, s:s}",
	    "DATABASE_DSN", dsn,
	    "REDIS_HOST", cfg->redis_host, "REDIS_PORT", cfg->redis_port,
	    "REDIS_PASSWORD", *cfg->redis_password ? "*****" : "",
	    "REDIS_DB", cfg->redis_db,
	    "WEBHOOK_URL", cfg->webhook_url,
	    "WEBHOOK_AUTH_KEY", *cfg->webhook_auth_key ? "*****" : "",
	    "BIND_ADDR", cfg->bind_addr, "PORT", cfg->port,
	    "LOG_LEVEL", log_level_name(cfg->log_level),
	    "PRODUCER_INTERVAL_MS", (json_int_t)cfg->producer_interval_ms,
	    "SCHEDULER_INTERVAL_MS", (json_int_t)cfg->scheduler_interval_ms,
	    "SCHEDULER_BATCH_SIZE", cfg->scheduler_batch_size,
	    "DRAIN_ON_START", cfg->drain_on_start,
	    "AUTOSTART", cfg->autostart,
	    "WEBHOOK_TIMEOUT_MS", (json_int_t)cfg->webhook_timeout_ms,
	    "WEBHOOK_CONCURRENCY", cfg->webhook_concurrency,
	    "MAX_ATTEMPTS", cfg->max_attempts,
	    "RETRY_BASE_DELAY_MS", (json_int_t)cfg->retry_base_delay_ms,
	    "CACHE_TTL_MS", (json_int_t)cfg->cache_ttl_ms,
	    "version", GOPULSE_VERSION,
	    "REQUEST_TIMEOUT_MS", (json_int_t)cfg->request_timeout_ms,
	    "DB_QUERY_TIMEOUT_MS", (json_int_t)cfg->db_query_timeout_ms,
	    "SHUTDOWN_TIMEOUT_MS", (json_int_t)cfg->shutdown_timeout_ms,
	    "SWAGGER_DIR", cfg->swagger_dir);
	free(dsn);
}
