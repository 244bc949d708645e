/* fake.c - plausible fake messages for the producer. */
#include <ctype.h>
#include <string.h>

#include "fake.h"
#include "util.h"

/* clang-format off */
static const char *const fake_words[] = {
	"your", "order", "has", "shipped", "and", "will", "arrive", "soon",
	"the", "meeting", "moved", "to", "tomorrow", "morning", "please",
	"confirm", "appointment", "at", "clinic", "code", "is", "valid", "for",
	"ten", "minutes", "thanks", "shopping", "with", "us", "today", "new",
	"message", "from", "team", "reminder", "payment", "due", "on", "friday",
	"delivery", "window", "between", "noon", "evening", "call", "back",
	"when", "free", "table", "booked", "two", "people", "ticket", "ready",
	"pickup", "store", "account", "updated", "successfully", "welcome",
	"aboard", "weather", "alert", "rain", "expected", "later", "flight",
	"delayed", "gate", "changed", "package", "waiting", "locker", "offer",
	"ends", "tonight", "verify", "login", "device", "subscription", "renewed",
};
/* clang-format on */

void
fake_phone(char buf[FAKE_PHONE_MAX])
{
	size_t digits = 10 + (size_t)util_rand_below(6);

	buf[0] = '+';
	buf[1] = (char)('1' + util_rand_below(9));
	for (size_t i = 2; i <= digits; i++)
		buf[i] = (char)('0' + util_rand_below(10));
	buf[digits + 1] = '\0';
}

void
fake_sentence(char buf[FAKE_CONTENT_MAX])
{
	size_t want = 3 + (size_t)util_rand_below(18);
	size_t len = 0;

	for (size_t i = 0; i < want; i++) {
		const char *w =
		    fake_words[util_rand_below(ARRAY_LEN(fake_words))];
		size_t wl = strlen(w);

		/* Room for a space before and the final '.' after. */
		if (len + (len > 0) + wl + 1 > FAKE_CONTENT_MAX - 1)
			break;
		if (len > 0)
			buf[len++] = ' ';
		memcpy(buf + len, w, wl);
		len += wl;
	}
	buf[0] = (char)toupper((unsigned char)buf[0]);
	buf[len++] = '.';
	buf[len] = '\0';
}
