/* query.h - validation of query strings. */
#ifndef GOPULSE_QUERY_H
#define GOPULSE_QUERY_H

#include <stddef.h>

#include "common.h"

#define QUERY_LIMIT_DEFAULT 10
#define QUERY_LIMIT_MAX 100

/* limit (1..100, default 10) and offset (>= 0, default 0) of GET
 * /messages; q may be NULL. Returns -1 with a reason for the 400 body. */
int query_parse_list(const char *q, int *limit, int *offset, char *err,
    size_t errlen) MUSTCHECK;

#endif
