#include "chat/chat_acl.h"

#include "common/pc_err.h"

bool chat_acl_is_member(const struct meta_room *room, const char *user)
{
    return meta_principals_match(&room->members, user) ||
           meta_principals_match(&room->managers, user) ||
           meta_principals_match(&room->presenters, user);
}

bool chat_acl_is_manager(const struct meta_room *room, const char *user)
{
    return meta_principals_match(&room->managers, user);
}

static bool is_admin(const struct meta *m, const char *user)
{
    const struct meta_user *u = meta_user(m, user);
    return u != NULL && u->admin && !u->disabled;
}

bool chat_acl_in_scope(const struct meta_category *cat, const char *user)
{
    return cat != NULL && meta_principals_match(&cat->allowed, user) &&
           !meta_principals_match(&cat->denied, user);
}

int chat_acl_check(const struct meta *m, const struct meta_room *room, const char *user,
                   enum chat_action action, const char **why)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *why = NULL;
    if (room == NULL)
        return PC_ENOTFOUND;
    const struct meta_category *cat = meta_category_by_no(m, room->category_no);
    bool admin = is_admin(m, user);
    bool member = chat_acl_is_member(room, user);
    bool manager = chat_acl_is_manager(room, user);
    /* Explicitly listed users are in the room's scope even if the category's lists have
     * changed since; everyone else needs the category to admit them. */
    bool scoped = member || chat_acl_in_scope(cat, user);
    bool visible = admin || (scoped && (room->privacy != META_SECRET || member));
    if (!visible)
        return PC_ENOTFOUND;
    switch (action) {
    case CHAT_SEE:
        return 0;
    case CHAT_MANAGE:
        if (admin || manager)
            return 0;
        *why = "only the room's managers may change it";
        return PC_EDENIED;
    case CHAT_JOIN:
    case CHAT_POST:
        break;
    }
    if (room->disabled) {
        *why = "this room is disabled";
        return PC_EDISABLED;
    }
    if (!scoped || (room->privacy != META_OPEN && !member)) {
        *why = "this room is for its members only";
        return PC_EDENIED;
    }
    if (action == CHAT_POST && room->type == META_AUDITORIUM &&
        !meta_principals_match(&room->presenters, user)) {
        *why = "only presenters may post in this auditorium";
        return PC_EDENIED;
    }
    return 0;
}

bool chat_acl_may_create(const struct meta *m, const struct meta_category *cat, const char *user)
{
    return is_admin(m, user) ||
           (cat != NULL && chat_acl_in_scope(cat, user) && meta_principals_match(&cat->creators, user));
}
