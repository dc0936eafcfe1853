/* Administrative operations: JSON requests turned into metadata operations. */
#include <ctype.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/chat_admin.h"
#include "chat/chat_admin_int.h"
#include "chat/chat_int.h"
#include "chat/chat_passwd.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_loop_watch.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

struct admin_call {
    chat_admin_cb cb;
    void *arg;
    struct chat_service *svc;
    char what[64];
    char name[300];
};

json_t *error_answer(const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pc_utf8_sanitize(buf); /* names from requests, and a cut may split a character */
    return json_pack("{s:b, s:s}", "ok", 0, "error", buf);
}

json_t *with_reason(json_t *answer, const char *reason)
{
    json_object_set_new(answer, "reason", json_string(reason));
    return answer;
}

/* ---- field helpers --------------------------------------------------------------------- */

const char *str_field(json_t *req, const char *name)
{
    json_t *v = json_object_get(req, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A boolean field: absent keeps *out; a wrong type is an error. */
static bool bool_field(json_t *req, const char *name, bool *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(req, name);
    if (v == NULL)
        return true;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcasecmp(s, "true") || !strcasecmp(s, "yes")) {
            *out = true;
            return true;
        }
        if (!strcasecmp(s, "false") || !strcasecmp(s, "no")) {
            *out = false;
            return true;
        }
    }
    snprintf(err, errlen, "field '%s' must be true or false", name);
    return false;
}

/* A retention limit (retention_days, retention_messages): a number, 0 = keep forever; for
 * a room also "inherit" (the category's setting). Absent keeps *out. */
static bool keep_field(json_t *req, const char *name, bool room, uint32_t *out, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(req, name);
    if (v == NULL)
        return true;
    unsigned long long n = 0;
    bool ok = json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < 100000000;
    if (ok)
        n = (unsigned long long)json_integer_value(v);
    if (json_is_string(v)) {
        if (room && strcmp(json_string_value(v), "inherit") == 0) {
            *out = META_KEEP_INHERIT;
            return true;
        }
        ok = pc_parse_u64(json_string_value(v), 0, 99999999, &n);
    }
    if (!ok) {
        snprintf(err, errlen, "field '%s' is a number (0 = keep forever)%s", name,
                 room ? " or \"inherit\" (the category's setting)" : "");
        return false;
    }
    *out = room ? (n == 0 ? META_KEEP_FOREVER : (uint32_t)n) : (uint32_t)n;
    return true;
}

static json_t *keep_json(uint32_t v)
{
    if (v == META_KEEP_INHERIT)
        return json_string("inherit");
    return json_integer(v == META_KEEP_FOREVER ? 0 : v);
}

/* A principal list: a JSON array of strings or one comma-separated string. Absent keeps the
 * current list. */
/* A list of users. Each list is bounded ([chat] max_members_per_request): it becomes one
 * metadata entry replicated to every node, so a list of a million names is refused whole,
 * with the figures, rather than stored or cut short. Groups are written *@domain. */
static bool list_field(struct chat_service *svc, json_t *req, const char *name,
                       struct meta_principals *p, char *err, size_t errlen)
{
    json_t *v = json_object_get(req, name);
    if (v == NULL)
        return true;
    meta_principals_clear(p);
    char why[200];
    unsigned max = svc->cfg.max_members_per_request;
    if (json_is_string(v)) {
        if (!meta_principals_parse(p, json_string_value(v), why, sizeof why)) {
            snprintf(err, errlen, "field '%s': %s", name, why);
            return false;
        }
        if (p->n > max)
            goto too_many;
        return true;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it) {
            if (!json_is_string(it) || !meta_principals_parse(p, json_string_value(it), why, sizeof why)) {
                snprintf(err, errlen, "field '%s': %s", name,
                         json_is_string(it) ? why : "entries must be strings");
                return false;
            }
            if (p->n > max)
                goto too_many;
        }
        return true;
    }
    snprintf(err, errlen, "field '%s' must be a list of users", name);
    return false;
too_many:
    svc->stats.requests_too_long++;
    snprintf(err, errlen, "field '%s' names more than %u users, the most one request may name "
             "([chat] max_members_per_request); name groups as *@domain, or split the change",
             name, max);
    return false;
}

static json_t *principals_json(const struct meta_principals *p)
{
    json_t *a = json_array();
    for (size_t i = 0; i < p->n; i++)
        json_array_append_new(a, json_string(p->items[i]));
    return a;
}

char *chat_user_uri(const char *s, const char *domain)
{
    /* "alice", "alice@example.test" and "sip:Alice@example.test" name the same user. */
    const char *bare = strncasecmp(s, "sip:", 4) == 0 ? s + 4 : s;
    size_t n = strlen(bare) + strlen(domain) + 6;
    char *u = pc_malloc(n);
    if (strchr(bare, '@') != NULL)
        snprintf(u, n, "sip:%s", bare);
    else
        snprintf(u, n, "sip:%s@%s", bare, domain);
    pc_str_lower(u);
    return u;
}

/* ---- JSON views of records ---------------------------------------------------------------- */

json_t *chat_admin_category_json(const struct meta_category *c)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:b, s:b, s:b, s:I, s:I}", "name", c->name,
                     "id", c->guid, "description", c->description, "allowed",
                     principals_json(&c->allowed), "denied", principals_json(&c->denied),
                     "creators", principals_json(&c->creators), "file_upload", c->file_upload,
                     "chat_history", c->chat_history, "invitations", c->invitations,
                     "retention_days", (json_int_t)c->keep_days, "retention_messages",
                     (json_int_t)c->keep_messages);
}

json_t *chat_admin_room_json(struct chat_service *svc, const struct meta_room *r)
{
    const struct meta_category *c = meta_category_by_no(cluster_meta(svc->cl), r->category_no);
    char uri[256];
    snprintf(uri, sizeof uri, "ma-chan://%s/%s", svc->cfg.domain, r->guid);
    char created[PC_ISO_LEN];
    pc_time_iso(r->created_us, created);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:s, s:s, s:I, s:I, s:I}",
                     "name", r->name, "id", r->guid, "uri", uri, "description", r->description,
                     "category", c ? c->name : "", "privacy", meta_privacy_name(r->privacy), "type",
                     r->type == META_AUDITORIUM ? "auditorium" : "normal", "disabled", r->disabled,
                     "invitations", r->invitations, "managers", principals_json(&r->managers),
                     "members", principals_json(&r->members), "presenters",
                     principals_json(&r->presenters), "creator", r->creator, "created", created,
                     "shard", (json_int_t)r->shard, "owner",
                     (json_int_t)cluster_room_owner(svc->cl, r->no), "users",
                     (json_int_t)cluster_room_users(svc->cl, r->no));
    if (j != NULL) { /* NULL only for bytes that are not UTF-8, which input validation refuses */
        json_object_set_new(j, "retention_days", keep_json(r->keep_days));
        json_object_set_new(j, "retention_messages", keep_json(r->keep_messages));
    }
    return j;
}

static json_t *user_json(const struct meta_user *u)
{
    return json_pack("{s:s, s:s, s:b, s:b, s:b, s:b}", "user", u->uri, "display_name",
                     u->display_name ? u->display_name : "", "admin", u->admin, "chat_enabled",
                     u->chat_enabled, "disabled", u->disabled, "has_password", u->password_hash != NULL);
}

/* ---- completion of changes ------------------------------------------------------------- */

static void change_done(void *arg, const struct meta_result *res)
{
    struct admin_call *call = arg;
    json_t *answer;
    if (res->status != 0) {
        answer = error_answer("%s '%s' failed: %s", call->what, call->name, res->errmsg);
        if (res->status == PC_EBUSY || res->status == PC_EUNAVAIL || res->status == PC_ENOTLEADER)
            with_reason(answer, "unavailable");
    } else {
        answer = json_pack("{s:b}", "ok", 1);
        const struct meta *m = cluster_meta(call->svc->cl);
        const struct meta_room *r = NULL;
        const struct meta_category *c = NULL;
        if (strncmp(call->what, "room.", 5) == 0 && strcmp(call->what, "room.remove") != 0 &&
            (r = meta_room_by_no(m, res->no)) != NULL)
            json_object_set_new(answer, "room", chat_admin_room_json(call->svc, r));
        if (strncmp(call->what, "category.", 9) == 0 && strcmp(call->what, "category.remove") != 0 &&
            (c = meta_category_by_no(m, res->no)) != NULL)
            json_object_set_new(answer, "category", chat_admin_category_json(c));
        pc_notice("admin: %s '%s' done", call->what, call->name);
    }
    call->cb(call->arg, answer);
    pc_free(call);
}

static void submit(struct chat_service *svc, const char *what, const char *name,
                   struct meta_op *op, const char *actor, chat_admin_cb cb, void *arg)
{
    struct admin_call *call = pc_calloc(1, sizeof *call);
    call->cb = cb;
    call->arg = arg;
    call->svc = svc;
    pc_strlcpy(call->what, what, sizeof call->what);
    pc_strlcpy(call->name, name ? name : "", sizeof call->name);
    op->ts_us = pc_wall_us();
    pc_strlcpy(op->actor, actor, sizeof op->actor);
    pc_strlcpy(op->node, svc->cfg.node_label, sizeof op->node);
    int rc = cluster_meta_submit(svc->cl, op, change_done, call);
    if (rc != 0) {
        json_t *busy = error_answer("%s: the pool cannot accept changes right now (%s); retry",
                                    what, pc_strerror(rc));
        call->cb(call->arg, with_reason(busy, "unavailable"));
        pc_free(call);
    }
    meta_op_clear(op);
}

/* ---- categories -------------------------------------------------------------------------- */

static json_t *category_from_request(struct chat_service *svc, json_t *req,
                                     struct meta_category *c, bool create)
{
    char err[300];
    const char *name = str_field(req, "name");
    const char *new_name = str_field(req, "new_name");
    const char *desc = str_field(req, "description");
    if (!create && new_name != NULL) {
        pc_free(c->name);
        c->name = pc_strdup(new_name);
    } else if (create) {
        c->name = pc_strdup(name);
        pc_guid(c->guid);
        /* Everyone of the domain may use a new category unless told otherwise. */
        char all[160];
        snprintf(all, sizeof all, "*@%s", svc->cfg.domain);
        meta_principals_add(&c->allowed, all);
        c->chat_history = true;
        c->invitations = true;
    }
    if (desc != NULL) {
        pc_free(c->description);
        c->description = pc_strdup(desc);
    }
    if (!list_field(svc, req, "allowed", &c->allowed, err, sizeof err) ||
        !list_field(svc, req, "denied", &c->denied, err, sizeof err) ||
        !list_field(svc, req, "creators", &c->creators, err, sizeof err) ||
        !bool_field(req, "file_upload", &c->file_upload, err, sizeof err) ||
        !bool_field(req, "chat_history", &c->chat_history, err, sizeof err) ||
        !bool_field(req, "invitations", &c->invitations, err, sizeof err) ||
        !keep_field(req, "retention_days", false, &c->keep_days, err, sizeof err) ||
        !keep_field(req, "retention_messages", false, &c->keep_messages, err, sizeof err))
        return error_answer("%s", err);
    return NULL;
}

static void category_op(struct chat_service *svc, const char *op_name, json_t *req,
                        const char *actor, chat_admin_cb cb, void *arg)
{
    const struct meta *m = cluster_meta(svc->cl);
    const char *name = str_field(req, "name");
    if (strcmp(op_name, "category.list") == 0) {
        json_t *list = json_array();
        struct meta_category *c, *tmp;
        HASH_ITER(hh_no, m->cats_by_no, c, tmp)
            json_array_append_new(list, chat_admin_category_json(c));
        cb(arg, json_pack("{s:b, s:o}", "ok", 1, "categories", list));
        return;
    }
    if (name == NULL || name[0] == '\0') {
        cb(arg, error_answer("%s needs \"name\": the category's name", op_name));
        return;
    }
    const struct meta_category *cur = meta_category_by_name(m, name);
    bool create = strcmp(op_name, "category.new") == 0;
    if (!create && cur == NULL) {
        cb(arg, with_reason(error_answer("no category named '%s' (category.list shows them)", name), "not_found"));
        return;
    }
    if (strcmp(op_name, "category.get") == 0) {
        cb(arg, json_pack("{s:b, s:o}", "ok", 1, "category", chat_admin_category_json(cur)));
        return;
    }
    struct meta_op op = {0};
    if (strcmp(op_name, "category.remove") == 0) {
        op.kind = META_OP_CATEGORY_DEL;
        op.cat.no = cur->no;
        submit(svc, op_name, name, &op, actor, cb, arg);
        return;
    }
    if (create && cur != NULL) {
        cb(arg, error_answer("a category named '%s' already exists", name));
        return;
    }
    op.kind = META_OP_CATEGORY_PUT;
    if (cur != NULL)
        meta_category_copy(&op.cat, cur);
    json_t *err = category_from_request(svc, req, &op.cat, create);
    if (err != NULL) {
        meta_op_clear(&op);
        cb(arg, err);
        return;
    }
    submit(svc, op_name, name, &op, actor, cb, arg);
}

/* ---- rooms --------------------------------------------------------------------------------- */

const struct meta_room *chat_admin_find_room(struct chat_service *svc, const char *ref)
{
    const struct meta *m = cluster_meta(svc->cl);
    if (ref == NULL)
        return NULL;
    const struct meta_room *r = meta_room_by_name(m, ref);
    if (r == NULL)
        r = meta_room_by_guid(m, ref);
    if (r == NULL)
        r = chat_room_by_uri(svc, ref);
    return r;
}

const struct meta_room *chat_admin_room_arg(struct chat_service *svc, const char *op,
                                            json_t *req, chat_admin_cb cb, void *arg)
{
    const char *ref = str_field(req, "room");
    if (ref == NULL)
        ref = str_field(req, "name");
    const struct meta_room *rm = ref != NULL ? chat_admin_find_room(svc, ref) : NULL;
    if (rm == NULL)
        cb(arg, ref == NULL ? error_answer("%s needs \"room\": the room's name, id or URI", op)
                            : with_reason(error_answer("no room named '%s'", ref), "not_found"));
    return rm;
}

static bool guid_valid(const char *s)
{
    if (strlen(s) != PC_GUID_LEN - 1)
        return false;
    for (size_t i = 0; s[i] != '\0'; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

static json_t *room_from_request(struct chat_service *svc, json_t *req, struct meta_room *r,
                                 bool create)
{
    const struct meta *m = cluster_meta(svc->cl);
    char err[300];
    const char *s;
    if (create) {
        r->name = pc_strdup(str_field(req, "name"));
        pc_guid(r->guid);
        r->invitations = true;
        /* An imported room keeps its id (its ma-chan URI): clients' links still work. */
        if ((s = str_field(req, "id")) != NULL) {
            if (!guid_valid(s))
                return error_answer("id '%s' is not a room id (8-4-4-4-12 hex digits)", s);
            if (meta_room_by_guid(m, s) != NULL)
                return error_answer("a room with id %s exists already", s);
            pc_strlcpy(r->guid, s, sizeof r->guid);
        }
    } else if ((s = str_field(req, "new_name")) != NULL) {
        pc_free(r->name);
        r->name = pc_strdup(s);
    }
    if ((s = str_field(req, "description")) != NULL) {
        pc_free(r->description);
        r->description = pc_strdup(s);
    }
    if ((s = str_field(req, "category")) != NULL) {
        const struct meta_category *c = meta_category_by_name(m, s);
        if (c == NULL)
            return error_answer("no category named '%s' (category.list shows them)", s);
        r->category_no = c->no;
    } else if (create) {
        return error_answer("room.new needs \"category\": the category the room belongs to");
    }
    if ((s = str_field(req, "privacy")) != NULL && !meta_privacy_parse(s, &r->privacy))
        return error_answer("privacy '%s' is not open, closed or secret", s);
    if ((s = str_field(req, "type")) != NULL) {
        if (strcasecmp(s, "normal") == 0)
            r->type = META_NORMAL;
        else if (strcasecmp(s, "auditorium") == 0)
            r->type = META_AUDITORIUM;
        else
            return error_answer("type '%s' is not normal or auditorium", s);
    }
    if (!list_field(svc, req, "managers", &r->managers, err, sizeof err) ||
        !list_field(svc, req, "members", &r->members, err, sizeof err) ||
        !list_field(svc, req, "presenters", &r->presenters, err, sizeof err) ||
        !bool_field(req, "disabled", &r->disabled, err, sizeof err) ||
        !bool_field(req, "invitations", &r->invitations, err, sizeof err) ||
        !keep_field(req, "retention_days", true, &r->keep_days, err, sizeof err) ||
        !keep_field(req, "retention_messages", true, &r->keep_messages, err, sizeof err))
        return error_answer("%s", err);
    return NULL;
}

static void room_op(struct chat_service *svc, const char *op_name, json_t *req, const char *actor,
                    chat_admin_cb cb, void *arg)
{
    const struct meta *m = cluster_meta(svc->cl);
    if (strcmp(op_name, "room.list") == 0) {
        const char *cat = str_field(req, "category");
        const struct meta_category *c = cat ? meta_category_by_name(m, cat) : NULL;
        if (cat != NULL && c == NULL) {
            cb(arg, with_reason(error_answer("no category named '%s'", cat), "not_found"));
            return;
        }
        json_t *list = json_array();
        struct meta_room *r, *tmp;
        HASH_ITER(hh_no, m->rooms_by_no, r, tmp)
            if (c == NULL || r->category_no == c->no)
                json_array_append_new(list, chat_admin_room_json(svc, r));
        cb(arg, json_pack("{s:b, s:o}", "ok", 1, "rooms", list));
        return;
    }
    const char *name = str_field(req, "name");
    if (name == NULL || name[0] == '\0') {
        cb(arg, error_answer("%s needs \"name\": the room's name, id or URI", op_name));
        return;
    }
    bool create = strcmp(op_name, "room.new") == 0;
    const struct meta_room *cur = chat_admin_find_room(svc, name);
    if (create && cur != NULL) {
        cb(arg, error_answer("a room named '%s' already exists", name));
        return;
    }
    if (!create && cur == NULL) {
        cb(arg, with_reason(error_answer("no room named '%s' (room.list shows them)", name), "not_found"));
        return;
    }
    if (strcmp(op_name, "room.get") == 0) {
        cb(arg, json_pack("{s:b, s:o}", "ok", 1, "room", chat_admin_room_json(svc, cur)));
        return;
    }
    struct meta_op op = {0};
    if (strcmp(op_name, "room.remove") == 0) {
        op.kind = META_OP_ROOM_DEL;
        op.room.no = cur->no;
        submit(svc, op_name, name, &op, actor, cb, arg);
        return;
    }
    if (strcmp(op_name, "room.invite") == 0) {
        const char *who = str_field(req, "user");
        if (who == NULL) {
            cb(arg, error_answer("room.invite needs \"user\""));
            return;
        }
        char *uri = chat_user_uri(who, svc->cfg.domain);
        op.kind = META_OP_INVITE;
        op.room_no = cur->no;
        pc_strlcpy(op.target_user, uri, sizeof op.target_user);
        pc_free(uri);
        submit(svc, op_name, name, &op, actor, cb, arg);
        return;
    }
    op.kind = META_OP_ROOM_PUT;
    if (cur != NULL)
        meta_room_copy(&op.room, cur);
    json_t *err = room_from_request(svc, req, &op.room, create);
    if (err != NULL) {
        meta_op_clear(&op);
        cb(arg, err);
        return;
    }
    submit(svc, op_name, name, &op, actor, cb, arg);
}

/* ---- users --------------------------------------------------------------------------------- */

static void user_op(struct chat_service *svc, const char *op_name, json_t *req, const char *actor,
                    chat_admin_cb cb, void *arg)
{
    const struct meta *m = cluster_meta(svc->cl);
    if (strcmp(op_name, "user.list") == 0) {
        json_t *list = json_array();
        struct meta_user *u, *tmp;
        HASH_ITER(hh, m->users, u, tmp)
            json_array_append_new(list, user_json(u));
        cb(arg, json_pack("{s:b, s:o}", "ok", 1, "users", list));
        return;
    }
    const char *who = str_field(req, "user");
    if (who == NULL || who[0] == '\0') {
        cb(arg, error_answer("%s needs \"user\": a SIP address such as alice@%s", op_name,
                             svc->cfg.domain));
        return;
    }
    char *uri = chat_user_uri(who, svc->cfg.domain);
    const struct meta_user *cur = meta_user(m, uri);
    bool create = strcmp(op_name, "user.add") == 0;
    bool passwd = strcmp(op_name, "user.passwd") == 0;
    json_t *answer = NULL;
    if (create && cur != NULL)
        answer = error_answer("user %s already exists (use user.set to change it)", uri);
    else if (!create && cur == NULL)
        answer = with_reason(error_answer("no user %s (user.list shows them)", uri), "not_found");
    else if (strcmp(op_name, "user.get") == 0)
        answer = json_pack("{s:b, s:o}", "ok", 1, "user", user_json(cur));
    if (answer != NULL) {
        pc_free(uri);
        cb(arg, answer);
        return;
    }
    struct meta_op op = {0};
    if (strcmp(op_name, "user.remove") == 0) {
        op.kind = META_OP_USER_DEL;
        op.user.uri = pc_strdup(uri);
    } else {
        op.kind = META_OP_USER_PUT;
        if (cur != NULL) {
            meta_user_copy(&op.user, cur);
        } else {
            op.user.uri = pc_strdup(uri);
            op.user.chat_enabled = true;
        }
        const char *password = str_field(req, "password");
        if (passwd && (password == NULL || strlen(password) < 8)) {
            meta_op_clear(&op);
            pc_free(uri);
            cb(arg, error_answer("user.passwd needs --password with at least 8 characters"));
            return;
        }
        if (password != NULL) {
            /* Only the derived forms are stored (chat/chat_passwd.h). */
            char *stored = chat_passwd_make(uri, svc->cfg.domain, password);
            if (stored == NULL) {
                meta_op_clear(&op);
                pc_free(uri);
                cb(arg, error_answer("the password could not be derived (OpenSSL failed)"));
                return;
            }
            pc_free(op.user.password_hash);
            op.user.password_hash = stored;
        }
        const char *dn = str_field(req, "display_name");
        if (dn != NULL) {
            pc_free(op.user.display_name);
            op.user.display_name = pc_strdup(dn);
        }
        char err[200];
        if (!bool_field(req, "admin", &op.user.admin, err, sizeof err) ||
            !bool_field(req, "chat_enabled", &op.user.chat_enabled, err, sizeof err) ||
            !bool_field(req, "disabled", &op.user.disabled, err, sizeof err)) {
            meta_op_clear(&op);
            pc_free(uri);
            cb(arg, error_answer("%s", err));
            return;
        }
    }
    submit(svc, op_name, uri, &op, actor, cb, arg);
    pc_free(uri);
}

/* ---- entry point ------------------------------------------------------------------------- */

/* Where the node's memory is (make soak reads it): resident, our own allocations (every
 * pc_malloc, libuv's included), glibc's view of its heap (in use, free but kept), and
 * RocksDB's memtables, block cache and table readers (allocated through malloc too). */
static json_t *memory_json(const struct cluster_stats *ks)
{
    size_t rss = 0;
    uv_resident_set_memory(&rss);
    struct mallinfo2 mi = mallinfo2();
    const struct store_memory *sm = &ks->store_memory;
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rss", (json_int_t)rss,
                     "allocated", (json_int_t)pc_alloc_used(), "malloc_in_use",
                     (json_int_t)(mi.uordblks + mi.hblkhd), "malloc_free", (json_int_t)mi.fordblks,
                     "rocksdb_memtables", (json_int_t)sm->memtables, "rocksdb_block_cache",
                     (json_int_t)sm->block_cache, "rocksdb_table_readers",
                     (json_int_t)sm->table_readers);
}

/* The event loop's pass times (pc_loop_watch.h): passes over each bound, cumulative. */
static json_t *loop_json(void)
{
    struct pc_loop_stats ls;
    pc_loop_watch_stats(&ls);
    json_t *over = json_object();
    for (int k = 0; k < PC_LOOP_WATCH_BUCKETS; k++) {
        char name[24];
        snprintf(name, sizeof name, "%ums", pc_loop_watch_bounds_ms[k]);
        json_object_set_new(over, name,
                            json_integer((json_int_t)pc_loop_passes_over(&ls, pc_loop_watch_bounds_ms[k])));
    }
    return json_pack("{s:I, s:f, s:f, s:o}", "passes", (json_int_t)ls.passes, "busy_s",
                     (double)ls.busy_us / 1e6, "longest_ms", (double)ls.longest_us / 1e3,
                     "passes_over", over);
}

static json_t *stats_json(struct chat_service *svc)
{
    struct chat_stats cs;
    struct cluster_stats ks;
    chat_service_stats(svc, &cs);
    cluster_stats(svc->cl, &ks);
    json_t *by = json_object();
    for (int i = 0; i < CHAT_REFUSED_COUNT; i++)
        json_object_set_new(by, chat_refusal_name((enum chat_refusal)i),
                            json_integer((json_int_t)cs.posts_refused_by[i]));
    json_t *j = json_pack("{s:b, s:{s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
                          "ok", 1,
                     "stats", "sessions", (json_int_t)cs.sessions, "commands",
                     (json_int_t)cs.commands, "posts_accepted", (json_int_t)cs.posts_accepted,
                     "posts_refused", (json_int_t)cs.posts_refused, "posts_refused_by", by,
                     "deliveries",
                     (json_int_t)cs.deliveries, "notices", (json_int_t)cs.notices, "bad_xccos",
                     (json_int_t)cs.bad_xccos, "posts_rate_limited",
                     (json_int_t)cs.posts_rate_limited, "sessions_refused",
                     (json_int_t)cs.sessions_refused, "posts_committed", (json_int_t)ks.posts_committed,
                     "commit_batches", (json_int_t)ks.commit_batches, "pending_posts",
                     (json_int_t)ks.pending_posts, "rooms",
                     (json_int_t)meta_room_count(cluster_meta(svc->cl)));
    json_object_set_new(json_object_get(j, "stats"), "memory", memory_json(&ks));
    json_object_set_new(json_object_get(j, "stats"), "loop", loop_json());
    return j;
}

void chat_admin_handle(struct chat_service *svc, const char *actor, json_t *req,
                       chat_admin_cb cb, void *arg)
{
    const char *op = json_is_object(req) ? str_field(req, "op") : NULL;
    if (op == NULL) {
        cb(arg, error_answer("a request is a JSON object with \"op\", e.g. {\"op\":\"room.list\"}"));
        return;
    }
    if (strncmp(op, "category.", 9) == 0 &&
        (!strcmp(op + 9, "new") || !strcmp(op + 9, "set") || !strcmp(op + 9, "get") ||
         !strcmp(op + 9, "list") || !strcmp(op + 9, "remove")))
        category_op(svc, op, req, actor, cb, arg);
    else if (strncmp(op, "room.", 5) == 0 &&
             (!strcmp(op + 5, "new") || !strcmp(op + 5, "set") || !strcmp(op + 5, "get") ||
              !strcmp(op + 5, "list") || !strcmp(op + 5, "remove") || !strcmp(op + 5, "invite")))
        room_op(svc, op, req, actor, cb, arg);
    else if (strncmp(op, "user.", 5) == 0 &&
             (!strcmp(op + 5, "add") || !strcmp(op + 5, "set") || !strcmp(op + 5, "get") ||
              !strcmp(op + 5, "list") || !strcmp(op + 5, "remove") || !strcmp(op + 5, "passwd")))
        user_op(svc, op, req, actor, cb, arg);
    else if (strcmp(op, "stats") == 0)
        cb(arg, stats_json(svc));
    else if (chat_admin_history(svc, op, req, actor, cb, arg))
        ;
    else if (chat_admin_settings(svc, op, req, actor, cb, arg))
        ;
    else if (chat_admin_transfer(svc, op, req, actor, cb, arg))
        ;
    else if (chat_admin_pool(svc, op, req, cb, arg))
        ;
    else
        cb(arg, error_answer("unknown operation '%s' (see docs/ADMIN.md)", op));
}
