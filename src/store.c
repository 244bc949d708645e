/* store.c - every SQL statement the service runs, and row decoding. */
#include <stdio.h>
#include <stdlib.h>

#include "pg.h"
#include "store.h"
#include "util.h"

/* RFC 3339 in UTC with milliseconds, the same shape as our logs. */
#define STORE_TS(col) \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

struct store_call {
	union {
		store_id_cb id;
		store_list_cb list;
	} cb;
	void *arg;
};

static struct store_call *
store_call_new(void *arg)
{
	struct store_call *c = xmalloc(sizeof(*c));

	c->arg = arg;
	return c;
}

static void
store_on_inserted(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	int64_t id = 0;

	if (err == NULL)
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	c->cb.id(c->arg, id, err);
	free(c);
}

int
store_insert_message(struct pg_conn *pg, const char *recipient,
    const char *content, store_id_cb cb, void *arg)
{
	const char *params[] = { recipient, content };
	struct store_call *c = store_call_new(arg);

	c->cb.id = cb;
	if (pg_query(pg, "INSERT INTO messages (recipient, content) "
	    "VALUES ($1, $2) RETURNING id", 2, params, store_on_inserted,
	    c) != 0) {
		free(c);
		return -1;
	}
	return 0;
}

static const char *
store_text(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static void
store_on_listed(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	struct message *msgs = NULL;
	size_t n = 0;

	if (err == NULL) {
		n = (size_t)PQntuples(res);
		msgs = xcalloc(n, sizeof(*msgs));
		for (size_t i = 0; i < n; i++) {
			int r = (int)i;

			msgs[i].id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
			msgs[i].recipient = store_text(res, r, 1);
			msgs[i].content = store_text(res, r, 2);
			msgs[i].status = store_text(res, r, 3);
			msgs[i].sent_at = store_text(res, r, 4);
			msgs[i].retry_count = atoi(PQgetvalue(res, r, 5));
			msgs[i].created_at = store_text(res, r, 6);
			msgs[i].response_id = store_text(res, r, 7);
		}
	}
	c->cb.list(c->arg, msgs, n, err);
	free(msgs);
	free(c);
}

int
store_list_sent(struct pg_conn *pg, int limit, int offset, store_list_cb cb,
    void *arg)
{
	char lim[16], off[16];
	const char *params[] = { lim, off };
	struct store_call *c = store_call_new(arg);

	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(off, sizeof(off), "%d", offset);
	c->cb.list = cb;
	if (pg_query(pg, "SELECT id, recipient, content, status, "
	    STORE_TS("sent_at") ", retry_count, " STORE_TS("created_at") ", "
	    "response_id FROM messages WHERE status = 'sent' "
	    "ORDER BY sent_at DESC, id DESC LIMIT $1 OFFSET $2",
	    2, params, store_on_listed, c) != 0) {
		free(c);
		return -1;
	}
	return 0;
}
