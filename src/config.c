/* config.c - every setting, read from the environment and validated once.
 *
 * config_vars is the one list of settings: parsing, defaults, validation,
 * the "effective configuration" log line, `make docs` (the README's table)
 * and the tests all walk it. Adding a setting is one row here, plus its
 * field in struct config and its use. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "dsn.h"
#include "sign.h"
#include "util.h"

#define DAY_MS (24LL * 3600 * 1000)

/* clang-format off */
/* offsetof, and a compile-time check that the field has the kind's C type:
 * comparing distinct pointer types is a diagnostic, an error with -Werror. */
#define CONFIG_FIELD(f, type) (offsetof(struct config, f) + \
	0 * sizeof((type *)0 == &((struct config *)0)->f))
#define CONFIG_AT(cfg, var, type) \
	((type *)(void *)((char *)(cfg) + (var)->field))

#define ROW(name, kind, dflt, lo, hi, flags, f, type, parse, doc) \
	{ name, kind, dflt, lo, hi, flags, CONFIG_FIELD(f, type), parse, doc }
/* clang-format on */
#define ROW_DURATION(name, dflt, lo, hi, flags, f, doc) \
	ROW(name, CONFIG_DURATION, dflt, lo, hi, flags, f, int64_t, NULL, doc)
#define ROW_INT(name, dflt, lo, hi, f, doc) \
	ROW(name, CONFIG_INT, dflt, lo, hi, 0, f, int, NULL, doc)
#define ROW_BOOL(name, dflt, f, doc) \
	ROW(name, CONFIG_BOOL, dflt, 0, 0, 0, f, bool, NULL, doc)
#define ROW_STRING(name, dflt, flags, f, parse, doc) \
	ROW(name, CONFIG_STRING, dflt, 0, 0, flags, f, char *, parse, doc)

static config_parse_fn config_parse_redis_addr, config_parse_webhook_host,
    config_parse_webhook_path, config_parse_bind_addr, config_parse_ca_file,
    config_parse_webhook_secret;

/* The README's order; docker-compose.yml passes them in the same order. */
const struct config_var config_vars[] = {
	ROW("DATABASE_DSN", CONFIG_DSN,
	    "postgres://postgres:postgres@localhost:5432/gopulse_messages"
	    "?sslmode=disable",
	    0, 0, 0, database_dsn, char *, NULL,
	    "libpq connection string or URI; its options are checked at start "
	    "as libpq checks them when connecting"),
	ROW_STRING("REDIS_ADDR", "localhost:6379", 0, redis_addr,
	    config_parse_redis_addr, "host:port"),
	ROW_STRING("REDIS_PASSWORD", "", CONFIG_SECRET, redis_password, NULL,
	    "AUTH on connect when set"),
	ROW_INT("REDIS_DB", "0", 0, 1023, redis_db, "SELECT on connect"),
	ROW_STRING("WEBHOOK_HOST", "http://localhost:9090", 0, webhook_host,
	    config_parse_webhook_host, "`http://` or `https://` host[:port]"),
	ROW_STRING("WEBHOOK_PATH", "/webhook", 0, webhook_path,
	    config_parse_webhook_path,
	    "joined to the host with exactly one `/`; printable ASCII "
	    "without spaces or `#` (percent-encode other bytes)"),
	ROW_INT("PORT", "8080", 1, 65535, port, "HTTP listen port"),
	ROW_STRING("BIND_ADDR", "0.0.0.0", 0, bind_addr, config_parse_bind_addr,
	    "HTTP listen address (numeric IPv4 or IPv6); `gopulse-messages "
	    "healthcheck` dials it (`127.0.0.1` for `0.0.0.0`, `::1` for "
	    "`::`)"),
	ROW_DURATION("PRODUCER_INTERVAL", "30s", 10, DAY_MS, CONFIG_ZERO_OFF,
	    producer_interval_ms,
	    "a fake message every interval; `0` turns the producer off"),
	ROW_DURATION("SCHEDULER_INTERVAL", "2m", 10, DAY_MS, 0,
	    scheduler_interval_ms, "how often due messages are sent"),
	ROW_INT("SCHEDULER_BATCH_SIZE", "2", 0, 1000000, scheduler_batch_size,
	    "most messages sent per tick; `0` = every due message"),
	ROW_BOOL("DRAIN_ON_START", "true", drain_on_start,
	    "when sending becomes active, first send every due message"),
	ROW_BOOL("AUTOSTART", "true", autostart,
	    "start automatic sending at boot"),
	ROW_STRING("WEBHOOK_AUTH_KEY", "", CONFIG_SECRET, webhook_auth_key,
	    NULL, "sent as header `x-ins-auth-key` when set"),
	ROW_STRING("WEBHOOK_SECRET", "", CONFIG_SECRET, webhook_secret,
	    config_parse_webhook_secret,
	    "`whsec_<base64>` (at least 24 bytes decoded), or several "
	    "separated by spaces (rotation): each POST is signed the Standard "
	    "Webhooks way (`webhook-id`, `webhook-timestamp`, "
	    "`webhook-signature` with one `v1,` entry per secret)"),
	ROW_DURATION("WEBHOOK_TIMEOUT", "10s", 10, 600000, 0,
	    webhook_timeout_ms, "whole-request timeout per attempt"),
	ROW_INT("WEBHOOK_CONCURRENCY", "64", 1, 4096, webhook_concurrency,
	    "most webhook requests in flight"),
	ROW_STRING("WEBHOOK_CA_FILE", "", 0, webhook_ca_file,
	    config_parse_ca_file,
	    "PEM file of the CAs an `https` webhook's certificate must chain "
	    "to, instead of the system bundle; read once, not per "
	    "connection"),
	ROW_INT("MAX_ATTEMPTS", "5", 1, 1000, max_attempts,
	    "attempts before a message is `failed`"),
	ROW_DURATION("RETRY_BASE_DELAY", "5s", 10, 3600000, 0,
	    retry_base_delay_ms,
	    "first retry delay; doubles each attempt, with jitter, capped at "
	    "1 h"),
	ROW_DURATION("CACHE_TTL", "24h", 1000, 365 * DAY_MS, 0, cache_ttl_ms,
	    "TTL of the Redis entry of a sent message"),
	ROW_INT("WEBHOOK_RATE_LIMIT", "0", 0, 1000000, webhook_rate_limit,
	    "most webhook requests started per second, for the whole "
	    "process; `0` = no limit"),
	ROW_INT("CIRCUIT_FAILURES", "20", 0, 1000000, circuit_failures,
	    "consecutive retryable failures (timeout, connection error, 5xx, "
	    "429) that open the circuit; `0` = never"),
	ROW_DURATION("CIRCUIT_PROBE_INTERVAL", "30s", 100, 3600000, 0,
	    circuit_probe_interval_ms,
	    "while the circuit is open, one probe message this often"),
	ROW("LOG_LEVEL", CONFIG_LOG_LEVEL, "info", 0, 0, 0, log_level,
	    enum log_level, NULL, "`debug`, `info`, `warn`, `error`"),
	ROW_DURATION("REQUEST_TIMEOUT", "5s", 10, 600000, 0, request_timeout_ms,
	    "an API request waiting on the database answers 503 after this"),
	ROW_DURATION("DB_QUERY_TIMEOUT", "15s", 100, 3600000, 0,
	    db_query_timeout_ms,
	    "the server's `statement_timeout` for every statement (per "
	    "session, or per transaction through a pooler); a server silent "
	    "for this + 2 s is treated as "
	    "gone and the connection is remade"),
	ROW_INT("DB_PIPELINE_DEPTH", "32", 1, 32, db_pipeline_depth,
	    "queries in flight at once on the delivery connection (libpq "
	    "pipeline mode, each its own transaction); always 1 through a "
	    "pooler such as PgBouncer, which the service recognises on "
	    "connect; `1` for one it would not"),
	ROW_DURATION("SHUTDOWN_DELAY", "0", 0, 600000, CONFIG_ZERO_OFF,
	    shutdown_delay_ms,
	    "on SIGTERM, keep serving this long with `/ready` answering 503 "
	    "(load balancers take the instance out), then stop accepting and "
	    "drain; `0` stops accepting at once"),
	ROW_INT("API_DB_CONNECTIONS", "2", 0, 64, api_db_connections,
	    "PostgreSQL connections of the API's own, beside the delivery "
	    "connection, so reads never queue behind delivery; `0` = the API "
	    "shares the delivery connection"),
	ROW_INT("API_DB_QUEUE", "128", 1, 100000, api_db_queue,
	    "most API database queries waiting or running at once; past it "
	    "`GET /messages` answers 503 with `Retry-After: 1` at once"),
	ROW_DURATION("SHUTDOWN_TIMEOUT", "10s", 0, 600000, CONFIG_ZERO_OFF,
	    shutdown_timeout_ms, "how long SIGTERM waits for work in flight"),
	ROW_STRING("SWAGGER_DIR", "web/swagger", CONFIG_IMAGE, swagger_dir,
	    NULL, "where the Swagger UI files are, mapped read-only at start"),
	ROW_STRING("API_TOKEN", "", CONFIG_SECRET, api_token, NULL,
	    "when set, every `POST` needs `Authorization: Bearer <token>` "
	    "(else 401); unset, the mutating endpoints are open (a warning "
	    "at start says so)"),
	ROW_STRING("API_TOKEN_FILE", "", 0, api_token_file, NULL,
	    "read the token from this file (container secrets; one trailing "
	    "newline is dropped); set one of the two at most"),
	ROW_BOOL("ATTEMPT_HISTORY", "true", attempt_history,
	    "record every delivery attempt in `delivery_attempts` (shown by "
	    "`GET /messages/{id}`), in the statement that writes its outcome"),
};
const size_t config_nvars = ARRAY_LEN(config_vars);

/* ---------------------------------------------------------------- values */

int
config_parse_duration(const char *s, int64_t *ms, const char **why)
{
	/* clang-format off */
	static const struct { const char *unit; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	};
	/* clang-format on */
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
	/* Only a written zero may mean "off": 0.4ms must not round to it. */
	if (total > 0 && llround(total) == 0) {
		*why = "less than 1ms (only 0 itself may be below 1ms)";
		return -1;
	}
	*ms = (int64_t)llround(total);
	return 0;
}

void
config_format_duration(int64_t ms, char *buf, size_t len)
{
	/* clang-format off */
	static const struct { const char *unit; int64_t ms; } units[] = {
		{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
	};
	/* clang-format on */
	size_t used = 0;

	if (ms <= 0) {
		snprintf(buf, len, "0");
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_LEN(units) && used < len; i++) {
		if (ms < units[i].ms)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%lld%s",
		    (long long)(ms / units[i].ms), units[i].unit);
		ms %= units[i].ms;
	}
}

static int
config_parse_long(const char *s, long min, long max, long *out)
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

/* "(0 or 10ms to 24h)", "(1 to 65535)": a row's range, for errors. */
static void
config_range_text(const struct config_var *var, const char *to, char *buf,
    size_t len)
{
	char lo[24], hi[24];

	if (var->kind == CONFIG_DURATION) {
		config_format_duration(var->min, lo, sizeof(lo));
		config_format_duration(var->max, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%lld", (long long)var->min);
		snprintf(hi, sizeof(hi), "%lld", (long long)var->max);
	}
	snprintf(buf, len, "%s%s%s%s",
	    (var->flags & CONFIG_ZERO_OFF) && var->min > 0 ? "0 or " : "", lo,
	    to, hi);
}

static int
config_parse_duration_var(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	int64_t *out = CONFIG_AT(cfg, var, int64_t);
	const char *reason;
	char range[96];

	if (config_parse_duration(value, out, &reason) != 0) {
		snprintf(why, whylen, "%s", reason);
		return -1;
	}
	if (*out == 0 && (var->flags & CONFIG_ZERO_OFF))
		return 0;
	if (*out < var->min || *out > var->max) {
		config_range_text(var, " to ", range, sizeof(range));
		snprintf(why, whylen, "out of range (%s)", range);
		return -1;
	}
	return 0;
}

static int
config_parse_int_var(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	long n;

	if (config_parse_long(value, (long)var->min, (long)var->max, &n) != 0) {
		snprintf(why, whylen, "not a whole number from %lld to %lld",
		    (long long)var->min, (long long)var->max);
		return -1;
	}
	*CONFIG_AT(cfg, var, int) = (int)n;
	return 0;
}

static int
config_parse_bool_var(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(value, yes[i]) == 0 ||
		    strcasecmp(value, no[i]) == 0) {
			*CONFIG_AT(cfg, var, bool) = strcasecmp(value,
							 yes[i]) == 0;
			return 0;
		}
	}
	snprintf(why, whylen, "not a boolean (true or false)");
	return -1;
}

static int
config_parse_string_var(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	UNUSED(why);
	UNUSED(whylen);
	*CONFIG_AT(cfg, var, char *) = xstrdup(value);
	return 0;
}

static int
config_parse_dsn_var(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	if (dsn_check(value, why, whylen) != 0)
		return -1;
	*CONFIG_AT(cfg, var, char *) = xstrdup(value);
	return 0;
}

static int
config_parse_log_level_var(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	if (log_level_parse(value, CONFIG_AT(cfg, var, enum log_level)) != 0) {
		snprintf(why, whylen, "expected debug, info, warn or error");
		return -1;
	}
	return 0;
}

static config_parse_fn *const config_kind_parse[] = {
	[CONFIG_DURATION] = config_parse_duration_var,
	[CONFIG_INT] = config_parse_int_var,
	[CONFIG_BOOL] = config_parse_bool_var,
	[CONFIG_STRING] = config_parse_string_var,
	[CONFIG_DSN] = config_parse_dsn_var,
	[CONFIG_LOG_LEVEL] = config_parse_log_level_var,
};

/* ---------------------------------------------------------------- rows */

static int
config_parse_redis_addr(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	const char *colon = strrchr(value, ':');
	long port;

	if (colon == NULL || colon == value ||
	    config_parse_long(colon + 1, 1, 65535, &port) != 0) {
		snprintf(why, whylen,
		    "expected host:port with a port from 1 to 65535");
		return -1;
	}
	*CONFIG_AT(cfg, var, char *) = xstrdup(value);
	cfg->redis_host = xstrndup(value, (size_t)(colon - value));
	cfg->redis_port = (int)port;
	return 0;
}

static int
config_parse_webhook_host(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	const char *rest = NULL;
	size_t len = strlen(value);

	if (strncasecmp(value, "http://", 7) == 0)
		rest = value + 7;
	else if (strncasecmp(value, "https://", 8) == 0)
		rest = value + 8;
	if (rest == NULL || *rest == '\0' || *rest == '/' ||
	    strpbrk(value, " \t\r\n?#") != NULL) {
		snprintf(why, whylen,
		    "expected http://host[:port] or https://host[:port]");
		return -1;
	}
	while (len > 0 && value[len - 1] == '/')
		len--;
	*CONFIG_AT(cfg, var, char *) = xstrndup(value, len);
	return 0;
}

/* Checked now, so a wrong path stops start-up instead of failing every
 * https attempt; "" keeps curl's own bundle. */
static int
config_parse_ca_file(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	if (*value != '\0' && access(value, R_OK) != 0) {
		snprintf(why, whylen, "cannot read it: %s", strerror(errno));
		return -1;
	}
	*CONFIG_AT(cfg, var, char *) = xstrdup(value);
	return 0;
}

/* Printable ASCII: what a value may show, and a path may hold, as it is. */
static bool
config_printable(int c)
{
	return c >= 0x20 && c < 0x7f;
}

static int
config_parse_webhook_path(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	/* A URL's path as it goes on the wire: curl would send other bytes
	 * raw, and a receiver's router would not match them. */
	for (const char *p = value; *p; p++) {
		if (!config_printable((unsigned char)*p) || *p == ' ' ||
		    *p == '#') {
			snprintf(why, whylen,
			    "must be printable ASCII without spaces or '#' "
			    "(percent-encode other bytes)");
			return -1;
		}
	}
	while (*value == '/')
		value++;
	*CONFIG_AT(cfg, var, char *) = xasprintf("/%s", value);
	return 0;
}

/* The reason never quotes the value: it is a secret. */
static int
config_parse_webhook_secret(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	if (sign_check(value, why, whylen) != 0)
		return -1;
	*CONFIG_AT(cfg, var, char *) = xstrdup(value);
	return 0;
}

static int
config_parse_bind_addr(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, value, buf) != 1 &&
	    inet_pton(AF_INET6, value, buf) != 1) {
		snprintf(why, whylen, "not a numeric IPv4 or IPv6 address");
		return -1;
	}
	*CONFIG_AT(cfg, var, char *) = xstrdup(value);
	return 0;
}

/* ---------------------------------------------------------------- loading */

/* A value as an error shows it: bytes outside printable ASCII as \xNN, so
 * the line stays one line and valid UTF-8 (main prints it as JSON, which
 * refuses anything else, and a terminal would act on control bytes). */
static char *
config_escape(const char *value)
{
	size_t n = strlen(value);
	char *out = xmalloc(4 * n + 1), *o = out;

	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (config_printable(*p))
			*o++ = (char)*p;
		else
			o += sprintf(o, "\\x%02x", *p);
	}
	*o = '\0';
	return out;
}

/* The value as an error may show it: secrets never, a DSN masked. */
static char *
config_shown_value(const struct config_var *var, const char *value)
{
	char *masked, *shown;

	if (var->flags & CONFIG_SECRET)
		return xstrdup("*****");
	if (var->kind != CONFIG_DSN)
		return config_escape(value);
	masked = dsn_mask(value);
	shown = config_escape(masked);
	free(masked);
	return shown;
}

/* Every error has one shape, `invalid NAME="value": why`, on one line of
 * printable ASCII, whatever a reason taken from a library held. */
static void
config_error(char *err, size_t errlen, const char *name, const char *shown,
    const char *why)
{
	snprintf(err, errlen, "invalid %s=\"%s\": %s", name, shown, why);
	for (char *p = err; *p; p++)
		if (!config_printable((unsigned char)*p))
			*p = '?';
}

static int
config_load_one(struct config *cfg, const struct config_var *var, char *err,
    size_t errlen)
{
	config_parse_fn *parse = var->parse ? var->parse :
					      config_kind_parse[var->kind];
	const char *value = getenv(var->name);
	char why[320] = "";
	char *shown;

	/* An empty variable is unset: compose files pass VAR= for that. */
	if (value == NULL || *value == '\0')
		value = var->dflt;
	if (parse(cfg, var, value, why, sizeof(why)) == 0)
		return 0;
	shown = config_shown_value(var, value);
	config_error(err, errlen, var->name, shown, why);
	free(shown);
	return -1;
}

/* API_TOKEN_FILE's contents, one line (containers' secrets convention
 * often ends it with a newline), into buf; why says what is wrong. */
static int
config_read_token(const char *path, char *buf, size_t size, const char **why)
{
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		*why = strerror(errno);
		return -1;
	}
	n = fread(buf, 1, size, f);
	fclose(f);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n < size ? n : size - 1] = '\0';
	*why = "the token must be one line of at most 1024 printable "
	       "characters without spaces";
	for (size_t i = 0; i < n; i++)
		if (n == size || !isgraph((unsigned char)buf[i]))
			return -1;
	*why = "the file is empty";
	return n == 0 ? -1 : 0;
}

/* API_TOKEN_FILE into api_token. Errors name the file, never what is in
 * it. */
static int
config_load_token_file(struct config *cfg, char *err, size_t errlen)
{
	char buf[1025];
	const char *why = "API_TOKEN is set too: set one of them";
	char *shown;
	int rc = -1;

	if (cfg->api_token_file[0] == '\0')
		return 0;
	if (cfg->api_token[0] == '\0' &&
	    (rc = config_read_token(cfg->api_token_file, buf, sizeof(buf),
		 &why)) == 0) {
		free(cfg->api_token);
		cfg->api_token = xstrdup(buf);
	}
	explicit_bzero(buf, sizeof(buf));
	if (rc == 0)
		return 0;
	shown = config_escape(cfg->api_token_file);
	config_error(err, errlen, "API_TOKEN_FILE", shown, why);
	free(shown);
	return -1;
}

int
config_load(struct config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < config_nvars; i++) {
		if (config_load_one(cfg, &config_vars[i], err, errlen) != 0) {
			config_fini(cfg);
			return -1;
		}
	}
	if (config_load_token_file(cfg, err, errlen) != 0) {
		config_fini(cfg);
		return -1;
	}
	cfg->webhook_url = xasprintf("%s%s", cfg->webhook_host,
	    cfg->webhook_path);
	return 0;
}

int
config_load_var(struct config *cfg, const char *name, char *err, size_t errlen)
{
	for (size_t i = 0; i < config_nvars; i++)
		if (strcmp(config_vars[i].name, name) == 0)
			return config_load_one(cfg, &config_vars[i], err,
			    errlen);
	snprintf(err, errlen, "no setting called %s", name);
	return -1;
}

void
config_fini(struct config *cfg)
{
	for (size_t i = 0; i < config_nvars; i++) {
		const struct config_var *var = &config_vars[i];

		if (var->kind == CONFIG_STRING || var->kind == CONFIG_DSN)
			free(*CONFIG_AT(cfg, var, char *));
	}
	/* Derived from a row, not rows themselves. */
	free(cfg->redis_host);
	free(cfg->webhook_url);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---------------------------------------------------------------- output */

/* Environment strings need not be UTF-8, which JSON strings must be. */
static json_t *
config_json_string(const char *s)
{
	json_t *j = json_string(s);

	return j != NULL ? j : json_string("(not UTF-8, not shown)");
}

static json_t *
config_value_json(const struct config *cfg, const struct config_var *var)
{
	char buf[64], *masked;
	const char *s;
	json_t *j;

	switch (var->kind) {
	case CONFIG_DURATION:
		config_format_duration(*CONFIG_AT(cfg, var, int64_t), buf,
		    sizeof(buf));
		return json_string(buf);
	case CONFIG_INT:
		return json_integer(*CONFIG_AT(cfg, var, int));
	case CONFIG_BOOL:
		return json_boolean(*CONFIG_AT(cfg, var, bool));
	case CONFIG_LOG_LEVEL:
		return json_string(log_level_name(*CONFIG_AT(cfg, var,
		    enum log_level)));
	case CONFIG_DSN:
		masked = dsn_mask(*CONFIG_AT(cfg, var, char *));
		j = config_json_string(masked);
		free(masked);
		return j;
	case CONFIG_STRING:
		break;
	}
	s = *CONFIG_AT(cfg, var, char *);
	if (var->flags & CONFIG_SECRET)
		return json_string(*s != '\0' ? "*****" : "");
	return config_json_string(s);
}

json_t *
config_json(const struct config *cfg)
{
	json_t *obj = json_object();

	for (size_t i = 0; i < config_nvars; i++)
		json_object_set_new(obj, config_vars[i].name,
		    config_value_json(cfg, &config_vars[i]));
	json_object_set_new(obj, "version", json_string(GOPULSE_VERSION));
	return obj;
}

void
config_log(const struct config *cfg, long open_files_limit)
{
	json_t *obj = config_json(cfg);

	/* Not a setting, but what the process may hold open: read with the
	 * configuration when connections are refused. */
	json_object_set_new(obj, "open_files_limit",
	    json_integer(open_files_limit));
	log_info("config", "effective configuration", "o", obj);
}

/* " (0–1023)", " (0 or 10ms–24h; secret)": what the README adds to a
 * row's doc, so that ranges and flags cannot drift from the table. */
static void
config_doc_notes(const struct config_var *var, char *buf, size_t len)
{
	char range[96];
	const char *notes[3];
	size_t n = 0;

	if (var->kind == CONFIG_INT || var->kind == CONFIG_DURATION) {
		config_range_text(var, "–", range, sizeof(range));
		notes[n++] = range;
	}
	if (var->flags & CONFIG_SECRET)
		notes[n++] = "secret";
	if (var->flags & CONFIG_IMAGE)
		notes[n++] = "the image sets its own";
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s%s",
		    i == 0 ? " (" : "; ", notes[i], i + 1 == n ? ")" : "");
}

void
config_doc_markdown(FILE *out)
{
	fputs("| variable | default | meaning |\n|---|---|---|\n", out);
	for (size_t i = 0; i < config_nvars; i++) {
		const struct config_var *var = &config_vars[i];
		char notes[128];

		config_doc_notes(var, notes, sizeof(notes));
		fprintf(out, "| `%s` | %s%s%s | %s%s |\n", var->name,
		    *var->dflt ? "`" : "", *var->dflt ? var->dflt : "empty",
		    *var->dflt ? "`" : "", var->doc, notes);
	}
}

void
config_doc_json(FILE *out)
{
	static const char *const kinds[] = {
		[CONFIG_DURATION] = "duration",
		[CONFIG_INT] = "int",
		[CONFIG_BOOL] = "bool",
		[CONFIG_STRING] = "string",
		[CONFIG_DSN] = "dsn",
		[CONFIG_LOG_LEVEL] = "log_level",
	};
	json_t *rows = json_array();

	for (size_t i = 0; i < config_nvars; i++) {
		const struct config_var *var = &config_vars[i];

		json_array_append_new(rows,
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, s:s}",
			"name", var->name, "kind", kinds[var->kind], "default",
			var->dflt, "min", (json_int_t)var->min, "max",
			(json_int_t)var->max, "secret",
			(var->flags & CONFIG_SECRET) != 0, "zero_off",
			(var->flags & CONFIG_ZERO_OFF) != 0, "image",
			(var->flags & CONFIG_IMAGE) != 0, "doc", var->doc));
	}
	json_dumpf(rows, out, JSON_INDENT(1));
	fputc('\n', out);
	json_decref(rows);
}
