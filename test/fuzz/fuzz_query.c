/* fuzz_query.c - the query strings and path parts the API parses: GET
 * /messages' limit, offset, status and after (the cursor), retry-failed's
 * since, and a message id of a path. */
#include <string.h>

#include "fuzz.h"
#include "query.h"

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
	{
		struct query_list l;

		memset(&l, 0, sizeof(l));
		err[0] = '\0';
		if (query_parse_listing(q, &l, err, sizeof(err)) == 0) {
			FUZZ_CHECK(l.limit >= 1 && l.limit <= QUERY_LIMIT_MAX);
			FUZZ_CHECK(l.offset >= 0);
			FUZZ_CHECK(memchr(l.after, '\0', sizeof(l.after)));
		} else {
			FUZZ_CHECK(err[0] != '\0');
		}
	}
	{
		char since[40];

		err[0] = '\0';
		if (query_parse_since(q, since, err, sizeof(err)) == 0)
			FUZZ_CHECK(memchr(since, '\0', sizeof(since)));
		else
			FUZZ_CHECK(err[0] != '\0');
	}
	{
		int64_t id = -1;

		/* Digits only, below 2^63: never negative when accepted. */
		if (query_parse_id(q, &id) == 0) {
			FUZZ_CHECK(id >= 0);
			FUZZ_CHECK(q[0] >= '0' && q[0] <= '9');
		}
	}
	free(q);
	return 0;
}
