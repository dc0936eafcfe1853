/* Users' own room management: authorise with chat_acl, then let the admin operations do
 * the change with the user recorded as its actor. */
#include <string.h>

#include "chat/chat_acl.h"
#include "chat/chat_admin_int.h"
#include "chat/chat_int.h"
#include "chat/chat_manage.h"
#include "common/pc_err.h"

static json_t *me_json(struct chat_service *svc, const char *user)
{
    const struct meta *m = cluster_meta(svc->cl);
    const struct meta_user *u = meta_user(m, user);
    json_t *cats = json_array();
    struct meta_category *c, *tmp;
    HASH_ITER(hh_no, m->cats_by_no, c, tmp) {
        bool create = chat_acl_may_create(m, c, user);
        if (!create && !(u != NULL && u->admin) && !chat_acl_in_scope(c, user))
            continue;
        json_array_append_new(cats, json_pack("{s:s, s:s, s:b, s:b}", "name", c->name,
                                              "description", c->description, "may_create", create,
                                              "file_upload", c->file_upload));
    }
    return json_pack("{s:b, s:s, s:s, s:b, s:o}", "ok", 1, "user", user, "display_name",
                     u != NULL && u->display_name != NULL ? u->display_name : "", "admin",
                     u != NULL && u->admin, "categories", cats);
}

static json_t *rooms_json(struct chat_service *svc, const char *user)
{
    const struct meta *m = cluster_meta(svc->cl);
    json_t *list = json_array();
    struct meta_room *r, *tmp;
    HASH_ITER(hh_no, m->rooms_by_no, r, tmp) {
        if (chat_acl_check(m, r, user, CHAT_SEE, NULL) != 0)
            continue;
        json_t *j = chat_admin_room_json(svc, r);
        json_object_set_new(j, "member", json_boolean(chat_acl_is_member(r, user)));
        json_object_set_new(j, "manager",
                            json_boolean(chat_acl_check(m, r, user, CHAT_MANAGE, NULL) == 0));
        json_array_append_new(list, j);
    }
    return json_pack("{s:b, s:o}", "ok", 1, "rooms", list);
}

/* The refusal for a room the user may not act on, worded as chat_acl words it. */
static json_t *refusal(int rc, const char *why, const char *name)
{
    if (rc == PC_ENOTFOUND)
        return with_reason(error_answer("no room named '%s'", name), "not_found");
    return with_reason(error_answer("%s", why != NULL ? why : "not allowed"), "denied");
}

static json_t *may_create_in(struct chat_service *svc, const char *user, const char *cat_name)
{
    const struct meta *m = cluster_meta(svc->cl);
    const struct meta_category *c = meta_category_by_name(m, cat_name);
    if (c == NULL)
        return with_reason(error_answer("no category named '%s'", cat_name), "not_found");
    if (!chat_acl_may_create(m, c, user))
        return with_reason(error_answer("you may not create rooms in category '%s': ask an administrator "
                            "to add you to its creators",
                            cat_name), "denied");
    return NULL;
}

/* A name (or id, or URI) that a room the user may not see already has. Names are unique, so
 * the name cannot be given; but "a room named … already exists" (the administrators'
 * answer) would tell that a secret room exists. The answer is the one the metadata gives
 * for any name in use, rooms and categories alike. NULL when the name is free or visible. */
static json_t *name_hidden(struct chat_service *svc, const char *user, const char *op,
                           const char *room, const char *name)
{
    const struct meta_room *r = chat_admin_find_room(svc, name);
    if (r == NULL || chat_acl_check(cluster_meta(svc->cl), r, user, CHAT_SEE, NULL) == 0)
        return NULL;
    return error_answer("%s '%s' failed: the name '%s' is already used by a room or category", op,
                        room, name);
}

void chat_manage_handle(struct chat_service *svc, const char *user, json_t *req,
                        chat_admin_cb cb, void *arg)
{
    const char *op = json_is_object(req) ? str_field(req, "op") : NULL;
    const struct meta *m = cluster_meta(svc->cl);
    if (op == NULL) {
        cb(arg, error_answer("a request is a JSON object with \"op\""));
        return;
    }
    if (strcmp(op, "me") == 0) {
        cb(arg, me_json(svc, user));
        return;
    }
    if (strcmp(op, "rooms") == 0) {
        cb(arg, rooms_json(svc, user));
        return;
    }
    const char *name = str_field(req, "name");
    if (name == NULL || name[0] == '\0') {
        cb(arg, error_answer("%s needs \"name\": the room's name", op));
        return;
    }
    if (strcmp(op, "room.new") == 0) {
        const char *cat = str_field(req, "category");
        json_t *err = cat == NULL ? error_answer("a new room needs a category")
                                  : may_create_in(svc, user, cat);
        if (err == NULL)
            err = name_hidden(svc, user, op, name, name);
        if (err != NULL) {
            cb(arg, err);
            return;
        }
        if (json_object_get(req, "managers") == NULL)
            json_object_set_new(req, "managers", json_string(user));
        chat_admin_handle(svc, user, req, cb, arg);
        return;
    }
    const struct meta_room *r = chat_admin_find_room(svc, name);
    const char *why = NULL;
    int rc = chat_acl_check(m, r, user, CHAT_SEE, &why);
    if (rc == 0 && strcmp(op, "room.get") != 0)
        rc = chat_acl_check(m, r, user, CHAT_MANAGE, &why);
    if (rc != 0) {
        cb(arg, refusal(rc, why, name));
        return;
    }
    if (strcmp(op, "room.get") == 0) {
        json_t *j = chat_admin_room_json(svc, r);
        json_object_set_new(j, "manager",
                            json_boolean(chat_acl_check(m, r, user, CHAT_MANAGE, NULL) == 0));
        cb(arg, json_pack("{s:b, s:o}", "ok", 1, "room", j));
        return;
    }
    if (strcmp(op, "room.set") == 0) {
        const char *cat = str_field(req, "category");
        const struct meta_category *now = meta_category_by_no(m, r->category_no);
        json_t *err = NULL;
        if (cat != NULL && (now == NULL || strcmp(cat, now->name) != 0))
            err = may_create_in(svc, user, cat);
        const char *new_name = str_field(req, "new_name");
        if (err == NULL && new_name != NULL)
            err = name_hidden(svc, user, op, name, new_name);
        if (err != NULL) {
            cb(arg, err);
            return;
        }
    } else if (strcmp(op, "room.remove") != 0) {
        cb(arg, error_answer("unknown operation '%s'", op));
        return;
    }
    chat_admin_handle(svc, user, req, cb, arg);
}
