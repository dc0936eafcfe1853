/* Shared by the admin operation files (internal to chat/). */
#ifndef CHAT_ADMIN_INT_H
#define CHAT_ADMIN_INT_H

#include <jansson.h>
#include <stdbool.h>

#include "chat/chat_admin.h"

struct chat_service;
struct meta_room;
struct meta_category;

/* {"ok": false, "error": <formatted>} */
json_t *error_answer(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sets answer's "reason" (not_found, denied, unavailable: what the web API turns into 404,
 * 403, 503) and returns it. */
json_t *with_reason(json_t *answer, const char *reason);
/* The string field name of req, or NULL. */
const char *str_field(json_t *req, const char *name);

/* A room by name, id or ma-chan URI, or NULL. */
const struct meta_room *chat_admin_find_room(struct chat_service *svc, const char *ref);
/* The room a request names in "room" (or "name"); NULL when there is none, after answering
 * the request with why. */
const struct meta_room *chat_admin_room_arg(struct chat_service *svc, const char *op,
                                            json_t *req, chat_admin_cb cb, void *arg);
/* JSON views of records, as the admin answers carry them. */
json_t *chat_admin_room_json(struct chat_service *svc, const struct meta_room *r);
json_t *chat_admin_category_json(const struct meta_category *c);

/* The pool's operations (chat_admin_pool.c): pool.status, node.info/list/add/remove,
 * shard.transfer. Returns false when op is not one of them. */
bool chat_admin_pool(struct chat_service *svc, const char *op, json_t *req, chat_admin_cb cb,
                     void *arg);

/* message.remove and room.clear (chat_admin_history.c). Returns false when op is not one
 * of them. */
bool chat_admin_history(struct chat_service *svc, const char *op, json_t *req, const char *actor,
                        chat_admin_cb cb, void *arg);

/* A date field: "2026-11-24" (its start, or its end when end_of_day), an ISO 8601 time in
 * UTC, or "now"; absent or "" = 0. False (err filled) on anything else. */
bool chat_date_field(json_t *req, const char *name, bool end_of_day, int64_t *out, char *err,
                     size_t errlen);

/* history.export and message.import (chat_admin_transfer.c); false when op is another. */
bool chat_admin_transfer(struct chat_service *svc, const char *op, json_t *req,
                         const char *actor, chat_admin_cb cb, void *arg);

/* config.set (chat_admin_settings.c); false when op is another. */
bool chat_admin_settings(struct chat_service *svc, const char *op, json_t *req,
                         const char *actor, chat_admin_cb cb, void *arg);

#endif
