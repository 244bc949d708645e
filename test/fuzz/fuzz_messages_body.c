/* fuzz_messages_body.c - POST /messages' body: the JSON parse (duplicate
 * keys refused) and the validator. What it accepts must be what the
 * contract says: recipient "+" and 10 to 15 digits, content 1 to 160
 * code points of valid UTF-8; what it refuses gets a reason. */
#include <string.h>

#include "api.h"
#include "fuzz.h"

/* Code points of valid UTF-8 (jansson hands over nothing else). */
static size_t
fuzz_code_points(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *recipient = NULL, *content = NULL, *problem;
	char why[160];
	json_t *doc = NULL;
	size_t digits;

	why[0] = '\0';
	problem = api_create_parse((const char *)data, size, &doc, &recipient,
	    &content, why, sizeof(why));
	if (problem == NULL) {
		FUZZ_CHECK(doc != NULL && json_is_object(doc));
		FUZZ_CHECK(json_object_size(doc) == 2);
		FUZZ_CHECK(recipient != NULL && content != NULL);
		FUZZ_CHECK(recipient[0] == '+');
		digits = strspn(recipient + 1, "0123456789");
		FUZZ_CHECK(recipient[1 + digits] == '\0');
		FUZZ_CHECK(digits >= 10 && digits <= 15);
		FUZZ_CHECK(fuzz_code_points(content) >= 1 &&
		    fuzz_code_points(content) <= 160);
	} else {
		/* The 400's reason: never empty, always ended. */
		FUZZ_CHECK(problem[0] != '\0');
		FUZZ_CHECK(problem != why ||
		    memchr(why, '\0', sizeof(why)) != NULL);
	}
	json_decref(doc);
	return 0;
}
