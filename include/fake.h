/* fake.h - plausible fake messages for the producer. */
#ifndef GOPULSE_FAKE_H
#define GOPULSE_FAKE_H

#include <stddef.h>

#define FAKE_PHONE_MAX 17    /* '+', 15 digits, NUL */
#define FAKE_CONTENT_MAX 161 /* 160 characters, NUL */

/* E.164: '+' then 10 to 15 digits, the first not 0. */
void fake_phone(char buf[FAKE_PHONE_MAX]);
/* A sentence of 1 to 160 ASCII characters, capitalised, ending in '.'. */
void fake_sentence(char buf[FAKE_CONTENT_MAX]);

#endif
