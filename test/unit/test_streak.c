/* test_streak.c - a repeating condition: its first occurrence is logged,
 * the rest counted until it ends (the summary's minute is not waited
 * for here: test_logs.py sees the lines of the real service). */
#include "harness.h"
#include "streak.h"

static void
test_first_then_counted_then_ended(void)
{
	struct streak s = STREAK_INIT(LOG_WARN, "test", "failing",
	    "still failing", "works again");

	log_set_level(LOG_ERROR); /* keep the output to the results */
	CHECK(!streak_on(&s));
	CHECK(streak_hit(&s, "{s:i}", "n", 1));
	CHECK(streak_on(&s));
	for (int i = 0; i < 100; i++)
		CHECK(!streak_hit(&s, "{s:i}", "n", i));
	CHECK(s.total == 101);
	CHECK(s.unlogged == 100);
	streak_end(&s);
	CHECK(!streak_on(&s));
	/* Ending twice, or with nothing on, writes nothing. */
	streak_end(&s);
	CHECK(s.total == 0);
	/* The next occurrence starts a new streak, logged again. */
	CHECK(streak_hit(&s, NULL));
	CHECK(s.total == 1);
}

int
main(void)
{
	RUN(test_first_then_counted_then_ended);
	return harness_done();
}
