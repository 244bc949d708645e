/* harness.h - a tiny test harness in the style of hiredis' test.c.
 * Each TEST is a function; RUN counts it passed when none of its CHECKs
 * failed. The binary ends with "N passed, N failed". */
#ifndef GOPULSE_HARNESS_H
#define GOPULSE_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_checks_failed;
static int harness_passed;
static int harness_failed;

#define CHECK(cond) \
	do { \
		if (!(cond)) { \
			harness_checks_failed++; \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", \
			    __FILE__, __LINE__, #cond); \
		} \
	} while (0)

#define CHECK_STR(a, b) \
	do { \
		const char *a_ = (a), *b_ = (b); \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) { \
			harness_checks_failed++; \
			fprintf(stderr, "  %s:%d: \"%s\" != \"%s\"\n", \
			    __FILE__, __LINE__, a_ ? a_ : "(null)", \
			    b_ ? b_ : "(null)"); \
		} \
	} while (0)

#define RUN(fn) \
	do { \
		int before_ = harness_checks_failed; \
		fn(); \
		if (harness_checks_failed == before_) { \
			harness_passed++; \
			printf("ok   %s\n", #fn); \
		} else { \
			harness_failed++; \
			printf("FAIL %s\n", #fn); \
		} \
	} while (0)

static inline int
harness_done(void)
{
	printf("%d passed, %d failed\n", harness_passed, harness_failed);
	return harness_failed ? 1 : 0;
}

#endif
