/* api_docs.c - the API's own description: /openapi.yaml, /swagger/doc.json
 * and Swagger UI under /swagger/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "docs.h"
#include "reply.h"

void
api_openapi_yaml(struct evhttp_request *req, void *arg)
{
	UNUSED(arg);
	reply_bytes(req, "application/yaml", "no-cache", api_openapi_yaml_text,
	    strlen(api_openapi_yaml_text));
}

void
api_openapi_json(struct evhttp_request *req, void *arg)
{
	UNUSED(arg);
	reply_bytes(req, "application/json", "no-cache", api_openapi_json_text,
	    strlen(api_openapi_json_text));
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
api_swagger_file(struct evhttp_request *req, const struct docs *docs,
    const char *name)
{
	const struct docs_file *f;
	char msg[320];

	if (!docs_ui_ready(docs)) {
		snprintf(msg, sizeof(msg),
		    "Swagger UI assets are not installed "
		    "in %s: run `make swagger-ui` (or rebuild the image after "
		    "it); the spec itself is at /openapi.yaml",
		    docs_dir(docs));
		reply_error(req, 503, msg);
		return;
	}
	f = strchr(name, '/') ? NULL : docs_find(docs, name);
	if (f == NULL) {
		reply_error(req, 404, "not found");
		return;
	}
	reply_bytes(req, f->content_type,
	    strcmp(name, "index.html") == 0 ? "no-cache" :
					      "public, max-age=3600",
	    f->data, f->len);
}

void
api_swagger_index(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;

	api_swagger_file(req, api->docs, "index.html");
}

void
api_swagger_asset(struct evhttp_request *req, void *arg)
{
	struct api *api = arg;
	const char *raw =
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	char *path = evhttp_uridecode(raw, 0, NULL);

	/* The router matched the decoded path against the /swagger/ prefix;
	 * match the file on the same decoded text. */
	if (path == NULL || strncmp(path, "/swagger/", 9) != 0)
		reply_error(req, 404, "not found");
	else
		api_swagger_file(req, api->docs, path + 9);
	free(path);
}
