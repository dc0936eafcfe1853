/* config.set (Set-CsPersistentChatConfiguration): the pool-wide chat settings, replicated in
 * the metadata so that every node serves with the same values. A setting left at 0
 * ("default") falls back to each node's configuration file, which is what config.get
 * shows beside it. */
#include <stdio.h>
#include <string.h>

#include "chat/chat_admin.h"
#include "chat/chat_admin_int.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

struct settings_call {
    chat_admin_cb cb;
    void *arg;
};

static void settings_done(void *arg, const struct meta_result *res)
{
    struct settings_call *c = arg;
    if (res->status != 0)
        c->cb(c->arg, error_answer("config.set: %s", res->errmsg[0] ? res->errmsg
                                                                    : pc_strerror(res->status)));
    else
        c->cb(c->arg, json_pack("{s:b}", "ok", 1));
    pc_free(c);
}

/* A number in [0, max] (0 or "default": the nodes' own files decide). Absent keeps *out. */
static bool number(json_t *req, const char *name, unsigned long long max, uint32_t *out,
                   char *err, size_t errlen)
{
    json_t *v = json_object_get(req, name);
    if (v == NULL)
        return true;
    unsigned long long n = 0;
    bool ok = json_is_integer(v) && json_integer_value(v) >= 0 &&
              (unsigned long long)json_integer_value(v) <= max;
    if (ok)
        n = (unsigned long long)json_integer_value(v);
    else if (json_is_string(v))
        ok = !strcmp(json_string_value(v), "default") ||
             pc_parse_u64(json_string_value(v), 0, max, &n);
    if (!ok) {
        snprintf(err, errlen, "field '%s' is a number up to %llu, or 0 / \"default\" (each "
                 "node's configuration file decides)", name, max);
        return false;
    }
    *out = (uint32_t)n;
    return true;
}

json_t *chat_settings_json(const struct meta_settings *s)
{
    return json_pack("{s:I, s:I, s:I, s:s}", "default_chat_history", (json_int_t)s->default_history,
                     "participant_update_limit", (json_int_t)s->participant_update_limit,
                     "max_file_size_kb", (json_int_t)s->max_file_kb, "removal_notice",
                     s->removal_notice);
}

bool chat_admin_settings(struct chat_service *svc, const char *op, json_t *req,
                         const char *actor, chat_admin_cb cb, void *arg)
{
    if (strcmp(op, "config.set") != 0)
        return false;
    struct meta_op mop = {.kind = META_OP_SETTINGS};
    mop.settings = cluster_meta(svc->cl)->settings;
    struct meta_settings *s = &mop.settings;
    char err[300];
    const char *notice = str_field(req, "removal_notice");
    if (!number(req, "default_chat_history", 500, &s->default_history, err, sizeof err) ||
        !number(req, "participant_update_limit", 1000000, &s->participant_update_limit, err,
                sizeof err) ||
        !number(req, "max_file_size_kb", 4u * 1024 * 1024, &s->max_file_kb, err, sizeof err)) {
        cb(arg, error_answer("config.set: %s", err));
        return true;
    }
    if (notice != NULL) {
        if (strlen(notice) >= sizeof s->removal_notice || !pc_utf8_valid(notice, strlen(notice))) {
            cb(arg, error_answer("config.set: removal_notice is up to %zu bytes of UTF-8",
                                 sizeof s->removal_notice - 1));
            return true;
        }
        pc_strlcpy(s->removal_notice, strcmp(notice, "default") ? notice : "",
                   sizeof s->removal_notice);
    }
    mop.ts_us = pc_wall_us();
    pc_strlcpy(mop.actor, actor, sizeof mop.actor);
    pc_strlcpy(mop.node, svc->cfg.node_label, sizeof mop.node);
    struct settings_call *c = pc_calloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    int rc = cluster_meta_submit(svc->cl, &mop, settings_done, c);
    if (rc != 0) {
        pc_free(c);
        cb(arg, with_reason(error_answer("config.set: the pool cannot accept changes right now "
                                         "(%s); retry", pc_strerror(rc)), "unavailable"));
    }
    return true;
}
