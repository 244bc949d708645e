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
		store_backlog_cb backlog;
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

int64_t
store_epoch_ms(const char *text)
{
	const char *p = text;
	int64_t secs = 0, us = 0;
	bool neg;
	int digits = 0;

	if (p == NULL)
		return MESSAGE_NO_TIME;
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
		return MESSAGE_NO_TIME;
	us += secs * 1000000;
	/* Milliseconds rounded down, as to_char's MS (also before 1970). */
	if (neg)
		return -((us + 999) / 1000);
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
};

/* One page: its rows in order. Several: column 0 is the page's number
 * (1-based, in order), the message follows. */
static void
store_on_listed(void *arg, const PGresult *res, const char *err)
{
	struct store_list_call *c = arg;
	size_t n = err == NULL ? (size_t)PQntuples(res) : 0;
	size_t *counts = xcalloc(c->npages, sizeof(*counts));
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
		store_message_at(res, (int)r, col, &msgs[r]);
	}
	c->cb(c->arg, msgs, counts, c->npages, err);
	free(counts);
	free(msgs);
	free(c);
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
	struct store_list_call *c = xmalloc(sizeof(*c));
	char lim[16], off[16];
	const char *params[2];
	int rc;

	assert(n > 0);
	c->cb = cb;
	c->arg = arg;
	c->npages = n;
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

/* The guard is the claim's lease token, which the write clears: a late
 * or repeated write, or one for a message another sender took over,
 * matches nothing. m.id = ANY($1) repeats the join on purpose: it hands
 * the planner the rows by primary key. Without it (and with a guard on
 * lease_until, which statistics taken while nothing was leased see as
 * always NULL) it chose to scan the whole table on every write. */
int
store_record_outcomes(struct pg_conn *pg, const struct store_outcome *o,
    size_t n, store_record_cb cb, void *arg)
{
	struct pgarray ids, tokens, statuses, codes, rids, errors, retries,
	    delays;
	struct pgarray *all[] = { &ids, &tokens, &statuses, &codes, &rids,
		&errors, &retries, &delays };
	const char *params[ARRAY_LEN(all)];
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
	}
	for (size_t k = 0; k < ARRAY_LEN(all); k++)
		params[k] = pgarray_text(all[k]);
	c->cb.record = cb;
	/* clang-format off */
	rc = store_submit(pg,
	    "UPDATE messages m SET status = o.status,"
	    " sent_at = CASE WHEN o.status = 'sent' THEN now() ELSE m.sent_at END,"
	    " response_code = o.code,"
	    " response_id = COALESCE(o.response_id, m.response_id),"
	    " error_message = o.error,"
	    " retry_count = o.retries,"
	    " last_attempt_at = now(),"
	    " next_attempt_at = CASE WHEN o.status = 'pending'"
	    "  THEN now() + o.delay * interval '1 millisecond'"
	    "  ELSE m.next_attempt_at END,"
	    " lease_token = NULL, lease_until = NULL, updated_at = now()"
	    " FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],"
	    "  $5::text[], $6::text[], $7::int[], $8::bigint[])"
	    "  AS o(id, token, status, code, response_id, error, retries, delay)"
	    " WHERE m.id = ANY($1::bigint[]) AND m.id = o.id"
	    "  AND m.status = 'pending' AND m.lease_token = o.token"
	    " RETURNING m.id, m.status, " STORE_TS("m.sent_at") ", m.response_id",
	    (int)ARRAY_LEN(all), params, store_on_recorded, c);
	/* clang-format on */
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
