/* test_util.c - fake data, backoff, timestamps. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"
#include "harness.h"
#include "util.h"

static void
test_fake_phone(void)
{
	int seen_len[16] = { 0 };

	for (int i = 0; i < 20000; i++) {
		char p[FAKE_PHONE_MAX];
		size_t n;
		bool ok = true;

		fake_phone(p);
		n = strlen(p);
		ok = p[0] == '+' && n >= 11 && n <= 16 && p[1] != '0';
		for (size_t k = 1; k < n; k++)
			ok = ok && isdigit((unsigned char)p[k]);
		CHECK(ok);
		if (!ok) {
			fprintf(stderr, "  bad phone %s\n", p);
			return;
		}
		seen_len[n - 1]++;
	}
	/* Every length from 10 to 15 digits turns up. */
	for (int d = 10; d <= 15; d++)
		CHECK(seen_len[d] > 0);
}

static void
test_fake_sentence(void)
{
	for (int i = 0; i < 20000; i++) {
		char s[FAKE_CONTENT_MAX];
		size_t n;
		bool ok;

		fake_sentence(s);
		n = strlen(s);
		ok = n >= 1 && n <= 160 && s[n - 1] == '.' &&
		    isupper((unsigned char)s[0]);
		for (size_t k = 0; k < n; k++)
			ok = ok && (unsigned char)s[k] < 0x80 &&
			    isprint((unsigned char)s[k]);
		CHECK(ok);
		if (!ok) {
			fprintf(stderr, "  bad sentence \"%s\"\n", s);
			return;
		}
	}
}

static void
test_backoff(void)
{
	/* No jitter: exact doubling, then the cap. */
	CHECK(util_backoff_ms(100, 5000, 0, 0) == 100);
	CHECK(util_backoff_ms(100, 5000, 1, 0) == 200);
	CHECK(util_backoff_ms(100, 5000, 5, 0) == 3200);
	CHECK(util_backoff_ms(100, 5000, 6, 0) == 5000);
	CHECK(util_backoff_ms(100, 5000, 1000, 0) == 5000);
	/* 20 % jitter stays within its band and actually varies. */
	int64_t lo = 1 << 30, hi = 0;

	for (int i = 0; i < 5000; i++) {
		int64_t d = util_backoff_ms(1000, 60000, 2, 20);

		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	CHECK(lo >= 3200 && hi <= 4800);
	CHECK(hi - lo > 1000);
}

static void
test_rfc3339(void)
{
	char buf[32];

	util_rfc3339(0, 0, buf, sizeof(buf));
	CHECK_STR(buf, "1970-01-01T00:00:00Z");
	util_rfc3339(1795775400123LL, 1, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:30:00.123Z");
	util_rfc3339(1795775400005LL, 1, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:30:00.005Z");
}

/* The text of the last second is cached: moving to another second and
 * back, and every millisecond in between, must still be exact. */
static void
test_rfc3339_cache(void)
{
	char buf[32], small[12];

	util_rfc3339(1795775400999LL, 1, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:30:00.999Z");
	util_rfc3339(1795775401000LL, 1, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:30:01.000Z");
	util_rfc3339(1795775401000LL, 0, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:30:01Z");
	util_rfc3339(1795775400500LL, 0, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:30:00Z");
	util_rfc3339(1795861800042LL, 1, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-28T10:30:00.042Z");
	/* Before 1970 the second is the floor, the milliseconds positive. */
	util_rfc3339(-1, 1, buf, sizeof(buf));
	CHECK_STR(buf, "1969-12-31T23:59:59.999Z");
	/* A short buffer is cut and terminated, as snprintf does. */
	util_rfc3339(1795775400123LL, 1, small, sizeof(small));
	CHECK_STR(small, "2026-11-27T");
}

static void
test_http_date(void)
{
	char first[40];

	CHECK_STR(util_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
	CHECK_STR(util_http_date(1795775400123LL),
	    "Fri, 27 Nov 2026 10:30:00 GMT");
	snprintf(first, sizeof(first), "%s", util_http_date(1795775400999LL));
	CHECK_STR(first, "Fri, 27 Nov 2026 10:30:00 GMT");
	CHECK_STR(util_http_date(1795775401000LL),
	    "Fri, 27 Nov 2026 10:30:01 GMT");
	CHECK_STR(util_http_date(951782400000LL),
	    "Tue, 29 Feb 2000 00:00:00 GMT");
	CHECK_STR(util_http_date(1798761599000LL),
	    "Thu, 31 Dec 2026 23:59:59 GMT");
}

int
main(void)
{
	RUN(test_fake_phone);
	RUN(test_fake_sentence);
	RUN(test_backoff);
	RUN(test_rfc3339);
	RUN(test_rfc3339_cache);
	RUN(test_http_date);
	return harness_done();
}
