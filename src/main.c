/* main.c - parse the environment, run the app, map the outcome to an exit
 * status (2 for a bad setting). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <jansson.h>

#include "app.h"
#include "config.h"
#include "healthcheck.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

static int
main_usage(FILE *out)
{
	fputs("usage: gopulse-messages [healthcheck | --check-config | "
	      "--version | --help]\n"
	      "  healthcheck     GET /health on $BIND_ADDR:$PORT (loopback "
	      "for a\n"
	      "                  wildcard address); exit 0 when it answers "
	      "200\n"
	      "  --check-config  read the configuration as at start, print it "
	      "(secrets\n"
	      "                  masked) as one JSON line; exit 0, or 2 as at "
	      "start\n"
	      "Configuration comes from the environment; see README.md.\n",
	    out);
	return out == stdout ? 0 : 2;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct app *app;
	bool check_only = false;
	char err[512];
	int rc;

	metrics_init();
	/* Logs go to a pipe in containers: flush each line, not each 4 KiB. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* libevent and hiredis write to sockets without MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	/* Until the loop handles it (app.c), a hang-up must not kill us. */
	signal(SIGHUP, SIG_IGN);
	if (argc > 1) {
		if (strcmp(argv[1], "healthcheck") == 0)
			return healthcheck_run();
		/* For `make docs` and the tests that hold the README and
		 * docker-compose.yml to the configuration table. */
		if (strcmp(argv[1], "--config-table") == 0) {
			config_doc_markdown(stdout);
			return 0;
		}
		if (strcmp(argv[1], "--config-table=json") == 0) {
			config_doc_json(stdout);
			return 0;
		}
		if (strcmp(argv[1], "--version") == 0) {
			printf("gopulse-messages %s\n", GOPULSE_VERSION);
			return 0;
		}
		if (strcmp(argv[1], "--help") == 0)
			return main_usage(stdout);
		if (strcmp(argv[1], "--check-config") != 0 || argc > 2)
			return main_usage(stderr);
		check_only = true;
	}
	if (config_load(&cfg, err, sizeof(err)) != 0) {
		char ts[32];
		json_t *line;

		util_rfc3339(util_wall_ms(), 1, ts, sizeof(ts));
		line = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level",
		    "error", "msg", "invalid configuration", "error", err);
		if (line != NULL) {
			json_dumpf(line, stderr, JSON_COMPACT);
			json_decref(line);
		}
		fputc('\n', stderr);
		return 2;
	}
	if (check_only) {
		json_t *obj = config_json(&cfg);

		json_dumpf(obj, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		json_decref(obj);
		config_fini(&cfg);
		return 0;
	}
	log_set_level(cfg.log_level);
	config_log(&cfg, util_raise_nofile());
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_error("app", "curl_global_init failed", NULL);
		config_fini(&cfg);
		return 1;
	}
	app = app_new(&cfg);
	rc = app ? app_run(app) : 1;
	app_free(app);
	config_fini(&cfg);
	curl_global_cleanup();
	libevent_global_shutdown();
	return rc;
}
