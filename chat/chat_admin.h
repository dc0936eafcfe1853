/* Administrative operations (categories, rooms, users, invitations) as JSON requests. */
#ifndef CHAT_ADMIN_H
#define CHAT_ADMIN_H

#include <jansson.h>

#include "chat/chat.h"

/* One request: {"op": "room.new", "name": "Lobby", "category": "General", …}. The answer
 * is {"ok": true, …} or {"ok": false, "error": "<what was wrong and what to do>"}; cb owns
 * it (json_decref). `actor` is the administrator's URI, recorded with every change.
 * Operations mirror Lync's cmdlets:
 *   category.new|set|get|list|remove  (New-/Set-/Get-/Remove-CsPersistentChatCategory)
 *   room.new|set|get|list|remove      (…CsPersistentChatRoom)
 *   room.invite                        user, room
 *   user.add|set|get|list|remove      (users and their persistent chat policy)
 *   message.remove, room.clear        (Remove-CsPersistentChatMessage, Clear-CsPersistentChatRoom)
 *   config.set                         (Set-CsPersistentChatConfiguration)
 *   stats
 * The documented field list is in docs/ADMIN.md. cb may run before chat_admin_handle returns
 * (reads) or later (changes, after they are applied). */
typedef void (*chat_admin_cb)(void *arg, json_t *answer);
void chat_admin_handle(struct chat_service *svc, const char *actor, json_t *request,
                       chat_admin_cb cb, void *arg);

/* "alice", "alice@example.test" or "sip:Alice@example.test" as the stored form
 * "sip:alice@…" (malloc'd); a bare name is of domain. */
char *chat_user_uri(const char *s, const char *domain);

/* The pool-wide settings as config.get shows them (0 = each node's file decides). */
struct meta_settings;
json_t *chat_settings_json(const struct meta_settings *s);

#endif
