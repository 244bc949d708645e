/* message.h - a message row as the API shows it, and its JSON. */
#ifndef GOPULSE_MESSAGE_H
#define GOPULSE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "common.h"

/* A timestamp column that is NULL. */
#define MESSAGE_NO_TIME INT64_MIN

/* Strings are borrowed (from a PGresult, for one callback); timestamps are
 * milliseconds since the epoch, shown as RFC 3339 UTC with milliseconds,
 * or MESSAGE_NO_TIME (null). */
struct message {
	int64_t id;
	const char *recipient;
	const char *content;
	const char *status;
	int64_t sent_at_ms;
	int retry_count;
	int64_t created_at_ms;
	const char *response_id;
};

/* Which messages a listing shows, and in which order: sent ones most
 * recently sent first, the others newest first (by id). */
enum message_filter {
	MESSAGE_SENT,
	MESSAGE_PENDING,
	MESSAGE_FAILED,
	MESSAGE_ALL,
};

/* One message as GET /messages/{id} shows it: the listing's fields and
 * the rest of the row; borrowed like struct message. */
struct message_detail {
	struct message m;
	const char *error_message;
	const char *response_code; /* decimal text, NULL when none */
	int64_t last_attempt_at_ms, next_attempt_at_ms, updated_at_ms;
	const char *attempts; /* a JSON array, oldest attempt first */
};

/* The listing's fields, then error_message, response_code,
 * last_attempt_at, next_attempt_at, updated_at and attempts (the text
 * parsed). NULL when something is not valid (UTF-8, JSON). */
json_t *message_detail_to_json(const struct message_detail *d);

/* NULL when a string is not valid UTF-8 (never from our own database,
 * but jansson would otherwise abort the whole reply silently). */
json_t *message_to_json(const struct message *m);
/* Appends {"messages": [...], "count": n} to out, compact, byte for byte
 * what jansson would dump for the same values, but written in one pass
 * into one reserved chunk (the listing is the API's hot path: building
 * and dumping jansson objects was most of its CPU). -1, with nothing
 * appended, when a string is not valid UTF-8 or created_at is missing. */
int message_list_write(struct evbuffer *out, const struct message *m,
    size_t n) MUSTCHECK;
/* The same with "next": the cursor of the following page, or null when
 * next is NULL (this was the last one). */
int message_page_write(struct evbuffer *out, const struct message *m, size_t n,
    const char *next) MUSTCHECK;
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (more year digits past 9999) and its NUL
 * into buf, which needs MESSAGE_TIME_LEN bytes; returns the length. */
#define MESSAGE_TIME_LEN 32
size_t message_time_format(int64_t ms, char *buf);

#endif
