/* fuzz_query.c - GET /messages' query string: limit and offset.
 * (A cursor parameter, when the listing gets one, belongs here too.) */
#include <string.h>

#include "fuzz.h"
#include "query.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = fuzz_cstr(data, size);
	char err[256];
	int limit = -1, offset = -1;

	err[0] = '\0';
	if (query_parse_list(q, &limit, &offset, err, sizeof(err)) == 0) {
		FUZZ_CHECK(limit >= 1 && limit <= QUERY_LIMIT_MAX);
		FUZZ_CHECK(offset >= 0);
	} else {
		/* The reason is the 400 body: never empty, always ended. */
		FUZZ_CHECK(err[0] != '\0');
		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	}
	free(q);
	return 0;
}
