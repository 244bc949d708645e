/* test_webhook.c - Retry-After parsing; no network. */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "webhook.h"

/* Sun, 06 Nov 1994 08:49:37 GMT, the RFC 9110 example date. */
#define RFC_DATE 784111777LL

static void
test_retry_after_delta(void)
{
	CHECK(webhook_parse_retry_after("0", RFC_DATE) == 0);
	CHECK(webhook_parse_retry_after("7", RFC_DATE) == 7);
	CHECK(webhook_parse_retry_after("120", RFC_DATE) == 120);
	CHECK(webhook_parse_retry_after("0042", RFC_DATE) == 42);
	/* As it arrives from the header callback: OWS and CRLF around. */
	CHECK(webhook_parse_retry_after(" 120\r\n", RFC_DATE) == 120);
	CHECK(webhook_parse_retry_after("\t5 ", RFC_DATE) == 5);
	/* Too large to represent counts as 2^31 (RFC 9111 1.2.2). */
	CHECK(webhook_parse_retry_after("99999999999999999999999", RFC_DATE) ==
	    2147483648LL);
	CHECK(webhook_parse_retry_after("2147483647", RFC_DATE) ==
	    2147483647LL);
}

static void
test_retry_after_date(void)
{
	/* The three HTTP-date forms, 30 s ahead of now. */
	CHECK(webhook_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
		  RFC_DATE - 30) == 30);
	CHECK(webhook_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT",
		  RFC_DATE - 30) == 30);
	CHECK(webhook_parse_retry_after("Sun Nov  6 08:49:37 1994",
		  RFC_DATE - 30) == 30);
	CHECK(webhook_parse_retry_after(" Sun, 06 Nov 1994 08:49:37 GMT\r\n",
		  RFC_DATE) == 0);
	/* A date already past means "now", not a negative delay. */
	CHECK(webhook_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT",
		  RFC_DATE + 3600) == 0);
	CHECK(webhook_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
		  1445412480LL - 3600) == 3600);
	/* Found by fuzz_reply: a date ~10^9 years ahead is capped like a
	 * huge delta (regress/reply/retry_after_far_date). */
	CHECK(webhook_parse_retry_after("Sun Nov  6 09:37 1106106190",
		  RFC_DATE) == 2147483648LL);
	CHECK(webhook_parse_retry_after("Sun, 06 Nov 1106106190 08:49:37 GMT",
		  RFC_DATE) == 2147483648LL);
}

static void
test_retry_after_invalid(void)
{
	char big[200];

	CHECK(webhook_parse_retry_after(NULL, RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("   \r\n", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("garbage", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("-5", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("-1", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("+5", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("1.5", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("5s", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("1 2", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("0x10", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("tomorrow", RFC_DATE) == -1);
	CHECK(webhook_parse_retry_after("Sun", RFC_DATE) == -1);
	/* Over-long values are ignored whole, never cut into a date. */
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big + 100, "Sun, 06 Nov 1994 08:49:37 GMT", 29);
	memcpy(big, "x", 1);
	CHECK(webhook_parse_retry_after(big, RFC_DATE) == -1);
}

int
main(void)
{
	RUN(test_retry_after_delta);
	RUN(test_retry_after_date);
	RUN(test_retry_after_invalid);
	return harness_done();
}
