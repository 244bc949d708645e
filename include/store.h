/* store.h - every SQL statement the service runs, and row decoding.
 *
 * store has its own row types: callers convert their domain structs into
 * them, so this header depends on nothing above it (not on the webhook
 * client, not on outcome decisions). */
#ifndef GOPULSE_STORE_H
#define GOPULSE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "message.h"

struct pg_conn;

/* The status column. */
enum store_status { STORE_PENDING, STORE_SENT, STORE_FAILED };

/* A claimed message; strings borrowed for the callback. */
struct claimed {
	int64_t id;
	const char *recipient;
	const char *content;
	const char *lease_token;
	int retry_count;
};

/* One attempt's result to write; strings borrowed for the call (they are
 * copied before store_record_outcomes returns). */
struct store_outcome {
	int64_t id;
	const char *lease_token;  /* the claim's; the write is guarded by it */
	enum store_status status; /* STORE_PENDING = try again later */
	long code;		  /* HTTP status, 0 = none (NULL) */
	const char *response_id;  /* NULL keeps the column as it is */
	const char *error;	  /* NULL when sent */
	int retry_count;	  /* after this attempt */
	int64_t delay_ms;	  /* until the next attempt, when pending */
	/* for the attempt history */
	int attempt;	     /* 1-based */
	int64_t started_ms;  /* wall clock */
	int64_t finished_ms; /* wall clock */
};

/* A claim to give back; strings borrowed for the call. */
struct store_lease {
	int64_t id;
	const char *lease_token;
};

/* An outcome that was written; strings borrowed for the callback. */
struct recorded {
	int64_t id;
	enum store_status status;
	const char *sent_at; /* RFC 3339, for sent ones */
	const char *response_id;
};

/* A sent message's cache entry, as it should be now. */
struct cached {
	int64_t id;
	const char *response_id; /* NULL when the reply had none */
	const char *sent_at;	 /* RFC 3339, as the entry holds it */
	const char *cursor; /* sent_at at full precision, for the next page */
	int64_t ttl_ms;	    /* what is left of CACHE_TTL, > 0 */
};

typedef void (*store_id_cb)(void *arg, int64_t id, const char *err);
typedef void (*store_count_cb)(void *arg, size_t n, const char *err);
/* Room for a listing cursor and its NUL. */
#define STORE_CURSOR_LEN 64

/* A page of a listing: the sent one (the batched kind) or any filter,
 * after a keyset cursor. */
struct store_page {
	int limit, offset;
	enum message_filter filter;
	bool has_after;	  /* keyset: only rows after this key */
	int64_t after_us; /* sent_at in microseconds (the sent listing) */
	int64_t after_id;
};

/* msgs holds every page's messages, page after page; counts[i] says how
 * many are page i's (all 0 after an error); next[i] is the cursor of the
 * page after page i, NULL when page i was not full. */
typedef void (*store_list_cb)(void *arg, const struct message *msgs,
    const size_t *counts, const char *const *next, size_t npages,
    const char *err);

/* What store_create_message did. */
enum store_created {
	STORE_CREATED,	   /* a new message */
	STORE_REPLAYED,	   /* the key's message, same request */
	STORE_KEY_REUSED,  /* the key's message, another request */
	STORE_KEY_MISSING, /* the key went away between two statements */
};

typedef void (*store_create_cb)(void *arg, enum store_created what,
    const struct message *m, const char *err);
/* d is NULL when there is no such message. */
typedef void (*store_detail_cb)(void *arg, const struct message_detail *d,
    const char *err);
/* m is NULL when there is no such message; requeued says whether this
 * call moved it from failed to pending. */
typedef void (*store_retry_cb)(void *arg, const struct message *m,
    bool requeued, const char *err);
typedef void (*store_claim_cb)(void *arg, const struct claimed *rows, size_t n,
    const char *err);
typedef void (*store_record_cb)(void *arg, const struct recorded *rows,
    size_t n, const char *err);
typedef void (*store_cached_cb)(void *arg, const struct cached *rows, size_t n,
    const char *err);
typedef void (*store_backlog_cb)(void *arg, int64_t pending, int64_t due,
    const char *err);

const char *store_status_name(enum store_status status);
/* The text of extract(epoch FROM ts) ("1764446673.927123", "-0.5") as
 * milliseconds, rounded down; MESSAGE_NO_TIME for NULL, infinity or
 * anything else. */
int64_t store_epoch_ms(const char *text);

/* Each returns -1 (and never calls back) when the database is not ready;
 * otherwise the callback runs exactly once, later. */
int store_insert_message(struct pg_conn *pg, const char *recipient,
    const char *content, store_id_cb cb, void *arg) MUSTCHECK;
/* Pages of the sent messages, most recently sent first, all in one
 * statement (n >= 1; one page is the plain SELECT). Only the limit and
 * offset of each page count. */
int store_list_sent(struct pg_conn *pg, const struct store_page *pages,
    size_t n, store_list_cb cb, void *arg) MUSTCHECK;
/* One page of any filter, after its cursor when it has one (a keyset
 * scan of the filter's index: page 1,000 costs what page 1 costs). */
int store_list_page(struct pg_conn *pg, const struct store_page *page,
    store_list_cb cb, void *arg) MUSTCHECK;
/* The keyset of a cursor of filter's listing into page; -1 when it is
 * not one (another filter's, or not a cursor at all). */
int store_cursor_parse(const char *cursor, enum message_filter filter,
    struct store_page *page) MUSTCHECK;

/* A pending message, due now. With an idempotency key (NULL = none) that
 * is already stored and younger than ttl_ms, nothing is inserted: the
 * key's message comes back, as STORE_REPLAYED when recipient and content
 * are the ones stored with it. The key's row and the message go in in one
 * statement, and the key is the primary key: instances racing on one key
 * create one message. */
int store_create_message(struct pg_conn *pg, const char *recipient,
    const char *content, const char *key, int64_t ttl_ms, store_create_cb cb,
    void *arg) MUSTCHECK;
/* The message with its attempts, oldest first. */
int store_get_message(struct pg_conn *pg, int64_t id, store_detail_cb cb,
    void *arg) MUSTCHECK;
/* A failed message back to pending: due now, retry_count 0, error
 * cleared, its attempts kept. */
int store_retry_message(struct pg_conn *pg, int64_t id, store_retry_cb cb,
    void *arg) MUSTCHECK;
/* Up to limit failed messages (updated since since, an RFC 3339 text, or
 * any when NULL) back to pending, in one statement; rows another
 * statement holds are skipped (it is requeuing them). The callback gets
 * how many moved. */
int store_retry_failed(struct pg_conn *pg, const char *since, int limit,
    store_count_cb cb, void *arg) MUSTCHECK;
/* Deletes up to limit idempotency keys older than ttl_ms. */
int store_sweep_keys(struct pg_conn *pg, int64_t ttl_ms, int limit,
    store_count_cb cb, void *arg) MUSTCHECK;

/* Claims up to limit due messages, oldest first, for lease_ms: nobody
 * else can claim them until the lease runs out. The nskip ids in skip are
 * left alone even when due. */
int store_claim_due(struct pg_conn *pg, int limit, int64_t lease_ms,
    const int64_t *skip, size_t nskip, store_claim_cb cb, void *arg) MUSTCHECK;
/* Writes n outcomes in one statement. Only rows still pending under our
 * lease change; the callback gets those (a late or repeated write is a
 * no-op, so it can never flip a sent message back). With an instance
 * name, the same statement adds a delivery_attempts row for each of
 * them; NULL records no history. */
int store_record_outcomes(struct pg_conn *pg, const struct store_outcome *o,
    size_t n, const char *instance, store_record_cb cb, void *arg) MUSTCHECK;
/* Gives n claims back unused: due at once, lease cleared, attempt not
 * counted. Guarded like an outcome, so a lease that already ran out (and
 * perhaps went to another sender) is left alone; the callback gets how
 * many rows were released. */
int store_release(struct pg_conn *pg, const struct store_lease *l, size_t n,
    store_count_cb cb, void *arg) MUSTCHECK;
/* How many messages are pending, and how many of them are due now. */
int store_count_backlog(struct pg_conn *pg, store_backlog_cb cb,
    void *arg) MUSTCHECK;

/* Up to limit messages sent at or after since_ms (wall clock, ms since
 * the epoch) whose entry has not yet expired (sent within ttl_ms), oldest
 * first, after (cursor, after_id) when cursor is not NULL. */
int store_sent_since(struct pg_conn *pg, int64_t since_ms, int64_t ttl_ms,
    const char *cursor, int64_t after_id, int limit, store_cached_cb cb,
    void *arg) MUSTCHECK;

#endif
