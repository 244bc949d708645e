/* query.h - validation of query strings. */
#ifndef GOPULSE_QUERY_H
#define GOPULSE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "message.h"

#define QUERY_LIMIT_DEFAULT 10
#define QUERY_LIMIT_MAX 100

/* limit (1..100, default 10) and offset (>= 0, default 0) of GET
 * /messages; q may be NULL. Returns -1 with a reason for the 400 body. */
int query_parse_list(const char *q, int *limit, int *offset, char *err,
    size_t errlen) MUSTCHECK;

/* Longest cursor accepted in `after` (ours are much shorter). */
#define QUERY_CURSOR_MAX 63

/* The whole GET /messages query: limit and offset as above, status
 * (pending, sent, failed or all; default sent) and after (a cursor, into
 * after[QUERY_CURSOR_MAX + 1]; "" when absent). */
struct query_list {
	int limit, offset;
	enum message_filter filter;
	char after[QUERY_CURSOR_MAX + 1];
};
int query_parse_listing(const char *q, struct query_list *out, char *err,
    size_t errlen) MUSTCHECK;
/* since of POST /messages/retry-failed: an RFC 3339 date-time
 * ("2026-11-29T10:00:00Z", fractions and offsets allowed) into
 * since[40]; "" when absent. */
int query_parse_since(const char *q, char *since, char *err,
    size_t errlen) MUSTCHECK;
/* A message id of a path: digits only, below 2^63 (a bigserial); -1
 * otherwise ("abc", "-1", "1e3", 20 digits). */
int query_parse_id(const char *s, int64_t *id) MUSTCHECK;

#endif
