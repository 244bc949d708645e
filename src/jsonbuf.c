/* jsonbuf.c - small JSON documents written straight into a buffer. */
#include <stdlib.h>
#include <string.h>

#include "jsonbuf.h"

void
jsonbuf_init(struct jsonbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void
jsonbuf_fini(struct jsonbuf *b)
{
	free(b->buf);
	jsonbuf_init(b);
}

void
jsonbuf_reset(struct jsonbuf *b)
{
	b->len = 0;
}

/* Room for n more bytes and the NUL. */
static void
jsonbuf_reserve(struct jsonbuf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	char *nb;

	if (b->len + n + 1 <= b->cap)
		return;
	while (cap < b->len + n + 1)
		cap *= 2;
	nb = realloc(b->buf, cap);
	if (nb == NULL)
		abort();
	b->buf = nb;
	b->cap = cap;
}

void
jsonbuf_raw(struct jsonbuf *b, const char *s, size_t n)
{
	jsonbuf_reserve(b, n);
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

const char *
jsonbuf_text(struct jsonbuf *b)
{
	jsonbuf_reserve(b, 0);
	b->buf[b->len] = '\0';
	return b->buf;
}

size_t
jsonbuf_utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xC2) /* a continuation byte, or a 2-byte overlong */
		return 0;
	if (s[0] < 0xE0) {
		n = 2;
		cp = s[0] & 0x1F;
	} else if (s[0] < 0xF0) {
		n = 3;
		cp = s[0] & 0x0F;
	} else if (s[0] < 0xF5) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	/* A NUL ends the loop too: it is no continuation byte. */
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
		return 0;
	return n;
}

/* What jansson escapes without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH:
 * the quote, the backslash and the control characters. */
static int
jsonbuf_plain(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

int
jsonbuf_string(struct jsonbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t start = b->len;

	jsonbuf_raw(b, "\"", 1);
	while (*p != '\0') {
		const unsigned char *run = p;
		size_t n;

		/* Runs of plain ASCII, the common case, in one copy. */
		while (*p < 0x80 && jsonbuf_plain(*p))
			p++;
		if (p > run)
			jsonbuf_raw(b, (const char *)run, (size_t)(p - run));
		if (*p == '\0')
			break;
		if (*p >= 0x80) {
			if ((n = jsonbuf_utf8_len(p)) == 0) {
				b->len = start;
				return -1;
			}
			jsonbuf_raw(b, (const char *)p, n);
			p += n;
			continue;
		}
		switch (*p) {
		case '"':
			jsonbuf_raw(b, "\\\"", 2);
			break;
		case '\\':
			jsonbuf_raw(b, "\\\\", 2);
			break;
		case '\b':
			jsonbuf_raw(b, "\\b", 2);
			break;
		case '\f':
			jsonbuf_raw(b, "\\f", 2);
			break;
		case '\n':
			jsonbuf_raw(b, "\\n", 2);
			break;
		case '\r':
			jsonbuf_raw(b, "\\r", 2);
			break;
		case '\t':
			jsonbuf_raw(b, "\\t", 2);
			break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4],
				hex[*p & 0xF] };

			jsonbuf_raw(b, u, sizeof(u));
			break;
		}
		}
		p++;
	}
	jsonbuf_raw(b, "\"", 1);
	return 0;
}
