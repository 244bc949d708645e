/* store.h - every SQL statement the service runs, and row decoding.
 *
 * store has its own row types: callers convert their domain structs into
 * them, so this header depends on nothing above it (not on the webhook
 * client, not on outcome decisions). */
#ifndef GOPULSE_STORE_H
#define GOPULSE_STORE_H

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

typedef void (*store_id_cb)(void *arg, int64_t id, const char *err);
typedef void (*store_count_cb)(void *arg, size_t n, const char *err);
/* A page of the sent listing. */
struct store_page {
	int limit, offset;
};

/* msgs holds every page's messages, page after page; counts[i] says how
 * many are page i's (all 0 after an error). */
typedef void (*store_list_cb)(void *arg, const struct message *msgs,
    const size_t *counts, size_t npages, const char *err);
typedef void (*store_claim_cb)(void *arg, const struct claimed *rows, size_t n,
    const char *err);
typedef void (*store_record_cb)(void *arg, const struct recorded *rows,
    size_t n, const char *err);
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
 * statement (n >= 1; one page is the plain SELECT). */
int store_list_sent(struct pg_conn *pg, const struct store_page *pages,
    size_t n, store_list_cb cb, void *arg) MUSTCHECK;

/* Claims up to limit due messages, oldest first, for lease_ms: nobody
 * else can claim them until the lease runs out. The nskip ids in skip are
 * left alone even when due. */
int store_claim_due(struct pg_conn *pg, int limit, int64_t lease_ms,
    const int64_t *skip, size_t nskip, store_claim_cb cb, void *arg) MUSTCHECK;
/* Writes n outcomes in one statement. Only rows still pending under our
 * lease change; the callback gets those (a late or repeated write is a
 * no-op, so it can never flip a sent message back). */
int store_record_outcomes(struct pg_conn *pg, const struct store_outcome *o,
    size_t n, store_record_cb cb, void *arg) MUSTCHECK;
/* Gives n claims back unused: due at once, lease cleared, attempt not
 * counted. Guarded like an outcome, so a lease that already ran out (and
 * perhaps went to another sender) is left alone; the callback gets how
 * many rows were released. */
int store_release(struct pg_conn *pg, const struct store_lease *l, size_t n,
    store_count_cb cb, void *arg) MUSTCHECK;
/* How many messages are pending, and how many of them are due now. */
int store_count_backlog(struct pg_conn *pg, store_backlog_cb cb,
    void *arg) MUSTCHECK;

#endif
