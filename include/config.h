/* config.h - every setting, read from the environment and validated once. */
#ifndef GOPULSE_CONFIG_H
#define GOPULSE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "log.h"

struct config {
	char *database_dsn;
	char *redis_host;
	int redis_port;
	char *redis_password;
	int redis_db;
	char *webhook_host;
	char *webhook_path;
	char *webhook_url;	/* host and path joined with one '/' */
	char *webhook_auth_key;
	int port;
	char *bind_addr;
	int64_t producer_interval_ms;	/* 0 = producer off */
	int64_t scheduler_interval_ms;
	int scheduler_batch_size;	/* 0 = every due message */
	bool drain_on_start;
	bool autostart;
	int64_t webhook_timeout_ms;
	int webhook_concurrency;
	int max_attempts;
	int64_t retry_base_delay_ms;
	int64_t cache_ttl_ms;
	enum log_level log_level;
	int64_t request_timeout_ms;
	int64_t db_query_timeout_ms;
	int64_t shutdown_timeout_ms;
	char *swagger_dir;	/* Swagger UI assets */
};

/* Fills cfg from getenv; on a bad value returns -1 with one line in err
 * that names the variable and its value (secrets are never echoed). */
int config_load(struct config *cfg, char *err, size_t errlen) MUSTCHECK;
void config_fini(struct config *cfg);
void config_log(const struct config *cfg);

/* "1h30m", "250ms", "1.5s", "45" (seconds). Returns 0 or -1 with a reason. */
int config_parse_duration(const char *s, int64_t *ms, const char **why)
    MUSTCHECK;
/* The DSN with its password replaced, for logs. Caller frees. */
char *config_mask_dsn(const char *dsn);

#endif
