/* store.h - every SQL statement the service runs, and row decoding. */
#ifndef GOPULSE_STORE_H
#define GOPULSE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "message.h"

struct pg_conn;

typedef void (*store_id_cb)(void *arg, int64_t id, const char *err);
typedef void (*store_list_cb)(void *arg, const struct message *msgs,
    size_t n, const char *err);

/* Each returns -1 (and never calls back) when the database is not ready;
 * otherwise the callback runs exactly once, later. */
int store_insert_message(struct pg_conn *pg, const char *recipient,
    const char *content, store_id_cb cb, void *arg) MUSTCHECK;
/* Sent messages, most recently sent first. */
int store_list_sent(struct pg_conn *pg, int limit, int offset,
    store_list_cb cb, void *arg) MUSTCHECK;

#endif
