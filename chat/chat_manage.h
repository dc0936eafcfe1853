/* Room management by users themselves (Lync's room management web page): what the web
 * page's API calls, with every request checked by chat_acl as the XCCOS handlers are. */
#ifndef CHAT_MANAGE_H
#define CHAT_MANAGE_H

#include <jansson.h>

#include "chat/chat_admin.h"

/* One request of user (a signed-in "sip:…" address), answered like chat_admin_handle:
 *   me            who I am, whether I am an administrator, the categories and whether I
 *                 may create rooms in each
 *   rooms         the rooms I may see, each with "member" and "manager" flags
 *   room.get      name (name, id or URI): a room I may see
 *   room.new      fields of the admin room.new; needs the category's creator right; I become
 *                 a manager when no managers are given
 *   room.set      a room I manage (moving it needs the creator right in the new category)
 *   room.remove   a room I manage */
void chat_manage_handle(struct chat_service *svc, const char *user, json_t *request,
                        chat_admin_cb cb, void *arg);

#endif
