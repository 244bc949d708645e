/* test_sign.c - Standard Webhooks signatures against vectors computed
 * independently (Python's hmac), and the checks of WEBHOOK_SECRET. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sign.h"

#define S1 "whsec_p5N7ZLjKpY8Dchu2us9ceMsjX+vg5wsbhM2ZVBRhoI4="
#define S2 "whsec_FjZ6rLZ6SgF8jairlWgsyzkIY3gPcRTd"
#define BODY "{\"to\":\"+1\",\"content\":\"hi\"}"
#define SIG1 "v1,VRMb7/0bXz3DXN9jesuwGhwlrqH4aI/L/HM/B/oMkek="
#define SIG2 "v1,/nuA1GfRejC4YnvG3KHkYLnNagUcyfcorM4iYFARqls="

static void
test_vectors(void)
{
	struct sign *s = sign_new(S1);
	char out[256];

	CHECK(sign_count(s) == 1);
	CHECK(sign_len(s) == strlen(SIG1));
	CHECK(sign_message(s, "msg_1", 1700000000, BODY, strlen(BODY), out,
		  sizeof(out)) == 0);
	CHECK_STR(out, SIG1);
	/* Again: the context is reused, the key kept. */
	CHECK(sign_message(s, "msg_1", 1700000000, BODY, strlen(BODY), out,
		  sizeof(out)) == 0);
	CHECK_STR(out, SIG1);
	/* Too small a buffer is refused, not overrun. */
	CHECK(sign_message(s, "msg_1", 1700000000, BODY, strlen(BODY), out,
		  sign_len(s)) == -1);
	sign_free(s);
}

static void
test_rotation(void)
{
	struct sign *s = sign_new("  " S1 "   " S2 " ");
	char out[256];

	CHECK(sign_count(s) == 2);
	CHECK(sign_message(s, "msg_1", 1700000000, BODY, strlen(BODY), out,
		  sizeof(out)) == 0);
	CHECK_STR(out, SIG1 " " SIG2);
	CHECK(sign_len(s) == strlen(out));
	sign_free(s);
}

static void
test_unpadded(void)
{
	/* 25 bytes of 'k' without its padding. */
	struct sign *s = sign_new("whsec_a2tra2tra2tra2tra2tra2tra2tra2traw");
	char out[256];

	CHECK(sign_message(s, "msg_1", 1700000000, BODY, strlen(BODY), out,
		  sizeof(out)) == 0);
	CHECK_STR(out, "v1,vAsI1UKg3el7Oke1Ot1vmNxxRkq/k3MkYKzOfPvGD5E=");
	sign_free(s);
}

static void
test_check(void)
{
	static const char *const bad[] = {
		"abc",
		"whsec_",
		"whsec_!!!!",
		"whsec_c2hvcnQ=",			   /* 5 bytes */
		"whsec_a2tra2tra2tra2tra2tra2tra2tra2tra", /* 1 char dangling */
		"whsec_a2tr=a2tra2tra2tra2tra2tra2tra2tra2traw",
		S1 " nope",
		S1 " " S1 " " S1 " " S1 " " S1 " " S1 " " S1 " " S1 " " S1,
	};
	char why[128];

	CHECK(sign_check("", why, sizeof(why)) == 0);
	CHECK(sign_check("   ", why, sizeof(why)) == 0);
	CHECK(sign_check(S1, why, sizeof(why)) == 0);
	CHECK(sign_check(S1 " " S2, why, sizeof(why)) == 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		CHECK(sign_check(bad[i], why, sizeof(why)) == -1);
		CHECK(why[0] != '\0');
		/* The reason never repeats the secret. */
		CHECK(strstr(why, "p5N7") == NULL &&
		    strstr(why, "c2hv") == NULL);
	}
}

int
main(void)
{
	RUN(test_vectors);
	RUN(test_rotation);
	RUN(test_unpadded);
	RUN(test_check);
	return harness_done();
}
