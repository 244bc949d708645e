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

int
main(void)
{
	RUN(test_fake_phone);
	RUN(test_fake_sentence);
	RUN(test_backoff);
	RUN(test_rfc3339);
	return harness_done();
}
