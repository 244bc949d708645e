/* message.c - a message row as the API shows it, and its JSON. */
#include "message.h"

json_t *
message_to_json(const struct message *m)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s?, s:i, s:s, s:s?}", "id",
	    (json_int_t)m->id, "recipient", m->recipient, "content", m->content,
	    "status", m->status, "sent_at", m->sent_at, "retry_count",
	    m->retry_count, "created_at", m->created_at, "response_id",
	    m->response_id);
}

json_t *
message_list_to_json(const struct message *m, size_t n)
{
	json_t *arr = json_array();

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *one = message_to_json(&m[i]);

		if (one == NULL || json_array_append_new(arr, one) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return json_pack("{s:o, s:I}", "messages", arr, "count", (json_int_t)n);
}
