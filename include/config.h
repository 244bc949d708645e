/* config.h - every setting, read from the environment and validated once.
 *
 * One table (config_vars in config.c) names every variable with its kind,
 * default, range and field; parsing, the effective-configuration log line,
 * the README's table (`make docs`) and the tests all walk it. */
#ifndef GOPULSE_CONFIG_H
#define GOPULSE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common.h"
#include "log.h"

struct config {
	char *database_dsn;
	char *redis_addr; /* as given; split into the two below */
	char *redis_host;
	int redis_port;
	char *redis_password;
	int redis_db;
	char *webhook_host; /* without trailing '/' */
	char *webhook_path; /* with exactly one leading '/' */
	char *webhook_url;  /* host and path joined with one '/' */
	char *webhook_auth_key;
	char *webhook_ca_file; /* "" = curl's default bundle */
	char *webhook_secret;  /* "" = unsigned; checked by sign_check */
	int port;
	char *bind_addr;
	int64_t producer_interval_ms; /* 0 = producer off */
	int64_t scheduler_interval_ms;
	int scheduler_batch_size; /* 0 = every due message */
	bool drain_on_start;
	bool autostart;
	int64_t webhook_timeout_ms;
	int webhook_concurrency;
	int max_attempts;
	int64_t retry_base_delay_ms;
	int64_t cache_ttl_ms;
	int webhook_rate_limit; /* starts per second, 0 = none */
	int circuit_failures;	/* 0 = the circuit never opens */
	int64_t circuit_probe_interval_ms;
	enum log_level log_level;
	int64_t request_timeout_ms;
	int64_t db_query_timeout_ms;
	int db_pipeline_depth;	   /* queries in flight on the delivery link */
	int64_t shutdown_delay_ms; /* 0 = stop accepting at once */
	int api_db_connections;	   /* 0 = reads on the delivery connection */
	int api_db_queue;	   /* most API queries outstanding at once */
	int64_t shutdown_timeout_ms;
	char *swagger_dir;    /* Swagger UI assets */
	char *api_token;      /* "" = mutating endpoints open */
	char *api_token_file; /* read into api_token at load */
	bool attempt_history; /* delivery_attempts rows with each outcome */
};

/* How a variable's field is stored, parsed and shown. */
enum config_kind {
	CONFIG_DURATION,  /* int64_t milliseconds; "1m30s", "250ms", "45" */
	CONFIG_INT,	  /* int, decimal */
	CONFIG_BOOL,	  /* bool; true/false, 1/0, yes/no, on/off */
	CONFIG_STRING,	  /* char *, owned */
	CONFIG_DSN,	  /* char *, a libpq conninfo; logged masked */
	CONFIG_LOG_LEVEL, /* enum log_level */
};

#define CONFIG_SECRET 0x1u   /* logged as "*****" when set, never echoed */
#define CONFIG_ZERO_OFF 0x2u /* a literal 0 is allowed (below min): off */
#define CONFIG_IMAGE \
	0x4u /* the image sets it (Dockerfile ENV), not
				 * docker-compose.yml */

struct config_var;

/* Stores value (never NULL) into var's field of cfg, and into any field
 * derived from it. On a bad value returns -1 with the reason in why, which
 * must not repeat the value (the caller shows it, masked when secret). */
typedef int config_parse_fn(struct config *cfg, const struct config_var *var,
    const char *value, char *why, size_t whylen);

struct config_var {
	const char *name;
	enum config_kind kind;
	const char *dflt;	/* "" = empty */
	int64_t min, max;	/* CONFIG_INT and CONFIG_DURATION (ms) */
	unsigned flags;		/* CONFIG_SECRET, ... */
	size_t field;		/* offsetof(struct config, ...) */
	config_parse_fn *parse; /* NULL: the kind's own parser */
	const char *doc;	/* the README's "meaning", Markdown */
};

extern const struct config_var config_vars[];
extern const size_t config_nvars;

/* Fills cfg from getenv; on a bad value returns -1 with one line in err
 * that names the variable and its value (secrets are never echoed). */
int config_load(struct config *cfg, char *err, size_t errlen) MUSTCHECK;
/* Parses only the variable called name into cfg (zeroed by the caller),
 * as config_load does: for tools that need one or two settings. */
int config_load_var(struct config *cfg, const char *name, char *err,
    size_t errlen) MUSTCHECK;
void config_fini(struct config *cfg);
/* The effective configuration as one JSON object, a member per variable
 * (secrets masked); what config_log writes. */
json_t *config_json(const struct config *cfg);
/* The line also carries open_files_limit, the soft RLIMIT_NOFILE. */
void config_log(const struct config *cfg, long open_files_limit);

/* The README's configuration table (Markdown), or the table as JSON for
 * tests: `gopulse-messages --config-table[=json]`. */
void config_doc_markdown(FILE *out);
void config_doc_json(FILE *out);

/* "1h30m", "250ms", "1.5s", "45" (seconds). Returns 0 or -1 with a reason. */
int config_parse_duration(const char *s, int64_t *ms,
    const char **why) MUSTCHECK;
/* The shortest form config_parse_duration reads back: "1h30m", "0". */
void config_format_duration(int64_t ms, char *buf, size_t len);

#endif
