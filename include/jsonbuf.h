/* jsonbuf.h - small JSON documents written straight into a buffer.
 *
 * For the per-message path (webhook bodies, cache entries), where building
 * a jansson tree and dumping it cost more than everything else the message
 * needed. The output is byte for byte what json_dumps(JSON_COMPACT) gives
 * for the same strings, and a string that jansson would refuse (not valid
 * UTF-8) is refused here too. The buffer keeps its memory across
 * jsonbuf_reset, so a reused one stops allocating.
 */
#ifndef GOPULSE_JSONBUF_H
#define GOPULSE_JSONBUF_H

#include <stddef.h>

#include "common.h"

struct jsonbuf {
	char *buf;
	size_t len;
	size_t cap;
};

/* A zeroed struct is an empty buffer too. */
void jsonbuf_init(struct jsonbuf *b);
void jsonbuf_fini(struct jsonbuf *b);
/* Empty again, memory kept. */
void jsonbuf_reset(struct jsonbuf *b);
/* n bytes as they are: punctuation, keys known to need no escaping. */
void jsonbuf_raw(struct jsonbuf *b, const char *s, size_t n);
/* s as a JSON string literal, quotes included. -1 when s is not valid
 * UTF-8 (as jansson checks it): then b is as it was. */
int jsonbuf_string(struct jsonbuf *b, const char *s) MUSTCHECK;
/* The text so far, NUL-terminated; valid until the next change. */
const char *jsonbuf_text(struct jsonbuf *b);

/* The length of s's first UTF-8 sequence (1-4), or 0 when it is not a
 * valid one: overlong, a surrogate, above U+10FFFF, or cut short. */
size_t jsonbuf_utf8_len(const unsigned char *s);

#endif
