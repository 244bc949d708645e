/* store.h - every SQL statement the service runs, and row decoding. */
#ifndef GOPULSE_STORE_H
#define GOPULSE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "message.h"

struct pg_conn;
struct outcome;

/* A claimed message; strings borrowed for the callback. */
struct claimed {
	int64_t id;
	const char *recipient;
	const char *content;
	const char *lease_token;
	int retry_count;
};

/* An outcome that was written; strings borrowed for the callback. */
struct recorded {
	int64_t id;
	const char *status;
	const char *sent_at;	/* RFC 3339, for sent ones */
	const char *response_id;
};

typedef void (*store_id_cb)(void *arg, int64_t id, const char *err);
typedef void (*store_list_cb)(void *arg, const struct message *msgs,
    size_t n, const char *err);
typedef void (*store_claim_cb)(void *arg, const struct claimed *rows,
    size_t n, const char *err);
typedef void (*store_record_cb)(void *arg, const struct recorded *rows,
    size_t n, const char *err);

/* Each returns -1 (and never calls back) when the database is not ready;
 * otherwise the callback runs exactly once, later. */
int store_insert_message(struct pg_conn *pg, const char *recipient,
    const char *content, store_id_cb cb, void *arg) MUSTCHECK;
/* Sent messages, most recently sent first. */
int store_list_sent(struct pg_conn *pg, int limit, int offset,
    store_list_cb cb, void *arg) MUSTCHECK;

/* Claims up to limit due messages, oldest first, for lease_ms: nobody
 * else can claim them until the lease runs out. */
int store_claim_due(struct pg_conn *pg, int limit, int64_t lease_ms,
    store_claim_cb cb, void *arg) MUSTCHECK;
/* Writes n outcomes in one statement. Only rows still pending under our
 * lease change; the callback gets those (a late or repeated write is a
 * no-op, so it can never flip a sent message back). */
int store_record_outcomes(struct pg_conn *pg, const struct outcome *o,
    size_t n, store_record_cb cb, void *arg) MUSTCHECK;

#endif
