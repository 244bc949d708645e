/* fuzz_reply.c - a webhook's answer as the service reads it: the
 * Retry-After value, then the status and body through outcome_decide
 * (the reply's JSON and its messageId).
 *
 * Input: byte 0-1 the status, byte 2 flags (bit 0: body cut at the cap,
 * bit 1: a transport error), byte 3 the attempts so far, then the
 * Retry-After value up to the first '\n', then the body. */
#include <string.h>

#include "fuzz.h"
#include "outcome.h"
#include "webhook.h"

/* A fixed "now" (2026-01-01), so a date's answer depends on the input only. */
#define FUZZ_NOW 1767225600LL

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct webhook_result r;
	struct outcome o;
	const char *nl;
	char *value;
	char *body;
	size_t vlen;
	int tries;

	if (size < 4)
		return 0;
	memset(&r, 0, sizeof(r));
	r.http_status = 100 + (data[0] << 8 | data[1]) % 500;
	r.body_truncated = data[2] & 1;
	if (data[2] & 2) {
		r.curl_code = 28; /* CURLE_OPERATION_TIMEDOUT */
		r.error = "timed out";
		r.http_status = 0;
	} else if (r.body_truncated) {
		r.error = WEBHOOK_REPLY_TOO_LARGE;
	}
	tries = data[3] % 8;
	data += 4;
	size -= 4;
	nl = memchr(data, '\n', size);
	vlen = nl != NULL ? (size_t)((const uint8_t *)nl - data) : size;
	value = fuzz_cstr(data, vlen);
	r.retry_after_s = webhook_parse_retry_after(value, FUZZ_NOW);
	FUZZ_CHECK(r.retry_after_s >= -1);
	data += vlen;
	size -= vlen;
	if (size > 0) {
		data++;
		size--;
	}
	body = fuzz_cstr(data, size);
	r.body = body;
	r.body_len = size;
	outcome_decide(&o, &r, tries, 5, 100, (tries & 1) ? 1000 : -1);
	if (o.kind == OUTCOME_SENT) {
		FUZZ_CHECK(r.http_status >= 200 && r.http_status < 300);
		FUZZ_CHECK(o.response_id == NULL ||
		    (strlen(o.response_id) > 0 &&
			strlen(o.response_id) <= 255));
		FUZZ_CHECK(!r.body_truncated || o.response_id == NULL);
	} else {
		FUZZ_CHECK(o.error != NULL && o.response_id == NULL);
		FUZZ_CHECK(o.delay_ms >= 0);
	}
	outcome_fini(&o);
	free(body);
	free(value);
	return 0;
}
