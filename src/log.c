/* log.c - one JSON object per line on stdout, filtered before formatting. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "util.h"

static enum log_level log_min = LOG_INFO;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	log_min = level;
}

bool
log_enabled(enum log_level level)
{
	return level >= log_min;
}

const char *
log_level_name(enum log_level level)
{
	assert((size_t)level < ARRAY_LEN(log_names));
	return log_names[level];
}

int
log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < ARRAY_LEN(log_names); i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static int
log_dump_cb(const char *buf, size_t size, void *data)
{
	return fwrite(buf, 1, size, data) == size ? 0 : -1;
}

void
log_write(enum log_level level, const char *component, const char *msg,
    const char *fields_fmt, ...)
{
	char ts[32];
	json_t *line, *fields = NULL;
	json_error_t err;
	va_list ap;

	if (!log_enabled(level))
		return;
	util_rfc3339(util_wall_ms(), 1, ts, sizeof(ts));
	line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", log_names[level],
	    "msg", msg);
	if (line == NULL)
		return;
	if (component != NULL)
		json_object_set_new(line, "component", json_string(component));
	if (fields_fmt != NULL) {
		va_start(ap, fields_fmt);
		fields = json_vpack_ex(&err, 0, fields_fmt, ap);
		va_end(ap);
		/* A bad field (say, invalid UTF-8) must not lose the line. */
		if (fields == NULL)
			json_object_set_new(line, "log_error",
			    json_string(err.text));
		else
			json_object_update(line, fields);
		json_decref(fields);
	}
	json_dump_callback(line, log_dump_cb, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(line);
}
