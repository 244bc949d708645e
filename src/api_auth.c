/* api_auth.c - the bearer token every POST needs when API_TOKEN is set.
 *
 * GETs stay open: probes, dashboards and scripts read without a secret.
 * The token is compared in constant time (CRYPTO_memcmp), so the answer's
 * timing says nothing about how much of a guess was right; only its
 * length can leak, which a token long enough makes worthless. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "api.h"
#include "reply.h"
#include "service.h"

bool
api_authorized(const struct api *api, struct evhttp_request *req)
{
	const char *h;
	size_t len;

	if (api->token == NULL || api->token[0] == '\0')
		return true;
	h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	len = strlen(api->token);
	if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
		h += 7;
		while (*h == ' ')
			h++;
		if (strlen(h) == len && CRYPTO_memcmp(h, api->token, len) == 0)
			return true;
	}
	reply_fail(req, SVC_UNAUTHORIZED, NULL);
	return false;
}
