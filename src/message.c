/* message.c - a message row as the API shows it, and its JSON. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's
 * algorithm): no gmtime_r, so no locale or time zone lock per value. */
static void
message_civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *
message_put_2(char *p, unsigned v)
{
	*p++ = (char)('0' + v / 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

static const char message_digits[] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";

static char *
message_put_int(char *p, int64_t v)
{
	char tmp[24];
	char *t = tmp + sizeof(tmp);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n;

	if (v < 0)
		*p++ = '-';
	while (u >= 100) {
		t -= 2;
		memcpy(t, &message_digits[(u % 100) * 2], 2);
		u /= 100;
	}
	if (u >= 10) {
		t -= 2;
		memcpy(t, &message_digits[u * 2], 2);
	} else {
		*--t = (char)('0' + u);
	}
	n = (size_t)(tmp + sizeof(tmp) - t);
	memcpy(p, t, n);
	return p + n;
}

/* Writes the timestamp without quotes or NUL; returns the end. */
static char *
message_put_time(char *p, int64_t ms)
{
	int64_t days = ms / 86400000, rest = ms % 86400000, y;
	unsigned mo, d, s;

	if (rest < 0) {
		rest += 86400000;
		days--;
	}
	message_civil(days, &y, &mo, &d);
	if (y < 0) {
		*p++ = '-';
		y = -y;
	}
	if (y < 1000)
		*p++ = '0';
	if (y < 100)
		*p++ = '0';
	if (y < 10)
		*p++ = '0';
	p = message_put_int(p, y);
	*p++ = '-';
	p = message_put_2(p, mo);
	*p++ = '-';
	p = message_put_2(p, d);
	*p++ = 'T';
	s = (unsigned)(rest / 1000);
	p = message_put_2(p, s / 3600);
	*p++ = ':';
	p = message_put_2(p, s / 60 % 60);
	*p++ = ':';
	p = message_put_2(p, s % 60);
	*p++ = '.';
	s = (unsigned)(rest % 1000);
	*p++ = (char)('0' + s / 100);
	p = message_put_2(p, s % 100);
	*p++ = 'Z';
	return p;
}

size_t
message_time_format(int64_t ms, char *buf)
{
	char *end = message_put_time(buf, ms);

	*end = '\0';
	return (size_t)(end - buf);
}

/* Bytes of a valid UTF-8 sequence starting at u (RFC 3629: no overlongs,
 * no surrogates, nothing past U+10FFFF; jansson's own rules), 0 if it is
 * not one. */
static size_t
message_utf8_len(const unsigned char *u)
{
	unsigned c = u[0];
	unsigned lo = 0x80, hi = 0xBF;
	size_t n;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (u[1] < lo || u[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (u[i] < 0x80 || u[i] > 0xBF)
			return 0;
	return n;
}

/* Whether any of the 8 bytes of w needs more than a copy: a control
 * character, '"', '\\' or a byte of a multi-byte UTF-8 sequence (the
 * classic "has a zero byte" trick, per class). */
static inline bool
message_word_special(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t highs = 0x8080808080808080ULL;
	uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');

	return ((w - ones * 0x20) | (q - ones) | (b - ones) | w) & highs;
}

/* A JSON string as jansson dumps it without flags: '"', '\\' and control
 * characters escaped, everything else (UTF-8 included) as it is. NULL on
 * invalid UTF-8. At most 6 bytes out per byte in, plus the quotes. Plain
 * ASCII goes 8 bytes at a time. */
static char *
message_put_string(char *p, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)s;
	const unsigned char *end = u + strlen(s);

	*p++ = '"';
	while (u < end) {
		unsigned c;
		size_t n;

		if (end - u >= 8) {
			uint64_t w;

			memcpy(&w, u, 8);
			if (!message_word_special(w)) {
				memcpy(p, &w, 8);
				p += 8;
				u += 8;
				continue;
			}
		}
		c = *u;
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*p++ = (char)c;
			u++;
			continue;
		}
		if (c >= 0x80) {
			if ((n = message_utf8_len(u)) == 0)
				return NULL;
			memcpy(p, u, n);
			p += n;
			u += n;
			continue;
		}
		*p++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*p++ = (char)c;
			break;
		case '\b':
			*p++ = 'b';
			break;
		case '\f':
			*p++ = 'f';
			break;
		case '\n':
			*p++ = 'n';
			break;
		case '\r':
			*p++ = 'r';
			break;
		case '\t':
			*p++ = 't';
			break;
		default:
			memcpy(p, "u00", 3);
			p[3] = hex[c >> 4];
			p[4] = hex[c & 0xF];
			p += 5;
			break;
		}
		u++;
	}
	*p++ = '"';
	return p;
}

static char *
message_put_lit(char *p, const char *lit, size_t len)
{
	memcpy(p, lit, len);
	return p + len;
}

#define PUT(p, lit) message_put_lit(p, lit, sizeof(lit) - 1)

static size_t
message_string_bound(const char *s)
{
	return s == NULL ? 4 : 2 + 6 * strlen(s);
}

/* Keys, punctuation, two 20-digit integers, two timestamps of up to 30
 * bytes: well inside this. */
#define MESSAGE_ROW_FIXED 256

static char *
message_put_row(char *p, const struct message *m)
{
	p = PUT(p, "{\"id\":");
	p = message_put_int(p, m->id);
	p = PUT(p, ",\"recipient\":");
	if (m->recipient == NULL ||
	    (p = message_put_string(p, m->recipient)) == NULL)
		return NULL;
	p = PUT(p, ",\"content\":");
	if (m->content == NULL ||
	    (p = message_put_string(p, m->content)) == NULL)
		return NULL;
	p = PUT(p, ",\"status\":");
	if (m->status == NULL || (p = message_put_string(p, m->status)) == NULL)
		return NULL;
	p = PUT(p, ",\"sent_at\":");
	if (m->sent_at_ms == MESSAGE_NO_TIME) {
		p = PUT(p, "null");
	} else {
		*p++ = '"';
		p = message_put_time(p, m->sent_at_ms);
		*p++ = '"';
	}
	p = PUT(p, ",\"retry_count\":");
	p = message_put_int(p, m->retry_count);
	if (m->created_at_ms == MESSAGE_NO_TIME)
		return NULL;
	p = PUT(p, ",\"created_at\":\"");
	p = message_put_time(p, m->created_at_ms);
	p = PUT(p, "\",\"response_id\":");
	if (m->response_id == NULL)
		p = PUT(p, "null");
	else if ((p = message_put_string(p, m->response_id)) == NULL)
		return NULL;
	*p++ = '}';
	return p;
}

int
message_list_write(struct evbuffer *out, const struct message *m, size_t n)
{
	return message_page_write(out, m, n, NULL);
}

/* The cursor is ours (letters, digits, '_'), so it is copied as it is. */
int
message_page_write(struct evbuffer *out, const struct message *m, size_t n,
    const char *next)
{
	struct evbuffer_iovec vec;
	size_t bound = 64 + (next != NULL ? message_string_bound(next) : 0);
	char *p, *start;

	for (size_t i = 0; i < n; i++)
		bound += MESSAGE_ROW_FIXED +
		    message_string_bound(m[i].recipient) +
		    message_string_bound(m[i].content) +
		    message_string_bound(m[i].status) +
		    message_string_bound(m[i].response_id);
	if (evbuffer_reserve_space(out, (ev_ssize_t)bound, &vec, 1) != 1)
		return -1;
	start = p = vec.iov_base;
	p = PUT(p, "{\"messages\":[");
	for (size_t i = 0; i < n && p != NULL; i++) {
		if (i > 0)
			*p++ = ',';
		p = message_put_row(p, &m[i]);
	}
	/* Not committed: the reserved space is simply not used. */
	if (p == NULL)
		return -1;
	p = PUT(p, "],\"count\":");
	p = message_put_int(p, (int64_t)n);
	p = PUT(p, ",\"next\":");
	if (next == NULL)
		p = PUT(p, "null");
	else if ((p = message_put_string(p, next)) == NULL)
		return -1;
	*p++ = '}';
	vec.iov_len = (size_t)(p - start);
	return evbuffer_commit_space(out, &vec, 1);
}

json_t *
message_to_json(const struct message *m)
{
	char sent[MESSAGE_TIME_LEN], created[MESSAGE_TIME_LEN];

	if (m->sent_at_ms != MESSAGE_NO_TIME)
		message_time_format(m->sent_at_ms, sent);
	if (m->created_at_ms == MESSAGE_NO_TIME)
		return NULL;
	message_time_format(m->created_at_ms, created);
	return json_pack("{s:I, s:s, s:s, s:s, s:s?, s:i, s:s, s:s?}", "id",
	    (json_int_t)m->id, "recipient", m->recipient, "content", m->content,
	    "status", m->status, "sent_at",
	    m->sent_at_ms != MESSAGE_NO_TIME ? sent : NULL, "retry_count",
	    m->retry_count, "created_at", created, "response_id",
	    m->response_id);
}

/* A timestamp member, null for MESSAGE_NO_TIME; 0 or -1 (no memory). */
static int
message_set_time(json_t *obj, const char *key, int64_t ms)
{
	char buf[MESSAGE_TIME_LEN];

	if (ms == MESSAGE_NO_TIME)
		return json_object_set_new(obj, key, json_null());
	message_time_format(ms, buf);
	return json_object_set_new(obj, key, json_string(buf));
}

json_t *
message_detail_to_json(const struct message_detail *d)
{
	json_t *obj = message_to_json(&d->m);
	json_t *attempts;

	if (obj == NULL)
		return NULL;
	attempts = json_loads(d->attempts != NULL ? d->attempts : "[]", 0,
	    NULL);
	if (!json_is_array(attempts)) {
		json_decref(attempts);
		json_decref(obj);
		return NULL;
	}
	if (json_object_set_new(obj, "error_message",
		d->error_message != NULL ? json_string(d->error_message) :
					   json_null()) != 0 ||
	    json_object_set_new(obj, "response_code",
		d->response_code != NULL ?
		    json_integer(strtoll(d->response_code, NULL, 10)) :
		    json_null()) != 0 ||
	    message_set_time(obj, "last_attempt_at", d->last_attempt_at_ms) !=
		0 ||
	    message_set_time(obj, "next_attempt_at", d->next_attempt_at_ms) !=
		0 ||
	    message_set_time(obj, "updated_at", d->updated_at_ms) != 0 ||
	    json_object_set_new(obj, "attempts", attempts) != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}
