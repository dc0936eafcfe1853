/* Administrators' changes to room history: message.remove (Remove-CsPersistentChatMessage)
 * and room.clear (Clear-CsPersistentChatRoom). The room's owner chooses the messages and
 * commits the changes through the room's shard (cluster.h, ROOM_REQ_EDIT/PURGE); here the
 * request is validated and repeated while the owner reports a full batch. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/chat_admin.h"
#include "chat/chat_admin_int.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

#define DEFAULT_NOTICE "This message was replaced by the Persistent Chat administrator."
#define MAX_KEYWORDS 1000
#define MAX_NOTICE 4000

struct history_call {
    struct chat_service *svc;
    chat_admin_cb cb;
    void *arg;
    char op[32];
    char room[200];
    struct room_req req;
    struct room_edit edit;
    char *actor, *author, *keywords, *text;
    uint64_t changed;
    unsigned rounds;
};

static void call_free(struct history_call *c)
{
    pc_free(c->actor);
    pc_free(c->author);
    pc_free(c->keywords);
    pc_free(c->text);
    pc_free(c);
}

static void finish(struct history_call *c, json_t *answer)
{
    c->cb(c->arg, answer);
    call_free(c);
}

static void submit_round(struct history_call *c);

static void round_done(void *arg, const struct room_res *res)
{
    struct history_call *c = arg;
    if (res->status != 0) {
        json_t *e = error_answer("%s '%s': %s%s", c->op, c->room, pc_strerror(res->status),
                                 c->changed ? " (some messages were changed already; run it "
                                              "again to finish)" : "; retry in a moment");
        finish(c, with_reason(e, res->status == PC_ENOTFOUND ? "not_found" : "unavailable"));
        return;
    }
    if (c->req.kind == ROOM_REQ_PURGE) {
        finish(c, json_pack("{s:b, s:s, s:I}", "ok", 1, "room", c->room, "purged_up_to",
                            (json_int_t)res->seq));
        return;
    }
    c->changed += res->seq;
    /* A full batch, or a scan that stopped short (a big room is read in slices, so that
     * the owner keeps serving posts): there may be more. The ones changed no longer
     * match, so a full batch just starts over. */
    if ((res->seq >= ROOM_EDIT_MAX || res->floor != 0) && ++c->rounds < 100000) {
        c->edit.after = res->seq >= ROOM_EDIT_MAX ? c->edit.after : res->floor;
        submit_round(c);
        return;
    }
    finish(c, json_pack("{s:b, s:s, s:I, s:s}", "ok", 1, "room", c->room, "changed",
                        (json_int_t)c->changed, "action", c->edit.remove ? "removed" : "replaced"));
}

static void submit_round(struct history_call *c)
{
    int rc = cluster_room_submit(c->svc->cl, &c->req, round_done, c);
    if (rc != 0)
        round_done(c, &(struct room_res){.status = rc});
}

bool chat_date_field(json_t *req, const char *name, bool end_of_day, int64_t *out, char *err,
                       size_t errlen)
{
    json_t *v = json_object_get(req, name);
    const char *s = json_is_string(v) ? json_string_value(v) : "?";
    *out = 0;
    if (v == NULL || s[0] == '\0')
        return true;
    if (strcmp(s, "now") == 0) {
        *out = pc_wall_us();
        return true;
    }
    char buf[64];
    if (strlen(s) == 10 && snprintf(buf, sizeof buf, "%sT%s", s, end_of_day ? "23:59:59.999999Z" : "00:00:00Z") > 0 &&
        pc_time_parse_iso(buf, out))
        return true;
    if (pc_time_parse_iso(s, out))
        return true;
    snprintf(err, errlen, "field '%s' must be a date such as 2026-11-24 or 2026-11-24T10:00:00Z "
             "(UTC), or \"now\"", name);
    return false;
}

/* A boolean field: true/false, or the strings yes/no/true/false (pchatctl sends strings). */
static bool yes_no(json_t *req, const char *name, bool *out)
{
    json_t *v = json_object_get(req, name);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (v == NULL)
        return true;
    if (json_is_boolean(v))
        *out = json_is_true(v);
    else if (s != NULL && (!strcasecmp(s, "yes") || !strcasecmp(s, "true")))
        *out = true;
    else if (s != NULL && (!strcasecmp(s, "no") || !strcasecmp(s, "false")))
        *out = false;
    else
        return false;
    return true;
}

static bool read_edit(struct chat_service *svc, json_t *req, struct history_call *c, char *err,
                      size_t errlen)
{
    const char *author = str_field(req, "user");
    const char *keywords = str_field(req, "keywords");
    const char *match = str_field(req, "match");
    const char *notice = str_field(req, "notice");
    if (author != NULL && strlen(author) > 200) {
        snprintf(err, errlen, "field 'user' is a user's URI (up to 200 bytes)");
        return false;
    }
    if (keywords != NULL && strlen(keywords) > MAX_KEYWORDS) {
        snprintf(err, errlen, "keywords are limited to %d bytes", MAX_KEYWORDS);
        return false;
    }
    if (notice != NULL && (strlen(notice) > MAX_NOTICE || notice[0] == '\0')) {
        snprintf(err, errlen, "the notice must be 1 to %d bytes", MAX_NOTICE);
        return false;
    }
    if (match == NULL || !strcasecmp(match, "any") || !strcasecmp(match, "or"))
        c->edit.match = ROOM_MATCH_ANY;
    else if (!strcasecmp(match, "all"))
        c->edit.match = ROOM_MATCH_ALL;
    else if (!strcasecmp(match, "exact"))
        c->edit.match = ROOM_MATCH_EXACT;
    else {
        snprintf(err, errlen, "field 'match' is any, all or exact");
        return false;
    }
    json_t *seq = json_object_get(req, "id");
    if (!yes_no(req, "case_sensitive", &c->edit.case_sensitive) ||
        !yes_no(req, "remove", &c->edit.remove)) {
        snprintf(err, errlen, "fields 'case_sensitive' and 'remove' are true or false (yes/no)");
        return false;
    }
    /* A number, or digits (pchatctl sends every value as a string). */
    unsigned long long id = json_is_integer(seq) && json_integer_value(seq) > 0
                                ? (unsigned long long)json_integer_value(seq) : 0;
    if (json_is_string(seq) && !pc_parse_u64(json_string_value(seq), 1, INT64_MAX, &id))
        id = 0;
    if (seq != NULL && id == 0) {
        snprintf(err, errlen, "field 'id' is a message id (a positive number)");
        return false;
    }
    c->edit.seq = (uint64_t)id;
    if (!chat_date_field(req, "from", false, &c->edit.from_us, err, errlen) ||
        !chat_date_field(req, "to", true, &c->edit.to_us, err, errlen))
        return false;
    if (author == NULL && keywords == NULL && c->edit.seq == 0 && c->edit.from_us == 0 &&
        c->edit.to_us == 0) {
        snprintf(err, errlen, "say which messages: user, keywords, id, from and/or to (to change "
                 "a room's whole history use room.clear)");
        return false;
    }
    c->author = author != NULL ? chat_user_uri(author, svc->cfg.domain) : pc_strdup("");
    c->keywords = pc_strdup(keywords != NULL ? keywords : "");
    const char *pool_notice = cluster_meta(svc->cl)->settings.removal_notice;
    c->text = pc_strdup(notice != NULL ? notice : pool_notice[0] ? pool_notice : DEFAULT_NOTICE);
    c->edit.author = c->author;
    c->edit.keywords = c->keywords;
    return true;
}

bool chat_admin_history(struct chat_service *svc, const char *op, json_t *req, const char *actor,
                        chat_admin_cb cb, void *arg)
{
    bool edit = strcmp(op, "message.remove") == 0, purge = strcmp(op, "room.clear") == 0;
    if (!edit && !purge)
        return false;
    const struct meta_room *rm = chat_admin_room_arg(svc, op, req, cb, arg);
    if (rm == NULL)
        return true;
    struct history_call *c = pc_calloc(1, sizeof *c);
    c->svc = svc;
    c->cb = cb;
    c->arg = arg;
    pc_strlcpy(c->op, op, sizeof c->op);
    pc_strlcpy(c->room, rm->name, sizeof c->room);
    c->actor = pc_strdup(actor);
    char err[300];
    if (edit && !read_edit(svc, req, c, err, sizeof err)) {
        finish(c, error_answer("%s: %s", op, err));
        return true;
    }
    if (purge) {
        if (!chat_date_field(req, "end_date", true, &c->edit.to_us, err, sizeof err)) {
            finish(c, error_answer("%s: %s", op, err));
            return true;
        }
        if (c->edit.to_us == 0) {
            finish(c, error_answer("room.clear needs \"end_date\": everything posted up to "
                                   "that date is deleted (e.g. 2026-01-31, or \"now\")"));
            return true;
        }
        char until[PC_ISO_LEN];
        pc_time_iso(c->edit.to_us, until);
        size_t len = strlen(until) + 64;
        c->text = pc_malloc(len);
        snprintf(c->text, len, "history cleared up to %s", until);
        c->edit.author = c->edit.keywords = "";
    }
    c->req = (struct room_req){.kind = edit ? ROOM_REQ_EDIT : ROOM_REQ_PURGE, .room_no = rm->no,
                               .user = c->actor, .text = c->text, .edit = &c->edit};
    submit_round(c);
    return true;
}
