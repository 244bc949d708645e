/* streak.c - a condition that repeats, logged as one line and summaries. */
#include <stdarg.h>

#include "streak.h"
#include "timing.h"
#include "util.h"

bool
streak_hit(struct streak *s, const char *fields_fmt, ...)
{
	int64_t now = util_now_ms();
	va_list ap;

	if (s->total++ == 0) {
		s->started_ms = s->logged_ms = now;
		s->unlogged = 0;
		va_start(ap, fields_fmt);
		log_vwrite(s->level, s->component, s->start, fields_fmt, ap);
		va_end(ap);
		return true;
	}
	s->unlogged++;
	if (now - s->logged_ms < TIMING_LOG_SUMMARY_MS)
		return false;
	log_write(s->level, s->component, s->summary, "{s:I, s:I, s:I}",
	    "count", (json_int_t)s->unlogged, "total", (json_int_t)s->total,
	    "for_ms", (json_int_t)(now - s->started_ms));
	s->unlogged = 0;
	s->logged_ms = now;
	return true;
}

void
streak_end(struct streak *s)
{
	if (s->total == 0)
		return;
	log_info(s->component, s->end, "{s:I, s:I}", "total",
	    (json_int_t)s->total, "for_ms",
	    (json_int_t)(util_now_ms() - s->started_ms));
	s->total = 0;
	s->unlogged = 0;
}

bool
streak_on(const struct streak *s)
{
	return s->total > 0;
}
