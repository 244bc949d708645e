/* test_http_parts.c - query validation, routing table, JSON rendering. */
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "harness.h"
#include "message.h"
#include "query.h"
#include "reply.h"
#include "router.h"
#include "service.h"

static void
test_query_valid(void)
{
	/* clang-format off */
	static const struct { const char *q; int limit, offset; } cases[] = {
		{ NULL, 10, 0 }, { "", 10, 0 }, { "limit=1", 1, 0 },
		{ "limit=100", 100, 0 }, { "offset=0", 10, 0 },
		{ "limit=5&offset=20", 5, 20 }, { "offset=2147483647", 10, 2147483647 },
		{ "foo=bar&limit=7", 7, 0 }, { "limit=007", 7, 0 },
	};
	/* clang-format on */

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int limit = -1, offset = -1;
		char err[128] = "";

		CHECK(query_parse_list(cases[i].q, &limit, &offset, err,
			  sizeof(err)) == 0);
		CHECK(limit == cases[i].limit);
		CHECK(offset == cases[i].offset);
	}
}

static void
test_query_invalid(void)
{
	/* clang-format off */
	static const char *const cases[] = {
		"limit=abc", "limit=0", "limit=101", "limit=-1", "limit=",
		"limit=1.5", "limit=+5", "limit=%205", "offset=-1", "offset=x",
		"offset=2147483648", "offset=99999999999999999999", "limit",
		"limit=1&limit=2", "limit=5abc",
	};
	/* clang-format on */

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int limit, offset;
		char err[128] = "";
		int rc = query_parse_list(cases[i], &limit, &offset, err,
		    sizeof(err));

		CHECK(rc == -1);
		CHECK(*err != '\0');
		if (rc != -1)
			fprintf(stderr, "  accepted \"%s\"\n", cases[i]);
	}
}

static void
test_router_table(void)
{
	char allow[80];

	CHECK(router_find(api_routes, api_routes_count, "/health") != NULL);
	CHECK(router_find(api_routes, api_routes_count, "/messages") != NULL);
	CHECK(router_find(api_routes, api_routes_count, "/messages/start") !=
	    NULL);
	CHECK(router_find(api_routes, api_routes_count, "/messages/") == NULL);
	CHECK(router_find(api_routes, api_routes_count, "/nope") == NULL);
	router_allow(EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS,
	    allow, sizeof(allow));
	CHECK_STR(allow, "GET, HEAD, OPTIONS");
	router_allow(EVHTTP_REQ_POST, allow, sizeof(allow));
	CHECK_STR(allow, "POST");
}

static void
test_message_json(void)
{
	struct message m[2] = {
		{ 42, "+905551112233", "Hello \"world\"", "sent",
		    "2026-11-27T10:00:00.123Z", 1, "2026-11-27T09:59:00.000Z",
		    "b1c2" },
		{ 7, "+15550001111", "Hi", "sent", NULL, 0,
		    "2026-11-27T09:00:00.000Z", NULL },
	};
	json_t *j = message_list_to_json(m, 2);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	CHECK_STR(s,
	    "{\"messages\":[{\"id\":42,\"recipient\":\"+905551112233\","
	    "\"content\":\"Hello \\\"world\\\"\",\"status\":\"sent\","
	    "\"sent_at\":\"2026-11-27T10:00:00.123Z\",\"retry_count\":1,"
	    "\"created_at\":\"2026-11-27T09:59:00.000Z\","
	    "\"response_id\":\"b1c2\"},{\"id\":7,\"recipient\":\"+15550001111\","
	    "\"content\":\"Hi\",\"status\":\"sent\",\"sent_at\":null,"
	    "\"retry_count\":0,\"created_at\":\"2026-11-27T09:00:00.000Z\","
	    "\"response_id\":null}],\"count\":2}");
	free(s);
	json_decref(j);
	j = message_list_to_json(NULL, 0);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	CHECK_STR(s, "{\"messages\":[],\"count\":0}");
	free(s);
	json_decref(j);
	/* Invalid UTF-8 must fail cleanly, not produce half a reply. */
	m[1].content = "bad \xff byte";
	j = message_list_to_json(m, 2);
	CHECK(j == NULL);
}

/* One mapping from service errors to statuses and bodies. */
static void
test_service_errors(void)
{
	static const struct {
		enum svc_err err;
		int status;
		const char *msg;
	} cases[] = {
		{ SVC_INVALID, 400, "bad request" },
		{ SVC_NOT_FOUND, 404, "not found" },
		{ SVC_CONFLICT, 409, "conflict" },
		{ SVC_UNAVAILABLE, 503, "database unavailable" },
		{ SVC_TIMEOUT, 503, "database did not answer in time" },
		{ SVC_SHUTTING_DOWN, 503, "shutting down" },
		{ SVC_INTERNAL, 500, "internal error" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *b = reply_fail_body(cases[i].err, NULL);
		char *s = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) :
			      NULL;
		char want[128];

		CHECK(reply_status(cases[i].err) == cases[i].status);
		CHECK(strcmp(reply_reason(cases[i].status), "Unknown") != 0);
		snprintf(want, sizeof(want),
		    "{\"error\":\"%s\","
		    "\"status\":\"error\"}",
		    cases[i].msg);
		CHECK_STR(s, want);
		free(s);
		json_decref(b);
	}
	/* A detail replaces the standard message, never the status. */
	{
		json_t *b = reply_fail_body(SVC_INVALID, "limit: 1 to 100");

		CHECK_STR(json_string_value(json_object_get(b, "error")),
		    "limit: 1 to 100");
		json_decref(b);
	}
}

int
main(void)
{
	RUN(test_query_valid);
	RUN(test_query_invalid);
	RUN(test_router_table);
	RUN(test_message_json);
	RUN(test_service_errors);
	return harness_done();
}
