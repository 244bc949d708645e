/* api_docs.c - the API's own description: /openapi.yaml, /swagger/doc.json
 * and Swagger UI under /swagger/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "api.h"
#include "app.h"
#include "docs.h"
#include "reply.h"

/* Bytes with a type; no copy: the data lives as long as the process. */
static void
api_docs_send(struct evhttp_request *req, const char *type, const char *data,
    size_t len, const char *cache)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	evhttp_remove_header(out, "Content-Type");
	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Cache-Control", cache);
	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		char n[24];

		snprintf(n, sizeof(n), "%zu", len);
		evhttp_add_header(out, "Content-Length", n);
	} else {
		evbuffer_add_reference(evhttp_request_get_output_buffer(req),
		    data, len, NULL, NULL);
	}
	evhttp_send_reply(req, 200, "OK", NULL);
}

void
api_openapi_yaml(struct evhttp_request *req, void *arg)
{
	UNUSED(arg);
	api_docs_send(req, "application/yaml", api_openapi_yaml_text,
	    strlen(api_openapi_yaml_text), "no-cache");
}

void
api_openapi_json(struct evhttp_request *req, void *arg)
{
	UNUSED(arg);
	api_docs_send(req, "application/json", api_openapi_json_text,
	    strlen(api_openapi_json_text), "no-cache");
}

void
api_swagger_redirect(struct evhttp_request *req, void *arg)
{
	UNUSED(arg);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location",
	    "/swagger/");
	reply_json(req, 301, json_pack("{s:s}", "location", "/swagger/"));
}

static void
api_swagger_file(struct evhttp_request *req, struct app *app, const char *name)
{
	const struct docs_file *f;
	char msg[320];

	if (!docs_ui_ready(app->docs)) {
		snprintf(msg, sizeof(msg), "Swagger UI assets are not installed "
		    "in %s: run `make swagger-ui` (or rebuild the image after "
		    "it); the spec itself is at /openapi.yaml",
		    docs_dir(app->docs));
		reply_error(req, 503, msg);
		return;
	}
	f = strchr(name, '/') ? NULL : docs_find(app->docs, name);
	if (f == NULL) {
		reply_error(req, 404, "not found");
		return;
	}
	api_docs_send(req, f->content_type, f->data, f->len,
	    strcmp(name, "index.html") == 0 ? "no-cache" : "public, max-age=3600");
}

void
api_swagger_index(struct evhttp_request *req, void *arg)
{
	api_swagger_file(req, arg, "index.html");
}

void
api_swagger_asset(struct evhttp_request *req, void *arg)
{
	const char *raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char *path = evhttp_uridecode(raw, 0, NULL);

	/* The router matched the decoded path against the /swagger/ prefix;
	 * match the file on the same decoded text. */
	if (path == NULL || strncmp(path, "/swagger/", 9) != 0)
		reply_error(req, 404, "not found");
	else
		api_swagger_file(req, arg, path + 9);
	free(path);
}
