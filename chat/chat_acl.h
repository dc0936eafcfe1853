/* Who may do what in a room: the one authorisation function every front end uses. */
#ifndef CHAT_ACL_H
#define CHAT_ACL_H

#include <stdbool.h>

#include "cluster/meta.h"

enum chat_action {
    CHAT_SEE,    /* the room appears in search/associations (secret rooms: members only) */
    CHAT_JOIN,   /* enter the room and read its history */
    CHAT_POST,   /* post (auditoriums: presenters only) */
    CHAT_MANAGE, /* change the room's properties and lists */
};

/* Decides whether user may perform action on room. Returns 0, or PC_ENOTFOUND when the
 * user may not even know the room exists (a secret room, or out of the category's scope:
 * answer exactly as for a missing room), or PC_EDENIED / PC_EDISABLED with a reason
 * (why, may be NULL) fit to show the user. Admins may see and manage everything but post
 * only where they are presenters or members like anyone else. */
int chat_acl_check(const struct meta *m, const struct meta_room *room, const char *user,
                   enum chat_action action, const char **why);

/* Is user in the category's scope: allowed and not denied (Denied overrides Allowed, as in
 * Lync)? */
bool chat_acl_in_scope(const struct meta_category *cat, const char *user);

/* May user create rooms in category (creator list, or admin)? */
bool chat_acl_may_create(const struct meta *m, const struct meta_category *cat, const char *user);

/* Is user listed (directly or by pattern) as member, manager or presenter? */
bool chat_acl_is_member(const struct meta_room *room, const char *user);
bool chat_acl_is_manager(const struct meta_room *room, const char *user);

#endif
