/* test_jsonbuf.c - hand-written JSON against jansson's own output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "jsonbuf.h"

/* jansson's verdict on s: its compact dump as a JSON string, or NULL
 * when it refuses s (not valid UTF-8). Free the result. */
static char *
jansson_string(const char *s)
{
	json_t *j = json_string(s);
	char *out;

	if (j == NULL)
		return NULL;
	out = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	return out;
}

/* jsonbuf must agree with jansson on s, byte for byte. */
static int
agrees(const char *s)
{
	struct jsonbuf b;
	char *want = jansson_string(s);
	int rc, ok;

	jsonbuf_init(&b);
	jsonbuf_raw(&b, "x", 1);
	rc = jsonbuf_string(&b, s);
	if (want == NULL)
		/* Refused, and the buffer is as it was. */
		ok = rc == -1 && strcmp(jsonbuf_text(&b), "x") == 0;
	else
		ok = rc == 0 && strcmp(jsonbuf_text(&b) + 1, want) == 0;
	if (!ok)
		fprintf(stderr,
		    "  disagree on \"%s\": jansson %s, jsonbuf %s\n", s,
		    want ? want : "(refused)",
		    rc == 0 ? jsonbuf_text(&b) + 1 : "(refused)");
	free(want);
	jsonbuf_fini(&b);
	return ok;
}

static void
test_escapes(void)
{
	char ctl[2] = { 0, 0 };

	CHECK(agrees(""));
	CHECK(agrees("plain ascii, spaces and / slashes"));
	CHECK(agrees("quote \" backslash \\ end"));
	CHECK(agrees("\b\f\n\r\t"));
	CHECK(agrees("\x7f del"));
	for (int c = 1; c < 0x20; c++) {
		ctl[0] = (char)c;
		CHECK(agrees(ctl));
	}
}

static void
test_utf8(void)
{
	/* Valid: 2, 3 and 4 bytes, the edges of each range. */
	CHECK(agrees("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	CHECK(agrees("\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xef\xbf\xbf"));
	CHECK(agrees("\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf"));
	/* Invalid: continuation first, overlongs, surrogates, above
	 * U+10FFFF, bytes never used, sequences cut short. */
	CHECK(agrees("\x80"));
	CHECK(agrees("a\xbf"));
	CHECK(agrees("\xc0\x80"));
	CHECK(agrees("\xc1\xbf"));
	CHECK(agrees("\xe0\x80\x80"));
	CHECK(agrees("\xe0\x9f\xbf"));
	CHECK(agrees("\xf0\x80\x80\x80"));
	CHECK(agrees("\xf0\x8f\xbf\xbf"));
	CHECK(agrees("\xed\xa0\x80"));
	CHECK(agrees("\xed\xbf\xbf"));
	CHECK(agrees("\xf4\x90\x80\x80"));
	CHECK(agrees("\xf5\x80\x80\x80"));
	CHECK(agrees("\xff"));
	CHECK(agrees("\xe2\x82"));
	CHECK(agrees("\xe2\x82x"));
	CHECK(agrees("\xf0\x9f\x98"));
	CHECK(agrees("bad \xff\xfe 1"));
}

/* Random strings over a mix of ASCII, controls and high bytes. */
static void
test_random(void)
{
	static const unsigned char pool[] = { 'a', ' ', '"', '\\', '/', '\n',
		0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2,
		0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xa0, 0x9f, 0x90, 0x8f, 0xff };
	char s[16];
	unsigned seed = 12345;
	int bad = 0;

	for (int i = 0; i < 200000 && bad < 5; i++) {
		size_t n = (size_t)(rand_r(&seed) % (sizeof(s) - 1));

		for (size_t k = 0; k < n; k++)
			s[k] = (char)pool[(size_t)rand_r(&seed) % sizeof(pool)];
		s[n] = '\0';
		if (!agrees(s))
			bad++;
	}
	CHECK(bad == 0);
}

static void
test_document_and_reuse(void)
{
	struct jsonbuf b;
	char big[3000];

	jsonbuf_init(&b);
	jsonbuf_raw(&b, "{\"to\":", 6);
	CHECK(jsonbuf_string(&b, "+15550001111") == 0);
	jsonbuf_raw(&b, ",\"content\":", 11);
	CHECK(jsonbuf_string(&b, "hi \"you\"") == 0);
	jsonbuf_raw(&b, "}", 1);
	CHECK_STR(jsonbuf_text(&b),
	    "{\"to\":\"+15550001111\",\"content\":\"hi \\\"you\\\"\"}");
	/* Reset keeps the memory; growth past it works. */
	jsonbuf_reset(&b);
	CHECK_STR(jsonbuf_text(&b), "");
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(jsonbuf_string(&b, big) == 0);
	CHECK(b.len == 2 + 2 * (sizeof(big) - 1));
	jsonbuf_fini(&b);
}

int
main(void)
{
	RUN(test_escapes);
	RUN(test_utf8);
	RUN(test_random);
	RUN(test_document_and_reuse);
	return harness_done();
}
