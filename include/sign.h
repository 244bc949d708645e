/* sign.h - Standard Webhooks signatures (HMAC-SHA256, OpenSSL's libcrypto).
 *
 * WEBHOOK_SECRET holds one or more secrets separated by spaces (several
 * during a rotation), each "whsec_" and the base64 of at least
 * SIGN_KEY_MIN bytes. A post then carries
 *   webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">
 * with one v1 entry per secret, so a receiver that knows any one of them
 * accepts it. Keys are decoded and set up once; signing a message writes
 * into the caller's buffer and allocates nothing.
 */
#ifndef GOPULSE_SIGN_H
#define GOPULSE_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define SIGN_PREFIX "whsec_"
#define SIGN_KEY_MIN 24 /* bytes, decoded: the specification's least */
#define SIGN_KEYS_MAX 8
/* "v1," and 44 base64 characters, and the space that separates it from
 * the next (the last has none). */
#define SIGN_ENTRY_LEN 48

struct sign;

/* 0 when secrets is "" or a valid list; else -1 with why, which never
 * repeats any of the value (it is a secret). */
int sign_check(const char *secrets, char *why, size_t whylen) MUSTCHECK;
/* The signer of a valid, non-empty list (sign_check first); aborts when
 * libcrypto cannot set up HMAC-SHA256. */
struct sign *sign_new(const char *secrets);
void sign_free(struct sign *s);
/* Length of the header value sign_message writes, without its NUL. */
size_t sign_len(const struct sign *s);
size_t sign_count(const struct sign *s);
/* "v1,<sig> v1,<sig>..." of "<id>.<ts>.<body>" into out (at least
 * sign_len + 1 bytes); -1 when out is too small or libcrypto fails. */
int sign_message(struct sign *s, const char *id, int64_t ts, const char *body,
    size_t len, char *out, size_t outlen) MUSTCHECK;

#endif
