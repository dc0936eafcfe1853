/* The server's half of export and import (docs/EXPORT.md): history.export reads one page of
 * a room's messages by id from the room's owner, message.import stores exported messages
 * with their ids, times and authors. pchatctl drives both, page by page, so that no request
 * holds more than ROOM_IMPORT_MAX messages whatever the room's size. */
#include <stdio.h>
#include <string.h>

#include "chat/chat_admin.h"
#include "chat/chat_admin_int.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

#define PAGE_MAX ROOM_IMPORT_MAX
#define MAX_IMPORT_TEXT (64 * 1024) /* POOL_MSG_MAX_TEXT: what one message may carry */

struct export_call {
    struct chat_service *svc;
    chat_admin_cb cb;
    void *arg;
    uint64_t room_no;
    char guid[64];
    uint64_t after;
    uint32_t count;
    int64_t from_us, to_us;
    bool retried, shrunk;
    char *actor;
};

static const char *state_name(uint8_t flags)
{
    return (flags & ROOM_MSG_REMOVED) ? "removed" : (flags & ROOM_MSG_REPLACED) ? "replaced" : NULL;
}

static void export_submit(struct export_call *c);

static void export_done(void *arg, const struct room_res *res)
{
    struct export_call *c = arg;
    if (res->status != 0) {
        c->cb(c->arg, with_reason(error_answer("history.export: %s; retry in a moment",
                                               pc_strerror(res->status)),
                                  res->status == PC_ENOTFOUND ? "not_found" : "unavailable"));
        goto done;
    }
    /* Nothing after `after` but the room goes on: its start was purged; go to the floor. */
    if (res->n_msgs == 0 && !c->retried && res->floor > c->after && res->seq > res->floor) {
        c->retried = true;
        c->after = res->floor;
        export_submit(c);
        return;
    }
    /* The owner returned fewer than the page (its max_history, or long texts): they are the
     * newest of the range, so ask again for as many from where we are. */
    uint64_t expected = (c->after > res->floor ? c->after : res->floor) + 1;
    if (res->n_msgs > 0 && res->msgs[0].seq > expected && !c->shrunk) {
        c->shrunk = true;
        c->count = (uint32_t)res->n_msgs;
        c->after = expected - 1;
        export_submit(c);
        return;
    }
    if (res->n_msgs > 0 && res->msgs[0].seq > expected) {
        c->cb(c->arg, error_answer("history.export: the room's owner skipped messages %llu to "
                                   "%llu; retry", (unsigned long long)expected,
                                   (unsigned long long)res->msgs[0].seq - 1));
        goto done;
    }
    json_t *list = json_array();
    uint64_t next = c->after;
    bool past = false;
    for (size_t i = 0; i < res->n_msgs; i++) {
        const struct room_msg *m = &res->msgs[i];
        if (m->seq <= c->after)
            continue;
        if (c->to_us != 0 && m->ts_us > c->to_us) {
            past = true; /* times grow with ids: nothing later is wanted */
            break;
        }
        next = m->seq;
        if (c->from_us != 0 && m->ts_us < c->from_us)
            continue;
        char when[PC_ISO_LEN];
        pc_time_iso(m->ts_us, when);
        /* Posts are UTF-8 (the SIP side checks), but an export must never leave a hole:
         * anything else goes out with '?' for the bad bytes. */
        char *author = pc_strdup(m->author), *text = pc_strdup(m->text);
        pc_utf8_sanitize(author);
        pc_utf8_sanitize(text);
        json_t *j = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)m->seq, "time", when,
                              "author", author, "text", text);
        pc_free(author);
        pc_free(text);
        if (state_name(m->flags) != NULL)
            json_object_set_new(j, "state", json_string(state_name(m->flags)));
        json_array_append_new(list, j);
    }
    bool done = past || next >= res->seq;
    c->cb(c->arg, json_pack("{s:b, s:s, s:o, s:I, s:I, s:b}", "ok", 1, "room", c->guid,
                            "messages", list, "next", (json_int_t)next, "last",
                            (json_int_t)res->seq, "done", done));
done:
    pc_free(c->actor);
    pc_free(c);
}

static void export_submit(struct export_call *c)
{
    /* The newest `count` ids up to after + count are exactly (after, after + count]: ids
     * follow each other from the floor on (removed ones are kept as tombstones). */
    struct room_req req = {.kind = ROOM_REQ_HISTORY, .room_no = c->room_no, .user = c->actor,
                           .count = c->count, .upto = c->after + c->count};
    int rc = cluster_room_submit(c->svc->cl, &req, export_done, c);
    if (rc != 0)
        export_done(c, &(struct room_res){.status = rc});
}

static void history_export(struct chat_service *svc, const struct meta_room *rm, json_t *req,
                           const char *actor, chat_admin_cb cb, void *arg)
{
    struct export_call *c = pc_calloc(1, sizeof *c);
    c->svc = svc;
    c->cb = cb;
    c->arg = arg;
    c->room_no = rm->no;
    pc_strlcpy(c->guid, rm->guid, sizeof c->guid);
    c->count = PAGE_MAX;
    c->actor = pc_strdup(actor);
    char err[300];
    json_t *after = json_object_get(req, "after");
    unsigned long long n = 0;
    bool ok = after == NULL ||
              (json_is_integer(after) && json_integer_value(after) >= 0 &&
               (n = (unsigned long long)json_integer_value(after), true)) ||
              (json_is_string(after) && pc_parse_u64(json_string_value(after), 0, INT64_MAX, &n));
    c->after = n;
    if (!ok || !chat_date_field(req, "from", false, &c->from_us, err, sizeof err) ||
        !chat_date_field(req, "to", true, &c->to_us, err, sizeof err)) {
        cb(arg, error_answer("history.export: %s", ok ? err : "field 'after' is a message id"));
        pc_free(c->actor);
        pc_free(c);
        return;
    }
    export_submit(c);
}

/* ---- import -------------------------------------------------------------------------------- */

struct import_call {
    chat_admin_cb cb;
    void *arg;
    char guid[64];
    size_t n;
    struct pc_arena arena;
};

static void import_done(void *arg, const struct room_res *res)
{
    struct import_call *c = arg;
    if (res->status == PC_EEXIST || res->status == PC_EINVAL)
        c->cb(c->arg, error_answer("message.import: room %s: %s", c->guid,
                                   res->status == PC_EEXIST
                                       ? "some ids already hold other messages (the room was "
                                         "posted to after an earlier import): nothing of this "
                                         "batch was imported"
                                       : "the ids do not follow the room's last one: nothing of "
                                         "this batch was imported"));
    else if (res->status != 0)
        c->cb(c->arg, with_reason(error_answer("message.import: %s; nothing after the last "
                                               "stored id was lost, run the import again",
                                               pc_strerror(res->status)), "unavailable"));
    else
        c->cb(c->arg, json_pack("{s:b, s:s, s:I, s:I}", "ok", 1, "room", c->guid, "messages",
                                (json_int_t)c->n, "last", (json_int_t)res->seq));
    pc_arena_free(&c->arena);
    pc_free(c);
}

/* One exported message into m (strings in arena); false with err on a defect. */
static bool import_message(struct chat_service *svc, json_t *j, uint64_t prev,
                           struct room_msg *m, struct pc_arena *a, char *err, size_t errlen)
{
    json_t *id = json_object_get(j, "id");
    const char *when = json_is_object(j) ? str_field(j, "time") : NULL;
    const char *author = json_is_object(j) ? str_field(j, "author") : NULL;
    const char *text = json_is_object(j) ? str_field(j, "text") : NULL;
    const char *state = json_is_object(j) ? str_field(j, "state") : NULL;
    if (!json_is_integer(id) || json_integer_value(id) <= 0 ||
        (uint64_t)json_integer_value(id) <= prev) {
        snprintf(err, errlen, "each message needs \"id\", a number greater than the previous one");
        return false;
    }
    if (when == NULL || !pc_time_parse_iso(when, &m->ts_us)) {
        snprintf(err, errlen, "message %lld: \"time\" must be an ISO 8601 time",
                 (long long)json_integer_value(id));
        return false;
    }
    if (author == NULL || author[0] == '\0' || text == NULL || strlen(text) > MAX_IMPORT_TEXT ||
        strlen(author) > 256) {
        snprintf(err, errlen, "message %lld needs \"author\" and \"text\" (up to %d bytes)",
                 (long long)json_integer_value(id), MAX_IMPORT_TEXT);
        return false;
    }
    m->flags = 0;
    if (state != NULL && !strcmp(state, "removed"))
        m->flags = ROOM_MSG_REMOVED;
    else if (state != NULL && !strcmp(state, "replaced"))
        m->flags = ROOM_MSG_REPLACED;
    else if (state != NULL) {
        snprintf(err, errlen, "message %lld: \"state\" is removed or replaced",
                 (long long)json_integer_value(id));
        return false;
    }
    char *uri = chat_user_uri(author, svc->cfg.domain);
    bool long_uri = strlen(uri) > 256; /* SHARD_MAX_URI: what a shard op may carry */
    m->author = pc_arena_strdup(a, uri);
    pc_free(uri);
    if (long_uri) {
        snprintf(err, errlen, "message %lld: the author is longer than 256 bytes",
                 (long long)json_integer_value(id));
        return false;
    }
    m->text = pc_arena_strdup(a, m->flags & ROOM_MSG_REMOVED ? "" : text);
    m->seq = (uint64_t)json_integer_value(id);
    return true;
}

static void message_import(struct chat_service *svc, const struct meta_room *rm, json_t *req,
                           const char *actor, chat_admin_cb cb, void *arg)
{
    json_t *list = json_object_get(req, "messages");
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0 || n > PAGE_MAX) {
        cb(arg, error_answer("message.import needs \"messages\": 1 to %d exported messages, "
                             "oldest first", PAGE_MAX));
        return;
    }
    struct import_call *c = pc_calloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    c->n = n;
    pc_strlcpy(c->guid, rm->guid, sizeof c->guid);
    struct room_msg *msgs = pc_arena_alloc(&c->arena, n * sizeof *msgs);
    char err[300];
    for (size_t i = 0; i < n; i++) {
        msgs[i].room_no = rm->no;
        if (!import_message(svc, json_array_get(list, i), i ? msgs[i - 1].seq : 0, &msgs[i],
                            &c->arena, err, sizeof err) ||
            (msgs[i].seq == UINT64_MAX && snprintf(err, sizeof err, "message id out of range"))) {
            cb(arg, error_answer("message.import: %s", err));
            pc_arena_free(&c->arena);
            pc_free(c);
            return;
        }
    }
    struct room_req rq = {.kind = ROOM_REQ_IMPORT, .room_no = rm->no, .user = actor,
                          .msgs = msgs, .n_msgs = n};
    int rc = cluster_room_submit(svc->cl, &rq, import_done, c);
    if (rc != 0)
        import_done(c, &(struct room_res){.status = rc});
}

bool chat_admin_transfer(struct chat_service *svc, const char *op, json_t *req,
                         const char *actor, chat_admin_cb cb, void *arg)
{
    bool export = strcmp(op, "history.export") == 0, import = strcmp(op, "message.import") == 0;
    if (!export && !import)
        return false;
    const struct meta_room *rm = chat_admin_room_arg(svc, op, req, cb, arg);
    if (rm == NULL)
        return true;
    if (export)
        history_export(svc, rm, req, actor, cb, arg);
    else
        message_import(svc, rm, req, actor, cb, arg);
    return true;
}
