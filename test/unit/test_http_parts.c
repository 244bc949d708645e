/* test_http_parts.c - query validation, routing table, JSON rendering. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api.h"
#include "harness.h"
#include "message.h"
#include "query.h"
#include "reply.h"
#include "router.h"
#include "service.h"
#include "store.h"

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

/* The listing's writer, as text. */
static char *
list_text(const struct message *m, size_t n, int *rc)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *s;

	*rc = message_list_write(b, m, n);
	len = evbuffer_get_length(b);
	s = malloc(len + 1);
	evbuffer_remove(b, s, len);
	s[len] = '\0';
	evbuffer_free(b);
	return s;
}

/* What jansson makes of the same rows, the reference. */
static char *
list_jansson(const struct message *m, size_t n)
{
	json_t *arr = json_array();
	json_t *j;
	char *s;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, message_to_json(&m[i]));
	j = json_pack("{s:o, s:I, s:n}", "messages", arr, "count",
	    (json_int_t)n, "next");
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static void
test_message_json(void)
{
	struct message m[2] = {
		{ 42, "+905551112233", "Hello \"world\"", "sent", 1795773600123,
		    1, 1795773540000, "b1c2" },
		{ 7, "+15550001111", "Hi", "sent", MESSAGE_NO_TIME, 0,
		    1795770000000, NULL },
	};
	int rc;
	char *s = list_text(m, 2, &rc);
	char *ref;

	CHECK(rc == 0);
	CHECK_STR(s,
	    "{\"messages\":[{\"id\":42,\"recipient\":\"+905551112233\","
	    "\"content\":\"Hello \\\"world\\\"\",\"status\":\"sent\","
	    "\"sent_at\":\"2026-11-27T10:00:00.123Z\",\"retry_count\":1,"
	    "\"created_at\":\"2026-11-27T09:59:00.000Z\","
	    "\"response_id\":\"b1c2\"},{\"id\":7,\"recipient\":\"+15550001111\","
	    "\"content\":\"Hi\",\"status\":\"sent\",\"sent_at\":null,"
	    "\"retry_count\":0,\"created_at\":\"2026-11-27T09:00:00.000Z\","
	    "\"response_id\":null}],\"count\":2,\"next\":null}");
	ref = list_jansson(m, 2);
	CHECK_STR(s, ref);
	free(ref);
	free(s);
	s = list_text(NULL, 0, &rc);
	CHECK(rc == 0);
	CHECK_STR(s, "{\"messages\":[],\"count\":0,\"next\":null}");
	free(s);
}

/* Byte for byte what jansson dumps: every escape, UTF-8 kept as it is,
 * odd integers and times. */
static void
test_message_json_like_jansson(void)
{
	static const char *const texts[] = {
		"",
		"plain",
		"quote \" backslash \\ slash /",
		"\b\f\n\r\t \x01\x1f\x7f end",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		"\xe2\x80\xa8 line separator",
		"\xef\xbf\xbf \xf4\x8f\xbf\xbf",
		"<script>&'",
		/* Around the 8-byte steps of the plain-ASCII fast path. */
		"01234567",
		"0123456789abcdef",
		"0123456\"89abcdef\\x",
		"abcdefg\xc3\xa9hijklmnopqrstu",
		"abcdefgh\x1fijklmno\npqrstuvw",
		"1234567\xe2\x82\xac"
		"abcdefghijklmnop\x7f~~~~~~~ !#$%&()*+,-./",
	};
	static const int64_t times[] = { 0, -1, -100, -86400001, 1,
		253402300799999, 1795773600123, 951782400000 };

	for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
		struct message m = { (int64_t)i * 1000003 - 5, texts[i],
			texts[i], "sent", times[i % ARRAY_LEN(times)],
			(int)i - 1, times[(i + 3) % ARRAY_LEN(times)],
			texts[i] };
		int rc;
		char *s = list_text(&m, 1, &rc), *ref = list_jansson(&m, 1);

		CHECK(rc == 0);
		CHECK_STR(s, ref);
		free(s);
		free(ref);
	}
}

/* Invalid UTF-8 fails cleanly (nothing appended), as jansson refuses it;
 * so does a row without created_at. */
static void
test_message_json_refuses(void)
{
	static const char *const bad[] = {
		"bad \xff byte",
		"\xc0\xaf overlong",
		"\xe0\x80\xaf overlong",
		"\xed\xa0\x80 surrogate",
		"\xf4\x90\x80\x80 past U+10FFFF",
		"\xc3 cut",
		"cut at the end \xe2\x82",
		"\x80 lone continuation",
		"01234567\xff"
		"89abcdef",
		"0123456789abcdef\xc0",
	};

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct message m[2] = {
			{ 1, "+15550001111", "fine", "sent", 0, 0, 0, NULL },
			{ 2, "+15550001111", bad[i], "sent", 0, 0, 0, NULL },
		};
		int rc;
		char *s = list_text(m, 2, &rc);

		CHECK(rc == -1);
		CHECK_STR(s, "");
		CHECK(message_to_json(&m[1]) == NULL);
		free(s);
	}
	{
		struct message m = { 1, "+1", "x", "sent", 0, 0,
			MESSAGE_NO_TIME, NULL };
		int rc;
		char *s = list_text(&m, 1, &rc);

		CHECK(rc == -1);
		CHECK_STR(s, "");
		free(s);
	}
}

static void
test_message_time(void)
{
	/* clang-format off */
	static const struct { int64_t ms; const char *text; } cases[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1795773600123, "2026-11-27T10:00:00.123Z" },
		{ 951782400000, "2000-02-29T00:00:00.000Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ -62135596800000, "0001-01-01T00:00:00.000Z" },
		{ 253402300799999, "9999-12-31T23:59:59.999Z" },
		{ 253402300800000, "10000-01-01T00:00:00.000Z" },
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char buf[MESSAGE_TIME_LEN];

		CHECK(message_time_format(cases[i].ms, buf) ==
		    strlen(cases[i].text));
		CHECK_STR(buf, cases[i].text);
	}
}

/* extract(epoch FROM ...) text to milliseconds, as to_char's MS: down. */
static void
test_store_epoch(void)
{
	/* clang-format off */
	static const struct { const char *text; int64_t ms; } cases[] = {
		{ "0", 0 }, { "1795773600.123456", 1795773600123 },
		{ "1795773600.1239", 1795773600123 }, { "1795773600", 1795773600000 },
		{ "1795773600.5", 1795773600500 }, { "-0.1005", -101 },
		{ "-0.1", -100 }, { "-1", -1000 }, { "12.000001", 12000 },
		{ "1.1234567", 1123 },
		{ NULL, MESSAGE_NO_TIME }, { "Infinity", MESSAGE_NO_TIME },
		{ "-Infinity", MESSAGE_NO_TIME }, { "NaN", MESSAGE_NO_TIME },
		{ "", MESSAGE_NO_TIME }, { "12x", MESSAGE_NO_TIME },
		{ ".5", MESSAGE_NO_TIME },
		{ "99999999999999999999", MESSAGE_NO_TIME },
	};
	/* clang-format on */

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		int64_t got = store_epoch_ms(cases[i].text);

		CHECK(got == cases[i].ms);
		if (got != cases[i].ms)
			fprintf(stderr, "  \"%s\" -> %lld\n",
			    cases[i].text ? cases[i].text : "(null)",
			    (long long)got);
	}
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
		{ SVC_BUSY, 503, "too many requests waiting for the database" },
		{ SVC_UNAUTHORIZED, 401, "a valid bearer token is required" },
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
	/* Only a busy answer says when to come back. */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct evhttp_request *req = evhttp_request_new(NULL, NULL);
		const char *ra;

		reply_fail_headers(req, cases[i].err);
		ra = evhttp_find_header(evhttp_request_get_output_headers(req),
		    "Retry-After");
		if (cases[i].err == SVC_BUSY)
			CHECK_STR(ra, "1");
		else
			CHECK(ra == NULL);
		ra = evhttp_find_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate");
		if (cases[i].err == SVC_UNAUTHORIZED)
			CHECK_STR(ra, "Bearer");
		else
			CHECK(ra == NULL);
		evhttp_request_free(req);
	}
	/* A detail replaces the standard message, never the status. */
	{
		json_t *b = reply_fail_body(SVC_INVALID, "limit: 1 to 100");

		CHECK_STR(json_string_value(json_object_get(b, "error")),
		    "limit: 1 to 100");
		json_decref(b);
	}
}

/* Templates take one whole segment; exact paths win over them. */
static void
test_router_templates(void)
{
	const struct route *r;

	r = router_find(api_routes, api_routes_count, "/messages/42");
	CHECK(r != NULL && strcmp(r->path, "/messages/{id}") == 0);
	r = router_find(api_routes, api_routes_count, "/messages/abc/retry");
	CHECK(r != NULL && strcmp(r->path, "/messages/{id}/retry") == 0);
	r = router_find(api_routes, api_routes_count, "/messages/start");
	CHECK(r != NULL && strcmp(r->path, "/messages/start") == 0);
	r = router_find(api_routes, api_routes_count, "/messages/retry-failed");
	CHECK(r != NULL && strcmp(r->path, "/messages/retry-failed") == 0);
	CHECK(router_find(api_routes, api_routes_count, "/messages//retry") ==
	    NULL);
	CHECK(router_find(api_routes, api_routes_count,
		  "/messages/1/retry/x") == NULL);
	CHECK(router_find(api_routes, api_routes_count, "/messages/1/") ==
	    NULL);
}

static void
test_query_ids_and_since(void)
{
	static const char *const bad_ids[] = { "", "abc", "-1", "1e3", "+1",
		"1.0", " 1", "9223372036854775808", "12345678901234567890" };
	static const char *const bad_since[] = { "since=yesterday",
		"since=2026-13-01T00:00:00Z", "since=2026-01-01",
		"since=2026-01-01T00:00:00", "since=2026-01-01T25:00:00Z",
		"since=2026-01-01T00:00:00.Z", "since=a&since=b" };
	struct query_list ql;
	char since[40], err[128];
	int64_t id;

	CHECK(query_parse_id("42", &id) == 0 && id == 42);
	CHECK(query_parse_id("9223372036854775807", &id) == 0 &&
	    id == INT64_MAX);
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
		CHECK(query_parse_id(bad_ids[i], &id) != 0);
	CHECK(query_parse_since("since=2026-11-29T10:00:00.5%2B03:00", since,
		  err, sizeof(err)) == 0);
	CHECK_STR(since, "2026-11-29T10:00:00.5+03:00");
	CHECK(query_parse_since(NULL, since, err, sizeof(err)) == 0 &&
	    since[0] == '\0');
	for (size_t i = 0; i < sizeof(bad_since) / sizeof(bad_since[0]); i++)
		CHECK(query_parse_since(bad_since[i], since, err,
			  sizeof(err)) != 0);
	CHECK(query_parse_listing("status=failed&after=f_9&limit=5", &ql, err,
		  sizeof(err)) == 0);
	CHECK(ql.filter == MESSAGE_FAILED && ql.limit == 5);
	CHECK_STR(ql.after, "f_9");
	CHECK(query_parse_listing(NULL, &ql, err, sizeof(err)) == 0);
	CHECK(ql.filter == MESSAGE_SENT && ql.after[0] == '\0');
	CHECK(query_parse_listing("status=Sent", &ql, err, sizeof(err)) != 0);
}

/* A cursor belongs to its listing's order. */
static void
test_cursors(void)
{
	struct store_page p = { 0 };

	CHECK(store_cursor_parse("s_1795773600123000_42", MESSAGE_SENT, &p) ==
	    0);
	CHECK(p.has_after && p.after_us == 1795773600123000 &&
	    p.after_id == 42);
	CHECK(store_cursor_parse("s_-5_1", MESSAGE_SENT, &p) == 0 &&
	    p.after_us == -5);
	CHECK(store_cursor_parse("f_7", MESSAGE_FAILED, &p) == 0 &&
	    p.after_id == 7);
	CHECK(store_cursor_parse("f_7", MESSAGE_PENDING, &p) != 0);
	CHECK(store_cursor_parse("a_7x", MESSAGE_ALL, &p) != 0);
	CHECK(store_cursor_parse("s_7", MESSAGE_SENT, &p) != 0);
	CHECK(store_cursor_parse("p_", MESSAGE_PENDING, &p) != 0);
	CHECK(store_cursor_parse("p_-1", MESSAGE_PENDING, &p) != 0);
}

int
main(void)
{
	RUN(test_query_valid);
	RUN(test_query_invalid);
	RUN(test_router_table);
	RUN(test_message_json);
	RUN(test_message_json_like_jansson);
	RUN(test_message_json_refuses);
	RUN(test_message_time);
	RUN(test_store_epoch);
	RUN(test_service_errors);
	RUN(test_router_templates);
	RUN(test_query_ids_and_since);
	RUN(test_cursors);
	return harness_done();
}
