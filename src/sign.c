/* sign.c - Standard Webhooks signatures (HMAC-SHA256, OpenSSL's libcrypto).
 *
 * One EVP_MAC_CTX per secret, keyed once: EVP_MAC_init with a NULL key
 * starts a new message under the key it already has, so a signature
 * costs the hashing and nothing else (HMAC() would fetch the algorithm
 * and build a context every time). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "log.h"
#include "sign.h"
#include "util.h"

#define SIGN_MAC_LEN 32 /* SHA-256 */

struct sign {
	EVP_MAC *mac;
	size_t n;
	EVP_MAC_CTX *ctx[SIGN_KEYS_MAX];
};

static bool
sign_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Decodes the base64 of one secret (after its prefix), standard alphabet,
 * padding optional; the key into out (at least len bytes). -1 when it is
 * not base64. */
static int
sign_decode(const char *b64, size_t len, unsigned char *out, size_t *outlen)
{
	size_t data = len, pad = 0, full;
	char *tmp;
	int n;

	while (data > 0 && b64[data - 1] == '=' && pad < 2) {
		data--;
		pad++;
	}
	if (data == 0 || (data + pad) % 4 == 1 || (pad > 0 && len % 4 != 0))
		return -1;
	for (size_t i = 0; i < data; i++)
		if (!sign_b64_char(b64[i]))
			return -1;
	/* EVP_DecodeBlock wants whole quads: pad what came without. */
	full = (data + 3) / 4 * 4;
	tmp = xmalloc(full + 1);
	memcpy(tmp, b64, data);
	memset(tmp + data, '=', full - data);
	tmp[full] = '\0';
	n = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)full);
	free(tmp);
	if (n < 0)
		return -1;
	/* It counts the padding as zero bytes. */
	*outlen = (size_t)n - (full - data);
	return 0;
}

/* Calls fn for each space-separated secret's key; stops at the first
 * error, which goes to why. */
typedef int sign_key_fn(void *arg, const unsigned char *key, size_t len);

static int
sign_each(const char *secrets, sign_key_fn *fn, void *arg, char *why,
    size_t whylen)
{
	const size_t plen = strlen(SIGN_PREFIX);
	const char *p = secrets;
	size_t count = 0;

	for (;;) {
		size_t len, keylen;
		unsigned char *key;
		int rc;

		p += strspn(p, " ");
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		if (++count > SIGN_KEYS_MAX) {
			snprintf(why, whylen, "more than %d secrets",
			    SIGN_KEYS_MAX);
			return -1;
		}
		if (len <= plen || strncmp(p, SIGN_PREFIX, plen) != 0) {
			snprintf(why, whylen,
			    "secret %zu does not start with " SIGN_PREFIX
			    " and its base64",
			    count);
			return -1;
		}
		key = xmalloc(len);
		if (sign_decode(p + plen, len - plen, key, &keylen) != 0) {
			snprintf(why, whylen,
			    "secret %zu: not base64 after " SIGN_PREFIX, count);
			free(key);
			return -1;
		}
		if (keylen < SIGN_KEY_MIN) {
			snprintf(why, whylen,
			    "secret %zu: %zu bytes decoded, at least %d needed",
			    count, keylen, SIGN_KEY_MIN);
			OPENSSL_cleanse(key, keylen);
			free(key);
			return -1;
		}
		rc = fn != NULL ? fn(arg, key, keylen) : 0;
		OPENSSL_cleanse(key, keylen);
		free(key);
		if (rc != 0) {
			snprintf(why, whylen, "secret %zu: cannot set up HMAC",
			    count);
			return -1;
		}
		p += len;
	}
	return 0;
}

int
sign_check(const char *secrets, char *why, size_t whylen)
{
	return sign_each(secrets, NULL, NULL, why, whylen);
}

static int
sign_add_key(void *arg, const unsigned char *key, size_t len)
{
	struct sign *s = arg;
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest,
		    0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(s->mac);

	if (ctx == NULL || EVP_MAC_init(ctx, key, len, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		return -1;
	}
	s->ctx[s->n++] = ctx;
	return 0;
}

struct sign *
sign_new(const char *secrets)
{
	struct sign *s = xcalloc(1, sizeof(*s));
	char why[128];

	s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (s->mac == NULL ||
	    sign_each(secrets, sign_add_key, s, why, sizeof(why)) != 0 ||
	    s->n == 0) {
		log_error("sign", "cannot set up webhook signing", "{s:s}",
		    "reason", s->mac == NULL ? "no HMAC in libcrypto" : why);
		abort();
	}
	return s;
}

void
sign_free(struct sign *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		EVP_MAC_CTX_free(s->ctx[i]);
	EVP_MAC_free(s->mac);
	free(s);
}

size_t
sign_count(const struct sign *s)
{
	return s->n;
}

size_t
sign_len(const struct sign *s)
{
	return s->n * SIGN_ENTRY_LEN - 1;
}

int
sign_message(struct sign *s, const char *id, int64_t ts, const char *body,
    size_t len, char *out, size_t outlen)
{
	char stamp[24];
	int slen = snprintf(stamp, sizeof(stamp), ".%lld.", (long long)ts);
	char *p = out;

	if (outlen < sign_len(s) + 1)
		return -1;
	for (size_t i = 0; i < s->n; i++) {
		unsigned char mac[SIGN_MAC_LEN];
		size_t maclen = 0;
		EVP_MAC_CTX *ctx = s->ctx[i];

		if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 ||
		    EVP_MAC_update(ctx, (const unsigned char *)id,
			strlen(id)) != 1 ||
		    EVP_MAC_update(ctx, (const unsigned char *)stamp,
			(size_t)slen) != 1 ||
		    EVP_MAC_update(ctx, (const unsigned char *)body, len) !=
			1 ||
		    EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) != 1 ||
		    maclen != SIGN_MAC_LEN)
			return -1;
		if (i > 0)
			*p++ = ' ';
		memcpy(p, "v1,", 3);
		p += 3;
		/* 44 characters and a NUL. */
		p += EVP_EncodeBlock((unsigned char *)p, mac, SIGN_MAC_LEN);
	}
	*p = '\0';
	return 0;
}
