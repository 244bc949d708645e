/* store.c - every SQL statement the service runs, and row decoding. */
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "pgarray.h"
#include "store.h"
#include "util.h"

/* RFC 3339 in UTC with milliseconds, the same shape as our logs. */
#define STORE_TS(col) \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

struct store_call {
	union {
		store_id_cb id;
		store_claim_cb claim;
		store_record_cb record;
		store_count_cb count;
		store_cached_cb cached;
		store_backlog_cb backlog;
		store_detail_cb detail;
		store_retry_cb retry;
	} cb;
	void *arg;
};

static const char *const store_status_names[] = {
	[STORE_PENDING] = "pending",
	[STORE_SENT] = "sent",
	[STORE_FAILED] = "failed",
};

const char *
store_status_name(enum store_status status)
{
	assert((size_t)status < ARRAY_LEN(store_status_names));
	return store_status_names[status];
}

/* The column only ever holds the three names (a CHECK constraint). */
static enum store_status
store_status_parse(const char *s)
{
	for (size_t i = 0; i < ARRAY_LEN(store_status_names); i++)
		if (strcmp(s, store_status_names[i]) == 0)
			return (enum store_status)i;
	assert(!"status outside the CHECK constraint");
	return STORE_PENDING;
}

static struct store_call *
store_call_new(void *arg)
{
	struct store_call *c = xmalloc(sizeof(*c));

	c->arg = arg;
	return c;
}

/* Hands c to the database; on refusal (not ready) frees it. */
static int
store_submit(struct pg_conn *pg, const char *sql, int nparams,
    const char *const *params, pg_result_cb on_result, struct store_call *c)
{
	if (pg_query(pg, sql, nparams, params, on_result, c) != 0) {
		free(c);
		return -1;
	}
	return 0;
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
	return store_submit(pg,
	    "INSERT INTO messages (recipient, content) "
	    "VALUES ($1, $2) RETURNING id",
	    2, params, store_on_inserted, c);
}

static const char *
store_text(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

typedef void (*store_row_fn)(const PGresult *res, int row, void *out);

/* Every row of a result decoded by fn into a new array the caller frees
 * (NULL and 0 rows after an error). The strings stay in res. */
static void *
store_rows(const PGresult *res, const char *err, size_t size, store_row_fn fn,
    size_t *n)
{
	char *rows;

	*n = err == NULL ? (size_t)PQntuples(res) : 0;
	if (*n == 0)
		return NULL;
	rows = xcalloc(*n, size);
	for (size_t i = 0; i < *n; i++)
		fn(res, (int)i, rows + i * size);
	return rows;
}

/* The text of extract(epoch FROM ts) as microseconds (exact: the text
 * has at most 6 decimals); false for NULL, infinity or anything else. */
static bool
store_epoch_us(const char *text, int64_t *out)
{
	const char *p = text;
	int64_t secs = 0, us = 0;
	bool neg;
	int digits = 0;

	if (p == NULL)
		return false;
	if ((neg = *p == '-'))
		p++;
	/* 13 digits of seconds is year 318857; past it, microseconds would
	 * not fit in 64 bits. */
	for (; *p >= '0' && *p <= '9' && digits <= 13; p++, digits++)
		secs = secs * 10 + (*p - '0');
	if (*p == '.') {
		int frac = 0;

		for (p++; *p >= '0' && *p <= '9'; p++, frac++)
			if (frac < 6)
				us = us * 10 + (*p - '0');
		for (; frac < 6; frac++)
			us *= 10;
	}
	/* "Infinity", "NaN", or anything else: no time to show. */
	if (digits == 0 || digits > 13 || *p != '\0')
		return false;
	us += secs * 1000000;
	*out = neg ? -us : us;
	return true;
}

int64_t
store_epoch_ms(const char *text)
{
	int64_t us;

	if (!store_epoch_us(text, &us))
		return MESSAGE_NO_TIME;
	/* Milliseconds rounded down, as to_char's MS (also before 1970). */
	if (us < 0)
		return -((-us + 999) / 1000);
	return us / 1000;
}

/* n in decimal into buf (16 bytes), for statement parameters. */
static const char *
store_itoa(int n, char *buf)
{
	char *p = buf + 15;
	unsigned u = n < 0 ? 0u - (unsigned)n : (unsigned)n;

	*p = '\0';
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (n < 0)
		*--p = '-';
	return p;
}

/* A column we know holds a plain decimal integer (an id, a count). */
static int64_t
store_int(const PGresult *res, int row, int col)
{
	const char *p = PQgetvalue(res, row, col);
	bool neg = *p == '-';
	uint64_t v = 0;

	for (p += neg; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	return neg ? (int64_t)(0 - v) : (int64_t)v;
}

/* A listed message from column col on: id, recipient, content, status,
 * epoch(sent_at), retry_count, epoch(created_at), response_id. */
static void
store_message_at(const PGresult *res, int r, int col, struct message *m)
{
	m->id = store_int(res, r, col);
	m->recipient = store_text(res, r, col + 1);
	m->content = store_text(res, r, col + 2);
	m->status = store_text(res, r, col + 3);
	m->sent_at_ms = store_epoch_ms(store_text(res, r, col + 4));
	m->retry_count = (int)store_int(res, r, col + 5);
	m->created_at_ms = store_epoch_ms(store_text(res, r, col + 6));
	m->response_id = store_text(res, r, col + 7);
}

struct store_list_call {
	store_list_cb cb;
	void *arg;
	size_t npages;
	enum message_filter filter;
	int limits[]; /* each page's */
};

static const char store_cursor_tags[] = {
	[MESSAGE_SENT] = 's',
	[MESSAGE_PENDING] = 'p',
	[MESSAGE_FAILED] = 'f',
	[MESSAGE_ALL] = 'a',
};

/* The cursor after row r (its message from column col): the filter's
 * tag, then its sort key. Opaque to clients; only store_cursor_parse
 * reads it. */
static void
store_cursor_at(const PGresult *res, int r, int col, enum message_filter f,
    char *buf)
{
	int64_t us = 0;

	if (f == MESSAGE_SENT &&
	    store_epoch_us(store_text(res, r, col + 4), &us))
		snprintf(buf, STORE_CURSOR_LEN, "s_%lld_%lld", (long long)us,
		    (long long)store_int(res, r, col));
	else
		snprintf(buf, STORE_CURSOR_LEN, "%c_%lld", store_cursor_tags[f],
		    (long long)store_int(res, r, col));
}

/* Digits only, at most 18 of them (so it fits), "-" first when neg. */
static const char *
store_cursor_int(const char *p, bool neg, int64_t *out)
{
	int64_t v = 0;
	int digits = 0;
	bool minus = false;

	if (neg && *p == '-') {
		minus = true;
		p++;
	}
	for (; *p >= '0' && *p <= '9' && digits < 19; p++, digits++)
		v = v * 10 + (*p - '0');
	if (digits == 0 || digits > 18)
		return NULL;
	*out = minus ? -v : v;
	return p;
}

int
store_cursor_parse(const char *cursor, enum message_filter filter,
    struct store_page *page)
{
	const char *p = cursor;

	assert((size_t)filter < ARRAY_LEN(store_cursor_tags));
	if (p[0] != store_cursor_tags[filter] || p[1] != '_')
		return -1;
	p += 2;
	if (filter == MESSAGE_SENT) {
		if ((p = store_cursor_int(p, true, &page->after_us)) == NULL ||
		    *p++ != '_')
			return -1;
	}
	if ((p = store_cursor_int(p, false, &page->after_id)) == NULL ||
	    *p != '\0')
		return -1;
	page->has_after = true;
	return 0;
}

/* One page: its rows in order. Several: column 0 is the page's number
 * (1-based, in order), the message follows. */
static void
store_on_listed(void *arg, const PGresult *res, const char *err)
{
	struct store_list_call *c = arg;
	size_t n = err == NULL ? (size_t)PQntuples(res) : 0;
	size_t *counts = xcalloc(c->npages, sizeof(*counts));
	int *last = xcalloc(c->npages, sizeof(*last));
	char(*bufs)[STORE_CURSOR_LEN] = xcalloc(c->npages, sizeof(*bufs));
	const char **next = xcalloc(c->npages, sizeof(*next));
	struct message *msgs = n > 0 ? xcalloc(n, sizeof(*msgs)) : NULL;
	int col = c->npages > 1;

	for (size_t r = 0; r < n; r++) {
		size_t page = 0;

		if (col) {
			page = strtoul(PQgetvalue(res, (int)r, 0), NULL, 10) -
			    1;
			assert(page < c->npages);
		}
		counts[page]++;
		last[page] = (int)r;
		store_message_at(res, (int)r, col, &msgs[r]);
	}
	/* A full page may have a next one; a short one was the last. */
	for (size_t p = 0; p < c->npages; p++) {
		if (counts[p] == 0 || counts[p] < (size_t)c->limits[p])
			continue;
		store_cursor_at(res, last[p], col, c->filter, bufs[p]);
		next[p] = bufs[p];
	}
	c->cb(c->arg, msgs, counts, next, c->npages, err);
	free(counts);
	free(last);
	free(bufs);
	free(next);
	free(msgs);
	free(c);
}

static struct store_list_call *
store_list_call_new(const struct store_page *pages, size_t n,
    enum message_filter filter, store_list_cb cb, void *arg)
{
	struct store_list_call *c = xmalloc(sizeof(*c) +
	    n * sizeof(c->limits[0]));

	c->cb = cb;
	c->arg = arg;
	c->npages = n;
	c->filter = filter;
	for (size_t i = 0; i < n; i++)
		c->limits[i] = pages[i].limit;
	return c;
}

/* Timestamps as epoch seconds (numeric: exact to the microsecond, whatever
 * the session's TimeZone and DateStyle), formatted in C: to_char per value
 * was a fifth of the server's time per page. The partial index
 * messages_sent_idx gives the order, no sort. */
#define STORE_LIST_COLUMNS(m) \
	m "id, " m "recipient, " m "content, " m "status, " \
	  "extract(epoch FROM " m "sent_at), " m "retry_count, " \
	  "extract(epoch FROM " m "created_at), " m "response_id"

/* Several pages in one statement: parsed and planned once, one round
 * trip, one snapshot; each page is its own index scan (LATERAL). */
static int
store_list_pages(struct pg_conn *pg, const struct store_page *pages, size_t n,
    struct store_list_call *c)
{
	struct pgarray lims, offs;
	const char *params[2];
	int rc;

	pgarray_init(&lims);
	pgarray_init(&offs);
	for (size_t i = 0; i < n; i++) {
		char num[16];

		pgarray_add(&lims, store_itoa(pages[i].limit, num));
		pgarray_add(&offs, store_itoa(pages[i].offset, num));
	}
	params[0] = pgarray_text(&lims);
	params[1] = pgarray_text(&offs);
	rc = pg_query(pg,
	    "SELECT p.i, " STORE_LIST_COLUMNS(
		"m.") " FROM unnest($1::int[], $2::int[]) WITH ORDINALITY"
		      "  AS p(lim, off, i)"
		      " CROSS JOIN LATERAL (SELECT * FROM messages"
		      "  WHERE status = 'sent' ORDER BY sent_at DESC, id DESC"
		      "  LIMIT p.lim OFFSET p.off) m"
		      " ORDER BY p.i, m.sent_at DESC, m.id DESC",
	    2, params, store_on_listed, c);
	pgarray_fini(&lims);
	pgarray_fini(&offs);
	return rc;
}

int
store_list_sent(struct pg_conn *pg, const struct store_page *pages, size_t n,
    store_list_cb cb, void *arg)
{
	struct store_list_call *c = store_list_call_new(pages, n, MESSAGE_SENT,
	    cb, arg);
	char lim[16], off[16];
	const char *params[2];
	int rc;

	assert(n > 0);
	if (n > 1) {
		rc = store_list_pages(pg, pages, n, c);
	} else {
		params[0] = store_itoa(pages[0].limit, lim);
		params[1] = store_itoa(pages[0].offset, off);
		rc = pg_query(pg,
		    "SELECT " STORE_LIST_COLUMNS(
			"") " FROM messages"
			    " WHERE status = 'sent'"
			    " ORDER BY sent_at DESC, id DESC LIMIT $1 OFFSET $2",
		    2, params, store_on_listed, c);
	}
	if (rc != 0)
		free(c);
	return rc;
}

/* Each filter's condition and order; its index gives the order, no
 * sort (messages_sent_idx, messages_pending_id_idx, messages_failed_id_idx,
 * the primary key). */
static const struct {
	const char *where, *order, *after;
} store_filters[] = {
	[MESSAGE_SENT] = { "status = 'sent'", "sent_at DESC, id DESC",
	    " AND (sent_at, id) < ('epoch'::timestamptz"
	    " + $3::float8 * interval '1 microsecond', $4::bigint)" },
	[MESSAGE_PENDING] = { "status = 'pending'", "id DESC",
	    " AND id < $3::bigint" },
	[MESSAGE_FAILED] = { "status = 'failed'", "id DESC",
	    " AND id < $3::bigint" },
	[MESSAGE_ALL] = { "true", "id DESC", " AND id < $3::bigint" },
};

int
store_list_page(struct pg_conn *pg, const struct store_page *page,
    store_list_cb cb, void *arg)
{
	struct store_list_call *c = store_list_call_new(page, 1, page->filter,
	    cb, arg);
	char lim[16], off[16], us[24], id[24], sql[512];
	const char *params[4];
	int nparams = 2;
	int rc;

	assert((size_t)page->filter < ARRAY_LEN(store_filters));
	params[0] = store_itoa(page->limit, lim);
	params[1] = store_itoa(page->offset, off);
	if (page->has_after) {
		snprintf(us, sizeof(us), "%lld", (long long)page->after_us);
		snprintf(id, sizeof(id), "%lld", (long long)page->after_id);
		if (page->filter == MESSAGE_SENT)
			params[nparams++] = us;
		params[nparams++] = id;
	}
	/* clang-format off */
	snprintf(sql, sizeof(sql),
	    "SELECT " STORE_LIST_COLUMNS("") " FROM messages WHERE %s%s"
	    " ORDER BY %s LIMIT $1 OFFSET $2",
	    store_filters[page->filter].where,
	    page->has_after ? store_filters[page->filter].after : "",
	    store_filters[page->filter].order);
	/* clang-format on */
	rc = pg_query(pg, sql, nparams, params, store_on_listed, c);
	if (rc != 0)
		free(c);
	return rc;
}

/* The listing's columns of a message written by the statement itself. */
#define STORE_MESSAGE_RETURNING " RETURNING " STORE_LIST_COLUMNS("")

struct store_create_call {
	store_create_cb cb;
	void *arg;
	struct pg_conn *pg;
	char *recipient, *content, *key;
	int64_t ttl_ms;
};

static void
store_create_call_free(struct store_create_call *c)
{
	free(c->recipient);
	free(c->content);
	free(c->key);
	free(c);
}

/* The second statement, after a key that was there: a statement of its
 * own, as the first one's snapshot could not see a key another
 * transaction committed while it waited on that key. Column 0 says
 * whether the request is the stored one. */
static void
store_on_key_found(void *arg, const PGresult *res, const char *err)
{
	struct store_create_call *c = arg;
	struct message m;

	if (err != NULL) {
		c->cb(c->arg, STORE_KEY_MISSING, NULL, err);
	} else if (PQntuples(res) == 0) {
		c->cb(c->arg, STORE_KEY_MISSING, NULL, NULL);
	} else {
		store_message_at(res, 0, 1, &m);
		c->cb(c->arg,
		    strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? STORE_REPLAYED :
							      STORE_KEY_REUSED,
		    &m, NULL);
	}
	store_create_call_free(c);
}

static void
store_on_created(void *arg, const PGresult *res, const char *err)
{
	struct store_create_call *c = arg;
	const char *params[3] = { c->recipient, c->content, c->key };
	struct message m;

	if (err == NULL && PQntuples(res) == 0) {
		/* The key was there (and young): whose message is it? */
		/* clang-format off */
		if (pg_query(c->pg,
			"SELECT k.recipient = $1 AND k.content = $2, "
			STORE_LIST_COLUMNS("m.") " FROM idempotency_keys k"
			" JOIN messages m ON m.id = k.message_id"
			" WHERE k.key = $3",
			3, params, store_on_key_found, c) == 0)
			return;
		/* clang-format on */
		err = "database unavailable";
	}
	if (err != NULL) {
		c->cb(c->arg, STORE_CREATED, NULL, err);
	} else {
		store_message_at(res, 0, 0, &m);
		c->cb(c->arg, STORE_CREATED, &m, NULL);
	}
	store_create_call_free(c);
}

/* With a key: its row takes the message's id from the sequence, and the
 * message goes in only when the key's row did. A key whose row is older
 * than the TTL (not swept yet) is taken over, as if it were gone. */
int
store_create_message(struct pg_conn *pg, const char *recipient,
    const char *content, const char *key, int64_t ttl_ms, store_create_cb cb,
    void *arg)
{
	struct store_create_call *c = xcalloc(1, sizeof(*c));
	const char *params[4];
	char ttl[24];
	int rc;

	c->cb = cb;
	c->arg = arg;
	c->pg = pg;
	c->recipient = xstrdup(recipient);
	c->content = xstrdup(content);
	c->key = key != NULL ? xstrdup(key) : NULL;
	c->ttl_ms = ttl_ms;
	params[0] = recipient;
	params[1] = content;
	if (key == NULL) {
		rc = pg_query(pg,
		    "INSERT INTO messages (recipient, content) VALUES ($1, $2)" STORE_MESSAGE_RETURNING,
		    2, params, store_on_created, c);
	} else {
		snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
		params[2] = key;
		params[3] = ttl;
		rc = pg_query(pg,
		    "WITH k AS (INSERT INTO idempotency_keys"
		    "  (key, recipient, content, message_id)"
		    " VALUES ($3, $1, $2, nextval('messages_id_seq'))"
		    " ON CONFLICT (key) DO UPDATE SET"
		    "  recipient = EXCLUDED.recipient,"
		    "  content = EXCLUDED.content,"
		    "  message_id = EXCLUDED.message_id, created_at = now()"
		    " WHERE idempotency_keys.created_at"
		    "  < now() - $4::bigint * interval '1 millisecond'"
		    " RETURNING message_id)"
		    " INSERT INTO messages (id, recipient, content)"
		    " SELECT message_id, $1, $2 FROM k" STORE_MESSAGE_RETURNING,
		    4, params, store_on_created, c);
	}
	if (rc != 0)
		store_create_call_free(c);
	return rc;
}

static void
store_on_detail(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	struct message_detail d;

	if (err != NULL || PQntuples(res) == 0) {
		c->cb.detail(c->arg, NULL, err);
		free(c);
		return;
	}
	store_message_at(res, 0, 0, &d.m);
	d.error_message = store_text(res, 0, 8);
	d.response_code = store_text(res, 0, 9);
	d.last_attempt_at_ms = store_epoch_ms(store_text(res, 0, 10));
	d.next_attempt_at_ms = store_epoch_ms(store_text(res, 0, 11));
	d.updated_at_ms = store_epoch_ms(store_text(res, 0, 12));
	d.attempts = store_text(res, 0, 13);
	c->cb.detail(c->arg, &d, NULL);
	free(c);
}

/* Message m's attempts as one JSON array, oldest first (the order they
 * started). */
/* clang-format off */
#define STORE_ATTEMPTS_JSON \
	"(SELECT coalesce(json_agg(json_build_object(" \
	" 'attempt', a.attempt," \
	" 'started_at', " STORE_TS("a.started_at") "," \
	" 'finished_at', " STORE_TS("a.finished_at") "," \
	" 'duration_ms', a.duration_ms," \
	" 'response_code', a.response_code," \
	" 'error', a.error," \
	" 'response_id', a.response_id," \
	" 'instance', a.instance)" \
	" ORDER BY a.started_at, a.finished_at), '[]')" \
	" FROM delivery_attempts a WHERE a.message_id = m.id)"
/* clang-format on */

/* The row and its attempts, built by the server: one row, one round
 * trip. */
int
store_get_message(struct pg_conn *pg, int64_t id, store_detail_cb cb, void *arg)
{
	struct store_call *c = store_call_new(arg);
	char num[24];
	const char *params[1] = { num };

	c->cb.detail = cb;
	snprintf(num, sizeof(num), "%lld", (long long)id);
	/* clang-format off */
	return store_submit(pg,
	    "SELECT " STORE_LIST_COLUMNS("m.") ", m.error_message,"
	    " m.response_code, extract(epoch FROM m.last_attempt_at),"
	    " extract(epoch FROM m.next_attempt_at),"
	    " extract(epoch FROM m.updated_at), " STORE_ATTEMPTS_JSON
	    " FROM messages m WHERE m.id = $1",
	    1, params, store_on_detail, c);
	/* clang-format on */
}

/* Column 0 says whether this statement requeued the message. */
static void
store_on_retried(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	struct message m;

	if (err != NULL || PQntuples(res) == 0) {
		c->cb.retry(c->arg, NULL, false, err);
	} else {
		store_message_at(res, 0, 1, &m);
		c->cb.retry(c->arg, &m, strcmp(PQgetvalue(res, 0, 0), "t") == 0,
		    NULL);
	}
	free(c);
}

/* The columns a requeue sets, for one message and for many. */
#define STORE_REQUEUE \
	"UPDATE messages m SET status = 'pending', next_attempt_at = now()," \
	" retry_count = 0, error_message = NULL, lease_token = NULL," \
	" lease_until = NULL, updated_at = now()"

/* One statement: the UPDATE when the message is failed, else the row as
 * it is (409), else nothing (404). */
int
store_retry_message(struct pg_conn *pg, int64_t id, store_retry_cb cb,
    void *arg)
{
	struct store_call *c = store_call_new(arg);
	char num[24];
	const char *params[1] = { num };

	c->cb.retry = cb;
	snprintf(num, sizeof(num), "%lld", (long long)id);
	/* clang-format off */
	return store_submit(pg,
	    "WITH u AS (" STORE_REQUEUE " WHERE m.id = $1 AND"
	    " m.status = 'failed' RETURNING " STORE_LIST_COLUMNS("m.") ")"
	    " SELECT true, * FROM u"
	    " UNION ALL SELECT false, " STORE_LIST_COLUMNS("") " FROM messages"
	    " WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM u)",
	    1, params, store_on_retried, c);
	/* clang-format on */
}

static void
store_on_counted(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;

	c->cb.count(c->arg,
	    err == NULL ?
		(size_t)strtoull(PQcmdTuples((PGresult *)res), NULL, 10) :
		0,
	    err);
	free(c);
}

/* SKIP LOCKED: two instances (or two calls) requeuing at once each take
 * rows the other is not holding, and neither waits. */
int
store_retry_failed(struct pg_conn *pg, const char *since, int limit,
    store_count_cb cb, void *arg)
{
	struct store_call *c = store_call_new(arg);
	char lim[16];
	const char *params[2] = { since != NULL ? since : "-infinity",
		store_itoa(limit, lim) };

	c->cb.count = cb;
	return store_submit(pg,
	    "WITH b AS (SELECT id FROM messages"
	    " WHERE status = 'failed' AND updated_at >= $1::timestamptz"
	    " ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) " STORE_REQUEUE
	    " FROM b WHERE m.id = b.id AND m.status = 'failed'",
	    2, params, store_on_counted, c);
}

int
store_sweep_keys(struct pg_conn *pg, int64_t ttl_ms, int limit,
    store_count_cb cb, void *arg)
{
	struct store_call *c = store_call_new(arg);
	char lim[16], ttl[24];
	const char *params[2] = { ttl, store_itoa(limit, lim) };

	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	c->cb.count = cb;
	return store_submit(pg,
	    "DELETE FROM idempotency_keys WHERE key IN ("
	    " SELECT key FROM idempotency_keys"
	    " WHERE created_at < now() - $1::bigint * interval '1 millisecond'"
	    " ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
	    2, params, store_on_counted, c);
}

static void
store_claimed_row(const PGresult *res, int r, void *out)
{
	struct claimed *c = out;

	c->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	c->recipient = PQgetvalue(res, r, 1);
	c->content = PQgetvalue(res, r, 2);
	c->retry_count = atoi(PQgetvalue(res, r, 3));
	c->lease_token = PQgetvalue(res, r, 4);
}

static void
store_on_claimed(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	size_t n;
	struct claimed *rows = store_rows(res, err, sizeof(*rows),
	    store_claimed_row, &n);

	c->cb.claim(c->arg, rows, n, err);
	free(rows);
	free(c);
}

/* next_attempt_at moves to the lease's end, so the due index alone finds
 * both new messages and claims abandoned by a crashed sender. */
int
store_claim_due(struct pg_conn *pg, int limit, int64_t lease_ms,
    const int64_t *skip, size_t nskip, store_claim_cb cb, void *arg)
{
	char lim[16], lease[24];
	struct pgarray skipped;
	const char *params[3];
	struct store_call *c = store_call_new(arg);
	int rc;

	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(lease, sizeof(lease), "%lld", (long long)lease_ms);
	pgarray_init(&skipped);
	for (size_t i = 0; i < nskip; i++)
		pgarray_add_int(&skipped, skip[i]);
	params[0] = lim;
	params[1] = lease;
	params[2] = pgarray_text(&skipped);
	c->cb.claim = cb;
	rc = store_submit(pg,
	    "WITH due AS ("
	    " SELECT id FROM messages"
	    " WHERE status = 'pending' AND next_attempt_at <= now()"
	    " AND id <> ALL($3::bigint[])"
	    " ORDER BY next_attempt_at, id LIMIT $1"
	    " FOR UPDATE SKIP LOCKED),"
	    " claim AS (SELECT gen_random_uuid() AS token,"
	    " now() + $2::bigint * interval '1 millisecond' AS until)"
	    " UPDATE messages m SET lease_token = claim.token,"
	    " lease_until = claim.until, next_attempt_at = claim.until,"
	    " updated_at = now()"
	    " FROM due, claim WHERE m.id = due.id"
	    " RETURNING m.id, m.recipient, m.content, m.retry_count,"
	    " m.lease_token",
	    (int)ARRAY_LEN(params), params, store_on_claimed, c);
	pgarray_fini(&skipped);
	return rc;
}

static void
store_recorded_row(const PGresult *res, int r, void *out)
{
	struct recorded *rec = out;

	rec->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	rec->status = store_status_parse(PQgetvalue(res, r, 1));
	rec->sent_at = store_text(res, r, 2);
	rec->response_id = store_text(res, r, 3);
}

static void
store_on_recorded(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	size_t n;
	struct recorded *rows = store_rows(res, err, sizeof(*rows),
	    store_recorded_row, &n);

	c->cb.record(c->arg, rows, n, err);
	free(rows);
	free(c);
}

/* The outcome columns of both forms of the write; o is the unnest of
 * $1..$8. */
#define STORE_OUTCOME_SET \
	"UPDATE messages m SET status = o.status," \
	" sent_at = CASE WHEN o.status = 'sent' THEN now() ELSE m.sent_at END," \
	" response_code = o.code," \
	" response_id = COALESCE(o.response_id, m.response_id)," \
	" error_message = o.error," \
	" retry_count = o.retries," \
	" last_attempt_at = now()," \
	" next_attempt_at = CASE WHEN o.status = 'pending'" \
	"  THEN now() + o.delay * interval '1 millisecond'" \
	"  ELSE m.next_attempt_at END," \
	" lease_token = NULL, lease_until = NULL, updated_at = now()"
#define STORE_OUTCOME_WHERE \
	" WHERE m.id = ANY($1::bigint[]) AND m.id = o.id" \
	"  AND m.status = 'pending' AND m.lease_token = o.token"
#define STORE_OUTCOME_RETURNING \
	" RETURNING m.id, m.status, " STORE_TS("m.sent_at") ", m.response_id"

/* Without history: the UPDATE alone. */
static const char store_outcome_sql[] = STORE_OUTCOME_SET
    " FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],"
    "  $5::text[], $6::text[], $7::int[], $8::bigint[])"
    "  AS o(id, token, status, code, response_id, error, retries, delay)" STORE_OUTCOME_WHERE
	STORE_OUTCOME_RETURNING;

/* With history: the attempts go in by a data-modifying CTE of the same
 * statement (no extra round trip), one per row the UPDATE changed, so a
 * late or repeated write records nothing twice. */
static const char store_outcome_history_sql[] =
    "WITH u AS (" STORE_OUTCOME_SET
    " FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],"
    "  $5::text[], $6::text[], $7::int[], $8::bigint[])"
    "  AS o(id, token, status, code, response_id, error, retries, delay)" STORE_OUTCOME_WHERE
	STORE_OUTCOME_RETURNING ", o.code,"
    " o.error AS attempt_error, o.response_id AS attempt_rid),"
    " a AS (INSERT INTO delivery_attempts (message_id, attempt,"
    "  started_at, finished_at, duration_ms, response_code, error,"
    "  response_id, instance)"
    " SELECT u.id, h.attempt,"
    "  'epoch'::timestamptz + h.started * interval '1 millisecond',"
    "  'epoch'::timestamptz + h.finished * interval '1 millisecond',"
    "  greatest(h.finished - h.started, 0), u.code, u.attempt_error,"
    "  u.attempt_rid, $12"
    " FROM u JOIN unnest($1::bigint[], $9::int[], $10::bigint[],"
    "  $11::bigint[]) AS h(id, attempt, started, finished) ON h.id = u.id)"
    " SELECT u.id, u.status, u.to_char, u.response_id FROM u";

/* The guard is the claim's lease token, which the write clears: a late
 * or repeated write, or one for a message another sender took over,
 * matches nothing. m.id = ANY($1) repeats the join on purpose: it hands
 * the planner the rows by primary key. Without it (and with a guard on
 * lease_until, which statistics taken while nothing was leased see as
 * always NULL) it chose to scan the whole table on every write. */
int
store_record_outcomes(struct pg_conn *pg, const struct store_outcome *o,
    size_t n, const char *instance, store_record_cb cb, void *arg)
{
	struct pgarray ids, tokens, statuses, codes, rids, errors, retries,
	    delays, attempts, starts, ends;
	struct pgarray *all[] = { &ids, &tokens, &statuses, &codes, &rids,
		&errors, &retries, &delays, &attempts, &starts, &ends };
	const char *params[ARRAY_LEN(all) + 1];
	size_t nparams = instance != NULL ? ARRAY_LEN(params) : 8;
	struct store_call *c = store_call_new(arg);
	int rc;

	for (size_t k = 0; k < ARRAY_LEN(all); k++)
		pgarray_init(all[k]);
	for (size_t i = 0; i < n; i++) {
		pgarray_add_int(&ids, o[i].id);
		pgarray_add(&tokens, o[i].lease_token);
		pgarray_add(&statuses, store_status_name(o[i].status));
		if (o[i].code != 0)
			pgarray_add_int(&codes, o[i].code);
		else
			pgarray_add(&codes, NULL);
		pgarray_add(&rids, o[i].response_id);
		pgarray_add(&errors, o[i].error);
		pgarray_add_int(&retries, o[i].retry_count);
		pgarray_add_int(&delays, o[i].delay_ms);
		if (instance == NULL)
			continue;
		pgarray_add_int(&attempts, o[i].attempt);
		pgarray_add_int(&starts, o[i].started_ms);
		pgarray_add_int(&ends, o[i].finished_ms);
	}
	for (size_t k = 0; k < ARRAY_LEN(all); k++)
		params[k] = pgarray_text(all[k]);
	params[ARRAY_LEN(all)] = instance;
	c->cb.record = cb;
	rc = store_submit(pg,
	    instance != NULL ? store_outcome_history_sql : store_outcome_sql,
	    (int)nparams, params, store_on_recorded, c);
	for (size_t k = 0; k < ARRAY_LEN(all); k++)
		pgarray_fini(all[k]);
	return rc;
}

static void
store_on_released(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;

	c->cb.count(c->arg, err == NULL ? (size_t)PQntuples(res) : 0, err);
	free(c);
}

/* The guard is the outcome write's: a released message is one that nobody
 * else may have claimed since, and that was never answered. */
int
store_release(struct pg_conn *pg, const struct store_lease *l, size_t n,
    store_count_cb cb, void *arg)
{
	struct pgarray ids, tokens;
	const char *params[2];
	struct store_call *c = store_call_new(arg);
	int rc;

	pgarray_init(&ids);
	pgarray_init(&tokens);
	for (size_t i = 0; i < n; i++) {
		pgarray_add_int(&ids, l[i].id);
		pgarray_add(&tokens, l[i].lease_token);
	}
	params[0] = pgarray_text(&ids);
	params[1] = pgarray_text(&tokens);
	c->cb.count = cb;
	rc = store_submit(pg,
	    "UPDATE messages m SET lease_token = NULL, lease_until = NULL,"
	    " next_attempt_at = now(),"
	    " updated_at = now()"
	    " FROM unnest($1::bigint[], $2::uuid[]) AS r(id, token)"
	    " WHERE m.id = ANY($1::bigint[]) AND m.id = r.id"
	    "  AND m.status = 'pending' AND m.lease_token = r.token"
	    " RETURNING m.id",
	    (int)ARRAY_LEN(params), params, store_on_released, c);
	pgarray_fini(&ids);
	pgarray_fini(&tokens);
	return rc;
}

static void
store_cached_row(const PGresult *res, int r, void *out)
{
	struct cached *c = out;

	c->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	c->response_id = store_text(res, r, 1);
	c->sent_at = PQgetvalue(res, r, 2);
	c->cursor = PQgetvalue(res, r, 3);
	c->ttl_ms = strtoll(PQgetvalue(res, r, 4), NULL, 10);
}

static void
store_on_cached(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	size_t n;
	struct cached *rows = store_rows(res, err, sizeof(*rows),
	    store_cached_row, &n);

	c->cb.cached(c->arg, rows, n, err);
	free(rows);
	free(c);
}

/* The cursor is sent_at's own text (the session's format, every digit),
 * which casts back to the same instant; the TTL left is computed by the
 * server, whose clock set sent_at. The sent listing's index (sent_at
 * DESC, id DESC) serves the range, read backwards. */
int
store_sent_since(struct pg_conn *pg, int64_t since_ms, int64_t ttl_ms,
    const char *cursor, int64_t after_id, int limit, store_cached_cb cb,
    void *arg)
{
	char since[24], ttl[24], after[24], lim[16];
	const char *params[] = { since, ttl, cursor, after, lim };
	struct store_call *c = store_call_new(arg);

	snprintf(since, sizeof(since), "%lld", (long long)since_ms);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_ms);
	snprintf(after, sizeof(after), "%lld", (long long)after_id);
	snprintf(lim, sizeof(lim), "%d", limit);
	c->cb.cached = cb;
	/* clang-format off */
	return store_submit(pg,
	    "SELECT id, response_id, " STORE_TS("sent_at") ", sent_at::text,"
	    " ($2::bigint - (extract(epoch FROM now() - sent_at) * 1000)"
	    "::bigint) AS ttl_ms"
	    " FROM messages"
	    " WHERE status = 'sent'"
	    " AND sent_at >= to_timestamp($1::bigint / 1000.0)"
	    " AND sent_at > now() - $2::bigint * interval '1 millisecond'"
	    " AND ($3::timestamptz IS NULL"
	    " OR (sent_at, id) > ($3::timestamptz, $4::bigint))"
	    " ORDER BY sent_at, id LIMIT $5",
	    (int)ARRAY_LEN(params), params, store_on_cached, c);
	/* clang-format on */
}

static void
store_on_backlog(void *arg, const PGresult *res, const char *err)
{
	struct store_call *c = arg;
	int64_t pending = 0, due = 0;

	if (err == NULL && PQntuples(res) == 1) {
		pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		due = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	} else if (err == NULL) {
		err = "unexpected result";
	}
	c->cb.backlog(c->arg, pending, due, err);
	free(c);
}

/* Both from the due index alone (it holds exactly the pending rows). */
int
store_count_backlog(struct pg_conn *pg, store_backlog_cb cb, void *arg)
{
	struct store_call *c = store_call_new(arg);

	c->cb.backlog = cb;
	return store_submit(pg,
	    "SELECT count(*), count(*) FILTER (WHERE next_attempt_at <= now())"
	    " FROM messages WHERE status = 'pending'",
	    0, NULL, store_on_backlog, c);
}
