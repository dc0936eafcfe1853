/* Shared by the admin operation files (internal to chat/). */
#ifndef CHAT_ADMIN_INT_H
#define CHAT_ADMIN_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "chat/chat_admin.h"

struct chat_service;

/* {"ok": false, "error": <formatted>} */
json_t *error_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The string field name of req, or NULL. */
const char *str_field(json_t *req, const char *name);

/* The pool's operations (chat_admin_pool.c): pool.status, node.info/list/add/remove,
 * shard.transfer. Returns false when op is not one of them. */
bool chat_admin_pool(struct chat_service *svc, const char *op, json_t *req, chat_admin_cb cb,
                     void *arg);

#endif
