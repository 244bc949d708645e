/* log.c - one JSON object per line on stdout, filtered before formatting.
 *
 * A delivery logs a line per message ("message sent"), so a line costs
 * what a message costs: the common fields are written straight into a
 * reused buffer (jsonbuf: jansson's own escaping, byte for byte), and only
 * what that path does not know goes through a jansson tree. */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "jsonbuf.h"
#include "log.h"
#include "util.h"

/* Fields of one line the direct path handles; more go through jansson. */
#define LOG_FIELDS_MAX 8

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

/* One line after another: the memory stays for the life of the process. */
static struct jsonbuf log_buf;

static bool
log_key(struct jsonbuf *b, const char *key)
{
	jsonbuf_raw(b, ",", 1);
	if (jsonbuf_string(b, key) != 0)
		return false;
	jsonbuf_raw(b, ":", 1);
	return true;
}

static void
log_int(struct jsonbuf *b, long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%lld", v);

	jsonbuf_raw(b, num, (size_t)n);
}

/* Keys the line has before its fields, or that a field already took: a
 * repeat replaces the value in jansson's object, in place, so such a line
 * goes the jansson way. */
static bool
log_key_taken(const char *key, const char *const *keys, size_t n)
{
	static const char *const fixed[] = { "ts", "level", "msg",
		"component" };

	for (size_t i = 0; i < ARRAY_LEN(fixed); i++)
		if (strcmp(key, fixed[i]) == 0)
			return true;
	for (size_t i = 0; i < n; i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/* jansson skips whitespace, ':' and ',' between the tokens of a format. */
static const char *
log_skip(const char *p)
{
	return p + strspn(p, " \t\n:,");
}

/* The fields of a json_pack object format that uses only s, s?, i, I and
 * b values, into b; false for anything else, or for a value jansson would
 * refuse, so that the jansson path gives its own answer (and its
 * log_error). */
static bool
log_fields(struct jsonbuf *b, const char *fmt, va_list ap)
{
	const char *keys[LOG_FIELDS_MAX];
	size_t nkeys = 0;
	const char *p = fmt;

	p = log_skip(p);
	if (*p++ != '{')
		return false;
	for (;;) {
		const char *key, *str;

		p = log_skip(p);
		if (*p == '}')
			break;
		if (*p++ != 's' || nkeys == LOG_FIELDS_MAX)
			return false;
		key = va_arg(ap, const char *);
		if (key == NULL || log_key_taken(key, keys, nkeys) ||
		    !log_key(b, key))
			return false;
		keys[nkeys++] = key;
		p = log_skip(p);
		switch (*p++) {
		case 's':
			str = va_arg(ap, const char *);
			if (*p == '?') {
				p++;
				if (str == NULL) {
					jsonbuf_raw(b, "null", 4);
					break;
				}
			}
			if (str == NULL || jsonbuf_string(b, str) != 0)
				return false;
			break;
		case 'i':
			log_int(b, va_arg(ap, int));
			break;
		case 'I':
			log_int(b, va_arg(ap, json_int_t));
			break;
		case 'b':
			if (va_arg(ap, int))
				jsonbuf_raw(b, "true", 4);
			else
				jsonbuf_raw(b, "false", 5);
			break;
		default:
			return false;
		}
	}
	/* Nothing may follow the object but separators. */
	return *log_skip(p + 1) == '\0';
}

static bool
log_direct(struct jsonbuf *b, const char *ts, enum log_level level,
    const char *component, const char *msg, const char *fmt, va_list ap)
{
	jsonbuf_reset(b);
	jsonbuf_raw(b, "{\"ts\":", 6);
	if (jsonbuf_string(b, ts) != 0 || !log_key(b, "level") ||
	    jsonbuf_string(b, log_names[level]) != 0 || !log_key(b, "msg") ||
	    jsonbuf_string(b, msg) != 0)
		return false;
	if (component != NULL &&
	    (!log_key(b, "component") || jsonbuf_string(b, component) != 0))
		return false;
	if (fmt != NULL && !log_fields(b, fmt, ap))
		return false;
	jsonbuf_raw(b, "}\n", 2);
	return true;
}

static void
log_jansson(const char *ts, enum log_level level, const char *component,
    const char *msg, const char *fields_fmt, va_list ap)
{
	json_t *line, *fields = NULL;
	json_error_t err;

	line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", log_names[level],
	    "msg", msg);
	if (line == NULL)
		return;
	if (component != NULL)
		json_object_set_new(line, "component", json_string(component));
	if (fields_fmt != NULL) {
		fields = json_vpack_ex(&err, 0, fields_fmt, ap);
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

void
log_vwrite(enum log_level level, const char *component, const char *msg,
    const char *fields_fmt, va_list ap)
{
	char ts[32];
	va_list again;
	bool done;

	if (!log_enabled(level))
		return;
	util_rfc3339(util_wall_ms(), 1, ts, sizeof(ts));
	va_copy(again, ap);
	done = log_direct(&log_buf, ts, level, component, msg, fields_fmt, ap);
	if (done)
		fwrite(log_buf.buf, 1, log_buf.len, stdout);
	else
		log_jansson(ts, level, component, msg, fields_fmt, again);
	va_end(again);
}

void
log_write(enum log_level level, const char *component, const char *msg,
    const char *fields_fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fields_fmt);
	log_vwrite(level, component, msg, fields_fmt, ap);
	va_end(ap);
}
