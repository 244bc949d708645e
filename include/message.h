/* message.h - a message row as the API shows it, and its JSON. */
#ifndef GOPULSE_MESSAGE_H
#define GOPULSE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Strings are borrowed (from a PGresult, for one callback); timestamps are
 * RFC 3339 UTC text or NULL. */
struct message {
	int64_t id;
	const char *recipient;
	const char *content;
	const char *status;
	const char *sent_at;
	int retry_count;
	const char *created_at;
	const char *response_id;
};

/* NULL when a string is not valid UTF-8 (never from our own database,
 * but jansson would otherwise abort the whole reply silently). */
json_t *message_to_json(const struct message *m);
/* {"messages": [...], "count": n}; NULL on a bad row. */
json_t *message_list_to_json(const struct message *m, size_t n);

#endif
