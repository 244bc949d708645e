/* test_log.c - log lines, byte for byte what a jansson object dump gives. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "log.h"

static FILE *capture;
static int saved_stdout = -1;

static void
capture_start(void)
{
	fflush(stdout);
	capture = tmpfile();
	saved_stdout = dup(STDOUT_FILENO);
	dup2(fileno(capture), STDOUT_FILENO);
}

/* Everything written since capture_start; free it. */
static char *
capture_end(void)
{
	long n;
	char *out;

	fflush(stdout);
	dup2(saved_stdout, STDOUT_FILENO);
	close(saved_stdout);
	n = ftell(capture);
	out = calloc(1, (size_t)n + 1);
	rewind(capture);
	if (fread(out, 1, (size_t)n, capture) != (size_t)n)
		out[0] = '\0';
	fclose(capture);
	return out;
}

/* The line as log.c always wrote it: a jansson object, dumped compact. */
static char *
jansson_line(const char *ts, const char *level, const char *component,
    const char *msg, const char *fmt, ...)
{
	json_t *line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level,
	    "msg", msg);
	json_error_t err;
	va_list ap;
	char *s, *out;

	if (component != NULL)
		json_object_set_new(line, "component", json_string(component));
	if (fmt != NULL) {
		json_t *fields;

		va_start(ap, fmt);
		fields = json_vpack_ex(&err, 0, fmt, ap);
		va_end(ap);
		if (fields == NULL)
			json_object_set_new(line, "log_error",
			    json_string(err.text));
		else
			json_object_update(line, fields);
		json_decref(fields);
	}
	s = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	out = malloc(strlen(s) + 2);
	sprintf(out, "%s\n", s);
	free(s);
	return out;
}

/* The ts the line carries (the clock moved on since it was written). */
static const char *
line_ts(const char *line, char *buf, size_t len)
{
	const char *p = strstr(line, "\"ts\":\"");

	buf[0] = '\0';
	if (p != NULL)
		snprintf(buf, len, "%.*s", 24, p + 6);
	return buf;
}

#define SAME(got, ...) \
	do { \
		char ts_[32]; \
		char *want_ = jansson_line(line_ts(got, ts_, sizeof(ts_)), \
		    __VA_ARGS__); \
		CHECK_STR(got, want_); \
		free(want_); \
	} while (0)

static void
test_common_fields(void)
{
	char *got;

	capture_start();
	log_info("scheduler", "message sent", "{s:I, s:s?}", "id",
	    (json_int_t)42, "messageId", "f3b1-77");
	got = capture_end();
	SAME(got, "info", "scheduler", "message sent", "{s:I, s:s?}", "id",
	    (json_int_t)42, "messageId", "f3b1-77");
	free(got);

	capture_start();
	log_warn("x", "nulls and bools", "{s:s?, s:b, s:b, s:i}", "a", NULL,
	    "t", 1, "f", 0, "n", -5);
	got = capture_end();
	SAME(got, "warn", "x", "nulls and bools", "{s:s?, s:b, s:b, s:i}", "a",
	    NULL, "t", 1, "f", 0, "n", -5);
	free(got);

	capture_start();
	log_error(NULL, "no component, no fields", NULL);
	got = capture_end();
	SAME(got, "error", NULL, "no component, no fields", NULL);
	free(got);
}

static void
test_escaping(void)
{
	const char *v = "quote \" slash / nl \n tab \t ctl \x01 caf\xc3\xa9";
	char *got;

	capture_start();
	log_info("c\"omp", "m\\sg", "{s:s}", "k\ney", v);
	got = capture_end();
	SAME(got, "info", "c\"omp", "m\\sg", "{s:s}", "k\ney", v);
	free(got);
}

/* What the direct path does not take goes through jansson, which
 * answers as it always did: a log_error for a bad value, a replaced
 * value for a repeated key, the other formats as they are. */
static void
test_the_jansson_way(void)
{
	char *got;

	capture_start();
	log_info("c", "bad utf-8", "{s:I, s:s}", "id", (json_int_t)1, "v",
	    "bad \xff");
	got = capture_end();
	CHECK(strstr(got, "\"log_error\":") != NULL);
	SAME(got, "info", "c", "bad utf-8", "{s:I, s:s}", "id", (json_int_t)1,
	    "v", "bad \xff");
	free(got);

	capture_start();
	log_info("c", "m", "{s:s}", "msg", "replaced");
	got = capture_end();
	SAME(got, "info", "c", "m", "{s:s}", "msg", "replaced");
	free(got);

	capture_start();
	log_info("c", "m", "{s:f, s:s*}", "x", 1.5, "gone", NULL);
	got = capture_end();
	SAME(got, "info", "c", "m", "{s:f, s:s*}", "x", 1.5, "gone", NULL);
	free(got);

	capture_start();
	log_info("c", "m", "{s:s}", "v", NULL);
	got = capture_end();
	SAME(got, "info", "c", "m", "{s:s}", "v", NULL);
	free(got);
}

static void
test_filtered(void)
{
	char *got;

	log_set_level(LOG_WARN);
	capture_start();
	log_info("c", "dropped", "{s:i}", "n", 1);
	log_debug("c", "dropped", NULL);
	log_warn("c", "kept", NULL);
	got = capture_end();
	CHECK(strstr(got, "dropped") == NULL);
	CHECK(strstr(got, "\"msg\":\"kept\"") != NULL);
	CHECK(strchr(got, '\n') == got + strlen(got) - 1);
	free(got);
	log_set_level(LOG_INFO);
}

int
main(void)
{
	RUN(test_common_fields);
	RUN(test_escaping);
	RUN(test_the_jansson_way);
	RUN(test_filtered);
	return harness_done();
}
