/* log.h - one JSON object per line on stdout.
 *
 * msg is a fixed phrase (greppable, stable); details travel as fields
 * described by a jansson json_pack format for an object's members, e.g.
 *   log_info("producer", "Successfully created a new message", "{s:I}", "id", id);
 * Pass NULL when there are no fields.
 */
#ifndef GOPULSE_LOG_H
#define GOPULSE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include <jansson.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
const char *log_level_name(enum log_level level);
/* Returns 0 and sets *out for "debug", "info", "warn", "error". */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level level, const char *component, const char *msg,
    const char *fields_fmt, ...);
void log_vwrite(enum log_level level, const char *component, const char *msg,
    const char *fields_fmt, va_list ap);

#define log_debug(c, m, ...) log_write(LOG_DEBUG, c, m, __VA_ARGS__)
#define log_info(c, m, ...) log_write(LOG_INFO, c, m, __VA_ARGS__)
#define log_warn(c, m, ...) log_write(LOG_WARN, c, m, __VA_ARGS__)
#define log_error(c, m, ...) log_write(LOG_ERROR, c, m, __VA_ARGS__)

#endif
