/* Entering and leaving rooms, history, and fan-out of room events to this node's sessions. */
#include <stdio.h>
#include <string.h>

#include "chat/chat_acl.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

/* ---- per-node subscription lists -------------------------------------------------------- */

static struct chat_room_subs *subs_get(struct chat_service *svc, uint64_t room_no, bool create)
{
    struct chat_room_subs *r = NULL;
    HASH_FIND(hh, svc->subs, &room_no, sizeof room_no, r);
    if (r == NULL && create) {
        r = pc_calloc(1, sizeof *r);
        r->room_no = room_no;
        HASH_ADD(hh, svc->subs, room_no, sizeof r->room_no, r);
    }
    return r;
}

static void subs_add(struct chat_service *svc, uint64_t room_no, struct chat_session *s)
{
    struct chat_room_subs *r = subs_get(svc, room_no, true);
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->sessions = pc_realloc(r->sessions, r->cap * sizeof *r->sessions);
    }
    r->sessions[r->n++] = s;
}

static void subs_remove(struct chat_service *svc, uint64_t room_no, struct chat_session *s)
{
    struct chat_room_subs *r = subs_get(svc, room_no, false);
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        if (r->sessions[i] == s) {
            r->sessions[i] = r->sessions[--r->n];
            break;
        }
    if (r->n == 0) {
        HASH_DEL(svc->subs, r);
        pc_free(r->sessions);
        pc_free(r);
    }
}

struct chat_joined *chat_joined_find(struct chat_session *s, uint64_t room_no)
{
    struct chat_joined *j = NULL;
    HASH_FIND(hh, s->joined, &room_no, sizeof room_no, j);
    return j;
}

static void ignore_result(void *arg, const struct room_res *res)
{
    (void)arg;
    (void)res;
}

/* ---- join / bjoin ------------------------------------------------------------------------ */

/* uib ids are shared by every room of one reply, so each user is listed once. */
struct uib_entry {
    UT_hash_handle hh;
    const char *uri;
    const char *id;
};

struct join_op {
    struct chat_cmd *cmd;
    struct xccos_msg reply;
    struct uib_entry *uibs;
    size_t outstanding;
    bool batch;              /* bjoin: failures become fib entries, not an error reply */
    int first_error;         /* join: the failure to report */
    const char *first_error_text;
};

struct join_room_ctx {
    struct join_op *op;
    uint64_t room_no;
    size_t slot;             /* index into reply.rooms */
};

static const char *uib_id(struct join_op *op, const char *uri)
{
    struct uib_entry *e = NULL;
    HASH_FIND_STR(op->uibs, uri, e);
    if (e != NULL)
        return e->id;
    e = pc_arena_alloc(&op->reply.arena, sizeof *e);
    e->uri = pc_arena_strdup(&op->reply.arena, uri);
    e->id = pc_arena_printf(&op->reply.arena, "%zu", (size_t)HASH_COUNT(op->uibs) + 1);
    HASH_ADD_KEYPTR(hh, op->uibs, e->uri, strlen(e->uri), e);
    return e->id;
}

/* The Lync 2013 flow: after rpl:bjoin the server sends each joined room's recent history
 * as rpl:bccontext without being asked (answering the bjoin's envid). */
static void push_history(struct chat_cmd *bjoin, const struct xccos_msg *r)
{
    for (size_t i = 0; i < r->n_rooms; i++) {
        struct xccos_msg m;
        xccos_msg_init(&m, XCCOS_KIND_CMD, XCCOS_OP_BCCONTEXT);
        m.envid = bjoin->envid;
        m.seqid = bjoin->seqid;
        m.chan_uri = r->rooms[i].uri;
        struct chat_cmd *cmd = chat_cmd_new(bjoin->s, &m);
        chat_cmd_bccontext(cmd, &m); /* frees cmd when answered */
        m.envid = m.seqid = NULL;
        m.chan_uri = NULL;
        xccos_msg_free(&m);
    }
}

static void join_finish(struct join_op *op)
{
    struct xccos_msg *r = &op->reply;
    if (!op->batch && op->first_error != 0) {
        chat_reply_status(op->cmd, op->first_error, op->first_error_text);
    } else {
        /* Compact the room list: failed slots were left empty. */
        size_t n = 0;
        for (size_t i = 0; i < r->n_rooms; i++)
            if (r->rooms[i].uri != NULL)
                r->rooms[n++] = r->rooms[i];
        r->n_rooms = n;
        r->users = pc_arena_alloc(&r->arena, (HASH_COUNT(op->uibs) + 1) * sizeof *r->users);
        struct uib_entry *e, *tmp;
        HASH_ITER(hh, op->uibs, e, tmp) {
            r->users[r->n_users].id = e->id;
            r->users[r->n_users].uri = e->uri;
            r->n_users++;
        }
        chat_send(op->cmd->s, r);
        if (op->batch && op->cmd->s->pushes_history)
            push_history(op->cmd, r);
    }
    struct uib_entry *e, *tmp;
    HASH_ITER(hh, op->uibs, e, tmp)
        HASH_DEL(op->uibs, e);
    xccos_msg_free(r);
    chat_cmd_free(op->cmd);
    pc_free(op);
}

static void join_fail(struct join_op *op, const struct meta_room *rm, const char *domain,
                      const char *value, int status, const char *why)
{
    if (op->first_error == 0) {
        op->first_error = status;
        op->first_error_text = why;
    }
    if (!op->batch)
        return;
    struct xccos_msg *r = &op->reply;
    struct xccos_failed *f = &r->failed[r->n_failed++];
    f->reason = "OPERATION_FAILED";
    f->domain = pc_arena_strdup(&r->arena, domain ? domain : "");
    /* A room the user may not know about is reported by the id it sent, nothing more. */
    f->value = pc_arena_strdup(&r->arena, rm != NULL && status != PC_ENOTFOUND ? rm->guid : (value ? value : ""));
}

static void append_ids(struct pc_arena *a, const char **list, const char *id)
{
    *list = *list == NULL ? id : pc_arena_printf(a, "%s,%s", *list, id);
}

static void join_room_done(void *arg, const struct room_res *res)
{
    struct join_room_ctx *ctx = arg;
    struct join_op *op = ctx->op;
    struct chat_session *s = op->cmd->s;
    struct chat_service *svc = s->svc;
    struct chat_joined *j = chat_joined_find(s, ctx->room_no);
    const struct meta *meta = cluster_meta(svc->cl);
    const struct meta_room *rm = meta_room_by_no(meta, ctx->room_no);
    if (res->status != 0 || rm == NULL) {
        if (j != NULL) {
            HASH_DEL(s->joined, j);
            pc_free(j);
        }
        join_fail(op, rm, svc->cfg.domain, rm ? rm->guid : "", res->status ? res->status : PC_ENOTFOUND,
                  "the room is not available right now");
    } else if (s->dlg == NULL || j == NULL) {
        /* The session ended while the owner was answering: undo the join. */
        struct room_req part = {.kind = ROOM_REQ_PART, .room_no = ctx->room_no, .user = s->user,
                                .session = s->id};
        cluster_room_submit(svc->cl, &part, ignore_result, NULL);
    } else {
        j->join_seq = res->seq;
        j->complete = true;
        subs_add(svc, ctx->room_no, s);
        struct xccos_room *x = &op->reply.rooms[ctx->slot];
        struct pc_arena *a = &op->reply.arena;
        x->uri = chat_room_uri(svc, rm, a);
        x->name = pc_arena_strdup(a, rm->name);
        x->topic = pc_arena_strdup(a, rm->description);
        /* Above the participant limit nobody gets a roster (Lync behaves the same way);
         * the joiner is always listed, since SIPE does not add itself. */
        bool full = res->n_present <= chat_participant_update_limit(svc);
        bool self_listed = false;
        for (size_t i = 0; i < res->n_present && full; i++) {
            const char *id = uib_id(op, res->present[i].user);
            if (chat_acl_is_manager(rm, res->present[i].user))
                append_ids(a, &x->manager_ids, id);
            else
                append_ids(a, &x->member_ids, id);
            if (strcmp(res->present[i].user, s->user) == 0)
                self_listed = true;
        }
        if (!self_listed) {
            const char *id = uib_id(op, s->user);
            if (chat_acl_is_manager(rm, s->user))
                append_ids(a, &x->manager_ids, id);
            else
                append_ids(a, &x->member_ids, id);
        }
        pc_info("chat: %s joined '%s' (session %llu, %zu present)", s->user, rm->name,
                (unsigned long long)s->id, res->n_present);
    }
    pc_free(ctx);
    if (--op->outstanding == 0)
        join_finish(op);
}

void chat_cmd_join(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    struct chat_session *s = cmd->s;
    struct chat_service *svc = s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    if (m->n_chanids > svc->cfg.max_rooms_per_request) {
        /* Refused whole, never cut short: a client must not believe it joined rooms it was
         * silently dropped from. Every room costs a request to its owner. */
        char why[200];
        snprintf(why, sizeof why, "this %s names %zu rooms; one request may name at most %u: "
                 "join the others in another request", xccos_op_name(m->op), m->n_chanids,
                 svc->cfg.max_rooms_per_request);
        pc_info("chat: %s: %s refused: %s ([chat] max_rooms_per_request)", s->user,
                xccos_op_name(m->op), why);
        svc->stats.requests_too_long++;
        chat_reply_error(cmd, XCCOS_RESP_TOO_LARGE, XCCOS_ERR_TOO_MANY_ROOMS, why);
        chat_cmd_free(cmd);
        return;
    }
    struct join_op *op = pc_calloc(1, sizeof *op);
    op->cmd = cmd;
    op->batch = m->op == XCCOS_OP_BJOIN;
    chat_reply_init(cmd, &op->reply);
    struct xccos_msg *r = &op->reply;
    size_t n = m->n_chanids;
    r->rooms = pc_arena_alloc(&r->arena, (n + 1) * sizeof *r->rooms);
    r->failed = pc_arena_alloc(&r->arena, (n + 1) * sizeof *r->failed);
    r->n_rooms = n;
    op->outstanding = 1; /* held until every room is submitted */
    if (n == 0 && !op->batch)
        join_fail(op, NULL, NULL, NULL, PC_EINVAL, "no room given");
    for (size_t i = 0; i < n; i++) {
        const struct xccos_chanid *c = &m->chanids[i];
        const struct meta_room *rm = chat_room_by_chanid(svc, c->domain, c->value);
        const char *why = NULL;
        int rc = chat_acl_check(meta, rm, s->user, CHAT_JOIN, &why);
        if (rc != 0) {
            join_fail(op, rm, c->domain, c->value, rc,
                      rc == PC_ENOTFOUND ? "no such room" : why);
            continue;
        }
        if (chat_joined_find(s, rm->no) != NULL) {
            /* Joined already (or joining): answer with the room, without a second
             * registration at the owner that would count this session twice. */
            struct xccos_room *x = &r->rooms[i];
            x->uri = chat_room_uri(svc, rm, &r->arena);
            x->name = pc_arena_strdup(&r->arena, rm->name);
            x->topic = pc_arena_strdup(&r->arena, rm->description);
            append_ids(&r->arena, chat_acl_is_manager(rm, s->user) ? &x->manager_ids : &x->member_ids,
                       uib_id(op, s->user));
            continue;
        }
        struct chat_joined *j = pc_calloc(1, sizeof *j);
        j->room_no = rm->no;
        HASH_ADD(hh, s->joined, room_no, sizeof j->room_no, j);
        struct join_room_ctx *ctx = pc_calloc(1, sizeof *ctx);
        ctx->op = op;
        ctx->room_no = rm->no;
        ctx->slot = i;
        op->outstanding++;
        struct room_req req = {.kind = ROOM_REQ_JOIN, .room_no = rm->no, .user = s->user,
                               .session = s->id};
        rc = cluster_room_submit(svc->cl, &req, join_room_done, ctx);
        if (rc != 0) {
            struct room_res res = {.status = rc};
            join_room_done(ctx, &res);
        }
    }
    if (--op->outstanding == 0)
        join_finish(op);
}

/* ---- part ----------------------------------------------------------------------------- */

static void leave_room(struct chat_session *s, struct chat_joined *j)
{
    struct chat_service *svc = s->svc;
    HASH_DEL(s->joined, j);
    if (j->complete) {
        subs_remove(svc, j->room_no, s);
        struct room_req req = {.kind = ROOM_REQ_PART, .room_no = j->room_no, .user = s->user,
                               .session = s->id};
        cluster_room_submit(svc->cl, &req, ignore_result, NULL);
    }
    pc_free(j);
}

void chat_cmd_part(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    struct chat_session *s = cmd->s;
    struct chat_service *svc = s->svc;
    const char *uri = m->chan_uri;
    if (uri == NULL && m->n_rooms > 0)
        uri = m->rooms[0].uri;
    const struct meta_room *rm = chat_room_by_uri(svc, uri);
    struct chat_joined *j = rm != NULL ? chat_joined_find(s, rm->no) : NULL;
    if (j != NULL)
        leave_room(s, j);
    /* Leaving a room one is not in is not an error: the client's view is what counts. */
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    r.rooms = pc_arena_alloc(&r.arena, sizeof *r.rooms);
    r.rooms[0].uri = rm != NULL ? chat_room_uri(svc, rm, &r.arena) : pc_arena_strdup(&r.arena, uri ? uri : "");
    r.n_rooms = 1;
    chat_send(s, &r);
    xccos_msg_free(&r);
    chat_cmd_free(cmd);
}

void chat_session_leave_all(struct chat_session *s)
{
    struct chat_joined *j, *tmp;
    HASH_ITER(hh, s->joined, j, tmp)
        leave_room(s, j);
}

/* ---- history ------------------------------------------------------------------------- */

struct history_ctx {
    struct chat_cmd *cmd;
    uint64_t room_no;
};

static void history_done(void *arg, const struct room_res *res)
{
    struct history_ctx *ctx = arg;
    struct chat_cmd *cmd = ctx->cmd;
    struct chat_session *s = cmd->s;
    const struct meta_room *rm = meta_room_by_no(cluster_meta(s->svc->cl), ctx->room_no);
    if (res->status != 0 || rm == NULL) {
        chat_reply_status(cmd, res->status ? res->status : PC_ENOTFOUND,
                          "history is not available right now");
    } else {
        struct xccos_msg r;
        chat_reply_init(cmd, &r);
        r.rooms = pc_arena_alloc(&r.arena, sizeof *r.rooms);
        r.n_rooms = 1;
        struct xccos_room *x = &r.rooms[0];
        x->uri = chat_room_uri(s->svc, rm, &r.arena);
        x->msgs = pc_arena_alloc(&r.arena, (res->n_msgs + 1) * sizeof *x->msgs);
        x->n_msgs = 0;
        for (size_t i = 0; i < res->n_msgs; i++) {
            if (res->msgs[i].flags & ROOM_MSG_REMOVED)
                continue; /* removed by an administrator: its place is kept, not shown */
            struct xccos_chat *c = &x->msgs[x->n_msgs++];
            c->chan_uri = x->uri;
            c->author = pc_arena_strdup(&r.arena, res->msgs[i].author);
            c->text = pc_arena_strdup(&r.arena, res->msgs[i].text);
            c->ts_us = res->msgs[i].ts_us;
            c->msg_id = res->msgs[i].seq;
        }
        chat_send(s, &r);
        xccos_msg_free(&r);
    }
    chat_cmd_free(cmd);
    pc_free(ctx);
}

void chat_cmd_bccontext(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    struct chat_session *s = cmd->s;
    struct chat_service *svc = s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    const char *uri = m->chan_uri;
    if (uri == NULL && m->n_rooms > 0)
        uri = m->rooms[0].uri;
    const struct meta_room *rm = chat_room_by_uri(svc, uri);
    const char *why = NULL;
    int rc = chat_acl_check(meta, rm, s->user, CHAT_JOIN, &why);
    if (rc != 0) {
        chat_reply_status(cmd, rc, rc == PC_ENOTFOUND ? "no such room" : why);
        chat_cmd_free(cmd);
        return;
    }
    const struct meta_category *cat = meta_category_by_no(meta, rm->category_no);
    struct chat_joined *j = chat_joined_find(s, rm->no);
    unsigned count = m->history_count != 0 ? m->history_count : chat_default_history(svc);
    if (count > svc->cfg.max_history)
        count = svc->cfg.max_history;
    if (cat != NULL && !cat->chat_history)
        count = 0; /* the category keeps no backchat for joiners (announcement rooms) */
    struct history_ctx *ctx = pc_calloc(1, sizeof *ctx);
    ctx->cmd = cmd;
    ctx->room_no = rm->no;
    /* The first history a joined session reads ends exactly where its live delivery begins,
     * so it sees every message once: no gap, no duplicate (DESIGN.md §3.2). Later requests
     * (paging, a refresh) read whatever is stored. */
    bool first = j != NULL && j->complete && !j->backfilled;
    if (first)
        j->backfilled = true;
    struct room_req req = {.kind = ROOM_REQ_HISTORY, .room_no = rm->no, .user = s->user,
                           .count = count, .before = m->history_before,
                           .upto = first ? j->join_seq : 0, .record_read = true};
    rc = cluster_room_submit(svc->cl, &req, history_done, ctx);
    if (rc != 0) {
        struct room_res res = {.status = rc};
        history_done(ctx, &res);
    }
}

/* ---- fan-out of room events ------------------------------------------------------------ */

static void deliver_message(struct chat_service *svc, struct chat_room_subs *subs,
                            const struct room_event *ev)
{
    const struct meta_room *rm = meta_room_by_no(cluster_meta(svc->cl), ev->room_no);
    if (rm == NULL || (ev->msg->flags & ROOM_MSG_REMOVED))
        return; /* a replay of a message an administrator removed since */
    /* One serialisation for every recipient on this node. */
    struct xccos_msg g;
    xccos_msg_init(&g, XCCOS_KIND_GRPCHAT, XCCOS_OP_GRPCHAT);
    g.seqid = "1";
    char envid[24];
    snprintf(envid, sizeof envid, "%llu", (unsigned long long)++svc->next_envid);
    g.envid = envid;
    g.chat.chan_uri = chat_room_uri(svc, rm, &g.arena);
    g.chat.author = ev->msg->author;
    g.chat.text = ev->msg->text;
    g.chat.ts_us = ev->msg->ts_us;
    g.chat.msg_id = ev->msg->seq;
    struct pc_buf b = {0};
    xccos_encode(&g, &b);
    struct pc_rbuf *body = pc_rbuf_from_buf(&b);
    pc_buf_free(&b);
    xccos_msg_free(&g);
    for (size_t i = 0; i < subs->n; i++) {
        struct chat_session *s = subs->sessions[i];
        struct chat_joined *j = chat_joined_find(s, ev->room_no);
        /* Messages up to join_seq reach the session through history instead. */
        if (s->dlg == NULL || j == NULL || ev->msg->seq <= j->join_seq)
            continue;
        if (sip_dialog_send_info(s->dlg, body) == 0)
            svc->stats.deliveries++;
    }
    pc_rbuf_unref(body);
}

static void deliver_presence(struct chat_service *svc, struct chat_room_subs *subs,
                             const struct room_event *ev)
{
    if (subs->n > chat_participant_update_limit(svc))
        return;
    const struct meta_room *rm = meta_room_by_no(cluster_meta(svc->cl), ev->room_no);
    if (rm == NULL)
        return;
    struct xccos_msg n;
    bool entered = ev->kind == ROOM_EV_ENTERED;
    xccos_msg_init(&n, XCCOS_KIND_NTC, entered ? XCCOS_OP_JOIN : XCCOS_OP_PART);
    n.seqid = "1";
    char envid[24];
    snprintf(envid, sizeof envid, "%llu", (unsigned long long)++svc->next_envid);
    n.envid = envid;
    n.presence.user_uri = ev->user;
    n.presence.chan_uri = chat_room_uri(svc, rm, &n.arena);
    n.presence.manager = chat_acl_is_manager(rm, ev->user);
    struct pc_buf b = {0};
    xccos_encode(&n, &b);
    struct pc_rbuf *body = pc_rbuf_from_buf(&b);
    pc_buf_free(&b);
    xccos_msg_free(&n);
    for (size_t i = 0; i < subs->n; i++) {
        struct chat_session *s = subs->sessions[i];
        /* Only the others learn that someone came or went: SIPE adds a nick per notice. */
        if (s->dlg == NULL || strcmp(s->user, ev->user) == 0)
            continue;
        if (sip_dialog_send_info(s->dlg, body) == 0)
            svc->stats.notices++;
    }
    pc_rbuf_unref(body);
}

void chat_room_event(void *ctx, const struct room_event *ev)
{
    struct chat_service *svc = ctx;
    struct chat_room_subs *subs = subs_get(svc, ev->room_no, false);
    if (subs == NULL)
        return;
    if (ev->kind == ROOM_EV_MESSAGE)
        deliver_message(svc, subs, ev);
    else
        deliver_presence(svc, subs, ev);
}
