/* fuzz_config.c - the environment parser: durations alone, and a whole
 * environment of our variables read by config_load.
 *
 * Input: first byte 'D' = the rest is one duration; otherwise lines of
 * "<index byte><value>", the byte choosing the variable (of config_vars). */
#include <string.h>

#include <jansson.h>

#include "config.h"
#include "fuzz.h"

static void
fuzz_duration(const char *s)
{
	int64_t ms = -1;
	const char *why = NULL;

	if (config_parse_duration(s, &ms, &why) == 0)
		FUZZ_CHECK(ms >= 0);
	else
		FUZZ_CHECK(why != NULL && why[0] != '\0');
}

static void
fuzz_environment(char *s)
{
	struct config cfg;
	char err[512];

	for (size_t i = 0; i < config_nvars; i++)
		unsetenv(config_vars[i].name);
	for (char *line = s, *next; line != NULL && *line; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		/* setenv cannot hold what follows a NUL, nor an empty name. */
		setenv(config_vars[(unsigned char)line[0] % config_nvars].name,
		    line + 1, 1);
	}
	err[0] = '\0';
	if (config_load(&cfg, err, sizeof(err)) == 0) {
		json_t *obj = config_json(&cfg);

		FUZZ_CHECK(obj != NULL);
		FUZZ_CHECK(cfg.webhook_url != NULL);
		json_decref(obj);
		config_fini(&cfg);
	} else {
		/* One line naming the variable, as main prints it. */
		FUZZ_CHECK(strncmp(err, "invalid ", 8) == 0);
		FUZZ_CHECK(strpbrk(err, "\r\n") == NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	if (size > 0 && s[0] == 'D')
		fuzz_duration(s + 1);
	else if (size > 0)
		fuzz_environment(s + 1);
	free(s);
	return 0;
}
