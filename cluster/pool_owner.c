/* The owning side of the pool: requests for rooms of the shards this node leads. Posts
 * are collected per shard and proposed once per loop pass as one raft entry; the apply
 * hook answers them and fans each committed message out once per node with sessions in
 * the room. Rosters (who is in a room through which node) are soft state of the leader,
 * rebuilt from JOINs and SUBSCRIBEs after a change of leader (docs/POOL.md). */
#include <stdio.h>
#include <string.h>

#include "cluster/pool_int.h"
#include "cluster/roomfile.h"
#include "cluster/roomlog.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

static uint64_t new_tag(struct cluster *cl)
{
    /* The node id in the high bits: every replica sees every tag, only the proposer's
     * own ones are in its table. */
    return cl->self << 40 | (cl->next_tag++ & ((1ull << 40) - 1));
}

static bool tag_is_mine(const struct cluster *cl, uint64_t tag)
{
    return tag >> 40 == cl->self;
}

void owner_answer(struct cluster *cl, uint64_t origin, uint64_t req_id, const struct room_res *res)
{
    if (origin == cl->self) {
        route_complete(cl, req_id, res);
        return;
    }
    struct pc_buf b = {0};
    pool_room_res_encode(&b, req_id, res);
    pool_send(cl, origin, POOL_MSG_ROOM_RES, &b);
    pc_buf_free(&b);
}

static void answer_status(struct cluster *cl, uint64_t origin, uint64_t req_id, int status)
{
    struct room_res res = {.status = status};
    owner_answer(cl, origin, req_id, &res);
}

static void op_free(struct pool_op *o)
{
    pc_free((char *)o->op.author);
    pc_free((char *)o->op.text);
    pc_free((char *)o->op.room_guid);
    pc_free((char *)o->op.room_name);
    pc_free((void *)o->op.event);
    pc_free((void *)o->op.data);
    pc_free((char *)o->op.file_name);
    pc_free((char *)o->op.file_sha);
    pc_free(o);
}

/* Ops whose proposer waits for an answer (the others are compliance records, and the
 * edits of a request but its last). */
static bool answered_op(const struct pool_op *o)
{
    return o->op.kind == SHARD_OP_POST || o->op.kind == SHARD_OP_FILE_CHUNK ||
           ((o->op.kind == SHARD_OP_EDIT || o->op.kind == SHARD_OP_PURGE ||
             o->op.kind == SHARD_OP_IMPORT) && o->req_id != 0);
}

/* ---- rosters ------------------------------------------------------------------------------ */

static struct pool_owned *owned_get(struct cluster *cl, uint64_t room_no, uint32_t group,
                                    bool create)
{
    struct pool_owned *o = NULL;
    HASH_FIND(hh, cl->owned, &room_no, sizeof room_no, o);
    if (o == NULL && create) {
        o = pc_calloc(1, sizeof *o);
        o->room_no = room_no;
        o->group = group;
        HASH_ADD(hh, cl->owned, room_no, sizeof o->room_no, o);
    }
    return o;
}

static void owned_free(struct cluster *cl, struct pool_owned *o)
{
    struct pool_owned_session *s, *st;
    HASH_ITER(hh, o->sessions, s, st) {
        HASH_DEL(o->sessions, s);
        pc_free(s->user);
        pc_free(s);
    }
    struct pool_owned_user *u, *ut;
    HASH_ITER(hh, o->users, u, ut) {
        HASH_DEL(o->users, u);
        pc_free(u->user);
        pc_free(u);
    }
    HASH_DEL(cl->owned, o);
    pc_free(o);
}

/* Sends an event to every node with sessions in the room. Remote nodes first, this node
 * last: delivering here may end sessions and so change (or free) the roster. */
static void owned_event(struct cluster *cl, struct pool_owned *o, const struct room_event *ev)
{
    bool here = false;
    struct pc_rbuf *body = NULL;
    for (size_t i = 0; i < o->n_nodes; i++) {
        uint64_t node = o->nodes[i].node;
        if (node == cl->self) {
            here = true;
            continue;
        }
        if (cl->peers == NULL)
            continue;
        if (body == NULL) {
            struct pc_buf b = {0};
            pool_room_event_encode(&b, ev);
            body = pc_rbuf_from_buf(&b);
            pc_buf_free(&b);
        }
        int rc = peer_send_shared(cl->peers, node, POOL_MSG_ROOM_EVENT, body);
        if (rc != 0)
            pc_warn("cluster: room %llu: event to node %llu dropped: %s (it will resync)",
                    (unsigned long long)ev->room_no, (unsigned long long)node, pc_strerror(rc));
    }
    if (body != NULL)
        pc_rbuf_unref(body);
    if (here)
        route_event(cl, ev);
}

static void owned_node_count(struct pool_owned *o, uint64_t node, int delta)
{
    for (size_t i = 0; i < o->n_nodes; i++) {
        if (o->nodes[i].node != node)
            continue;
        o->nodes[i].sessions += (unsigned)delta;
        if (o->nodes[i].sessions == 0)
            o->nodes[i] = o->nodes[--o->n_nodes];
        return;
    }
    if (delta > 0 && o->n_nodes < sizeof o->nodes / sizeof o->nodes[0]) {
        o->nodes[o->n_nodes].node = node;
        o->nodes[o->n_nodes++].sessions = 1;
    }
}

/* Adds a session; returns true if its user was absent before (so has just entered). */
static bool owned_add(struct pool_owned *o, uint64_t node, uint64_t session, const char *user)
{
    struct pool_owned_session *s = NULL;
    struct { uint64_t node, session; } key = {node, session};
    HASH_FIND(hh, o->sessions, &key, sizeof key, s);
    if (s != NULL)
        return false;
    s = pc_calloc(1, sizeof *s);
    s->key.node = node;
    s->key.session = session;
    s->user = pc_strdup(user);
    HASH_ADD(hh, o->sessions, key, sizeof s->key, s);
    owned_node_count(o, node, 1);
    struct pool_owned_user *u = NULL;
    HASH_FIND_STR(o->users, user, u);
    if (u == NULL) {
        u = pc_calloc(1, sizeof *u);
        u->user = pc_strdup(user);
        HASH_ADD_KEYPTR(hh, o->users, u->user, strlen(u->user), u);
    }
    return u->sessions++ == 0;
}

/* Removes a session; returns 1 if its user's last session left, 0 if not, -1 if the
 * session was unknown. The caller sends LEFT (with the returned user) before freeing it. */
static int owned_remove(struct pool_owned *o, struct pool_owned_session *s, char **user_out)
{
    HASH_DEL(o->sessions, s);
    owned_node_count(o, s->key.node, -1);
    struct pool_owned_user *u = NULL;
    HASH_FIND_STR(o->users, s->user, u);
    int left = 0;
    if (u != NULL && --u->sessions == 0) {
        HASH_DEL(o->users, u);
        pc_free(u->user);
        pc_free(u);
        left = 1;
    }
    *user_out = s->user;
    pc_free(s);
    return left;
}

/* Removes one session and tells the room if its user is gone. Frees the roster when empty
 * (o is invalid afterwards in that case). */
static void owned_drop_session(struct cluster *cl, struct pool_owned *o,
                               struct pool_owned_session *s, bool announce)
{
    char *user = NULL;
    uint64_t room_no = o->room_no;
    bool left = owned_remove(o, s, &user) == 1;
    bool empty = o->sessions == NULL;
    if (empty)
        owned_free(cl, o);
    if (left && announce && !empty) {
        struct pool_owned *again = owned_get(cl, room_no, 0, false);
        struct room_event ev = {.kind = ROOM_EV_LEFT, .room_no = room_no, .user = user};
        if (again != NULL)
            owned_event(cl, again, &ev);
    }
    pc_free(user);
}

static void drop_group_rosters(struct cluster *cl, uint32_t group)
{
    struct pool_owned *o, *tmp;
    HASH_ITER(hh, cl->owned, o, tmp)
        if (group == 0 || o->group == group)
            owned_free(cl, o);
}

struct pool_op *owner_queue(struct pool_shard *sh, uint64_t origin, uint64_t req_id,
                            struct shard_op op)
{
    struct pool_op *o = pc_calloc(1, sizeof *o);
    o->tag = new_tag(sh->pl);
    o->origin = origin;
    o->req_id = req_id;
    o->op = op;
    o->op.tag = o->tag;
    TAILQ_INSERT_TAIL(&sh->pending, o, link);
    sh->n_pending++;
    return o;
}

/* ---- compliance events of room actions (join, part, read): shard ops like posts -------- */

static void queue_event(struct pool_shard *sh, enum compl_type type, const char *user,
                        uint64_t room_no, const char *content)
{
    struct cluster *cl = sh->pl;
    if ((cl->cfg.compliance_classes & COMPL_CLASS(type)) == 0)
        return;
    const struct meta_room *rm = meta_room_by_no(cluster_meta(cl), room_no);
    struct compl_event ev = {.type = type, .ts_us = pc_wall_us(), .node = cl->node_label,
                             .user = user, .room_no = room_no, .room_guid = rm ? rm->guid : "",
                             .room_name = rm ? rm->name : "", .content = content};
    struct pc_buf b = {0};
    compl_event_encode(&ev, &b);
    owner_queue(sh, 0, 0, (struct shard_op){.kind = SHARD_OP_EVENT, .room_no = room_no,
                                         .event = b.data, .event_len = b.len});
}

/* ---- requests -------------------------------------------------------------------------------- */

/* Posts and file chunks wait for their commit: bounded like every queue (503 beyond). */
static bool has_room(struct pool_shard *sh, uint64_t origin, uint64_t req_id)
{
    /* A full data disk first: raft_uv would take the entry and then wait, retrying its
     * write, with the poster's answer hanging until space returns (pool_disk.c). */
    if (disk_refuse_write(sh->pl)) {
        answer_status(sh->pl, origin, req_id, PC_ENOSPC);
        return false;
    }
    if (sh->n_pending < sh->pl->cfg.max_pending_posts)
        return true;
    answer_status(sh->pl, origin, req_id, PC_EBUSY);
    return false;
}

static void do_post(struct pool_shard *sh, uint64_t origin, uint64_t req_id,
                    const struct room_req *req)
{
    if (!has_room(sh, origin, req_id))
        return;
    if (req->file != NULL && !owner_file_complete(sh->pl, req->file)) {
        /* Its chunks were dropped as abandoned (pool_uploads.c): no link to nothing. */
        answer_status(sh->pl, origin, req_id, PC_ETIMEDOUT);
        return;
    }
    const struct meta_room *rm = meta_room_by_no(cluster_meta(sh->pl), req->room_no);
    struct shard_op op = {.kind = SHARD_OP_POST, .room_no = req->room_no,
                          .author = pc_strdup(req->user), .text = pc_strdup(req->text),
                          .room_guid = pc_strdup(rm ? rm->guid : ""),
                          .room_name = pc_strdup(rm ? rm->name : "")};
    if (req->file != NULL) {
        op.has_file = true;
        op.file_no = req->file->file_no;
        op.file_name = pc_strdup(req->file->name);
        op.file_sha = pc_strdup(req->file->sha256);
        op.file_size = req->file->size;
        op.file_chunks = req->file->chunks;
    }
    owner_queue(sh, origin, req_id, op);
}

/* A chunk of a file being uploaded: committed like a post, answered once applied. */
static void do_file_chunk(struct pool_shard *sh, uint64_t origin, uint64_t req_id,
                          const struct room_req *req)
{
    if (!has_room(sh, origin, req_id))
        return;
    owner_queue(sh, origin, req_id,
             (struct shard_op){.kind = SHARD_OP_FILE_CHUNK, .room_no = req->room_no,
                               .author = pc_strdup(req->user), .file_no = req->file_no,
                               .chunk = req->chunk, .data = pc_memdup(req->data, req->data_len),
                               .data_len = req->data_len});
}

static void do_join(struct pool_shard *sh, uint64_t origin, uint64_t req_id,
                    const struct room_req *req)
{
    struct cluster *cl = sh->pl;
    struct pool_owned *o = owned_get(cl, req->room_no, sh->id, true);
    if (owned_add(o, origin, req->session, req->user)) {
        struct room_event ev = {.kind = ROOM_EV_ENTERED, .room_no = req->room_no, .user = req->user};
        owned_event(cl, o, &ev);
        queue_event(sh, COMPL_JOIN, req->user, req->room_no, "");
        o = owned_get(cl, req->room_no, sh->id, true); /* delivery here may have changed it */
    }
    size_t n = HASH_COUNT(o->users), i = 0;
    struct room_presence *present = pc_calloc(n + 1, sizeof *present);
    struct pool_owned_user *u, *tmp;
    HASH_ITER(hh, o->users, u, tmp)
        present[i++] = (struct room_presence){u->user, u->sessions};
    /* Everything committed is applied on a ready leader: the joiner's history ends here
     * and its live delivery starts after it. */
    struct room_res res = {.seq = shard_fsm_room_last(sh->fsm, req->room_no), .present = present,
                           .n_present = i};
    owner_answer(cl, origin, req_id, &res);
    pc_free(present);
}

static void do_part(struct pool_shard *sh, uint64_t origin, uint64_t req_id,
                    const struct room_req *req)
{
    struct cluster *cl = sh->pl;
    struct pool_owned *o = owned_get(cl, req->room_no, sh->id, false);
    struct pool_owned_session *s = NULL;
    struct { uint64_t node, session; } key = {origin, req->session};
    if (o != NULL)
        HASH_FIND(hh, o->sessions, &key, sizeof key, s);
    if (s == NULL) {
        answer_status(cl, origin, req_id, PC_ENOTFOUND);
        return;
    }
    struct pool_owned_user *u = NULL;
    HASH_FIND_STR(o->users, req->user, u);
    if (u != NULL && u->sessions == 1)
        queue_event(sh, COMPL_PART, req->user, req->room_no, "");
    owned_drop_session(cl, o, s, true);
    answer_status(cl, origin, req_id, 0);
}

static void do_history(struct cluster *cl, struct pool_shard *sh, uint64_t origin,
                       uint64_t req_id, const struct room_req *req)
{
    struct pc_arena arena = {0};
    struct room_msg *msgs = NULL;
    size_t n = 0;
    uint32_t count = req->count < cl->cfg.max_history ? req->count : cl->cfg.max_history;
    int rc = roomlog_read(cl->st, req->room_no, req->before, req->upto, count, &arena, &msgs, &n);
    /* An answer must fit one peer-link frame: the oldest go when the texts are long (the
     * asker pages on from what it got). */
    size_t bytes = 0, keep = 0;
    while (rc == 0 && keep < n && bytes < POOL_MAX_ANSWER_TEXT) {
        const struct room_msg *m = &msgs[n - 1 - keep];
        bytes += strlen(m->text) + strlen(m->author) + 32;
        keep++;
    }
    if (keep < n) {
        msgs += n - keep;
        n = keep;
    }
    uint64_t bound = req->before != 0 ? req->before : UINT64_MAX; /* as roomlog_read */
    if (req->upto != 0 && req->upto != UINT64_MAX && req->upto + 1 < bound)
        bound = req->upto + 1;
    if (rc == 0 && backfill_hides(cl, req->room_no, bound, count, msgs, n)) {
        /* Never a history with a hole (shard_fsm.h): the asker tries again for a while (a
         * snapshot's back-fill takes a moment), then gets "unavailable". */
        pc_arena_free(&arena);
        answer_status(cl, origin, req_id, PC_ENOTOWNER);
        return;
    }
    struct room_res res = {.status = rc, .msgs = msgs, .n_msgs = n};
    struct pool_shard *mine = sh != NULL ? sh : pool_shard_of_room(cl, req->room_no);
    if (mine != NULL) { /* where the room's ids start and end (export pages by id) */
        res.seq = shard_fsm_room_last(mine->fsm, req->room_no);
        res.floor = shard_fsm_room_floor(mine->fsm, req->room_no);
    }
    if (rc == 0 && req->record_read && sh != NULL) {
        char content[64];
        snprintf(content, sizeof content, "%zu messages", n);
        queue_event(sh, COMPL_BACKCHAT, req->user, req->room_no, content);
    }
    owner_answer(cl, origin, req_id, &res);
    pc_arena_free(&arena);
}

void owner_request(struct cluster *cl, uint64_t origin, uint64_t req_id, const struct room_req *req)
{
    if (req->kind == ROOM_REQ_HISTORY && req->any_replica) {
        do_history(cl, NULL, origin, req_id, req); /* this replica's store, owner or not */
        return;
    }
    if (req->kind == ROOM_REQ_FILE_FETCH) { /* likewise: committed chunks never change */
        struct pc_buf b = {0};
        int rc = roomfile_chunk(cl->st, req->room_no, req->file_no, req->chunk, &b);
        owner_answer(cl, origin, req_id,
                     &(struct room_res){.status = rc, .data = b.data, .data_len = b.len});
        pc_buf_free(&b);
        return;
    }
    struct pool_shard *sh = pool_shard_of_room(cl, req->room_no);
    /* An unknown room is usually one this replica has not applied yet (the asker saw it
     * created): "not the owner" makes the asker try again shortly. */
    if (sh == NULL || !group_ready_leader(sh->g)) {
        answer_status(cl, origin, req_id, PC_ENOTOWNER);
        return;
    }
    switch (req->kind) {
    case ROOM_REQ_POST:
        do_post(sh, origin, req_id, req);
        break;
    case ROOM_REQ_JOIN:
        do_join(sh, origin, req_id, req);
        break;
    case ROOM_REQ_PART:
        do_part(sh, origin, req_id, req);
        break;
    case ROOM_REQ_HISTORY:
        do_history(cl, sh, origin, req_id, req);
        break;
    case ROOM_REQ_FILE_CHUNK:
        do_file_chunk(sh, origin, req_id, req);
        break;
    case ROOM_REQ_EDIT:
        if (disk_refuse_write(cl))
            answer_status(cl, origin, req_id, PC_ENOSPC);
        else
            owner_edit(sh, origin, req_id, req);
        break;
    case ROOM_REQ_PURGE:
        if (disk_refuse_write(cl))
            answer_status(cl, origin, req_id, PC_ENOSPC);
        else
            owner_purge(sh, origin, req_id, req);
        break;
    case ROOM_REQ_IMPORT:
        if (has_room(sh, origin, req_id))
            owner_import(sh, origin, req_id, req);
        break;
    case ROOM_REQ_FILE_FETCH: /* answered above, by any replica */
        break;
    case ROOM_REQ_FILE_READ:
        queue_event(sh, COMPL_FILEDOWNLOAD, req->user, req->room_no,
                    req->file != NULL ? req->file->name : "");
        answer_status(cl, origin, req_id, 0);
        break;
    }
}

/* ---- subscriptions ----------------------------------------------------------------------- */

static bool listed(const struct pool_subscribe *sub, uint64_t session)
{
    for (size_t i = 0; sub != NULL && i < sub->n_sessions; i++)
        if (sub->sessions[i].session == session)
            return true;
    return false;
}

/* Drops one session of node from the room that sub does not list (sub NULL: any); false
 * when there is none. One at a time: dropping may free the roster or change the tables. */
static bool drop_one_of_node(struct cluster *cl, struct pool_owned *o, uint64_t node,
                             const struct pool_subscribe *sub, bool announce)
{
    struct pool_owned_session *s, *tmp;
    HASH_ITER(hh, o->sessions, s, tmp) {
        if (s->key.node == node && !listed(sub, s->key.session)) {
            owned_drop_session(cl, o, s, announce);
            return true;
        }
    }
    return false;
}

/* Sends the messages (base, last] of a room to one node, oldest first. */
static void replay(struct cluster *cl, uint64_t node, uint64_t room_no, uint64_t base,
                   uint64_t last)
{
    while (base < last) {
        uint64_t want = last - base;
        struct pc_arena arena = {0};
        struct room_msg *msgs = NULL;
        size_t n = 0;
        /* The newest `want` messages up to last are exactly (base, last]; pages of 500
         * walk up from base. */
        uint64_t upto = want > POOL_BACKFILL_PAGE ? base + POOL_BACKFILL_PAGE : last;
        uint32_t count = (uint32_t)(upto - base);
        if (roomlog_read(cl->st, room_no, 0, upto, count, &arena, &msgs, &n) != 0 || n == 0) {
            pc_arena_free(&arena);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            struct room_event ev = {.kind = ROOM_EV_MESSAGE, .room_no = room_no, .msg = &msgs[i]};
            if (node == cl->self) {
                route_event(cl, &ev);
            } else {
                struct pc_buf b = {0};
                pool_room_event_encode(&b, &ev);
                pool_send(cl, node, POOL_MSG_ROOM_EVENT, &b);
                pc_buf_free(&b);
            }
        }
        pc_arena_free(&arena);
        base = upto;
    }
}

void owner_subscribe(struct cluster *cl, uint64_t origin, const struct pool_subscribe *sub)
{
    struct pool_shard *sh = pool_shard_of_room(cl, sub->room_no);
    if (sh == NULL || !group_ready_leader(sh->g)) {
        answer_status(cl, origin, sub->req_id, PC_ENOTOWNER);
        return;
    }
    /* Right after an election every node re-announces what it had with the old owner:
     * those users did not come in, so nobody is told they did. */
    bool announce = pc_mono_ms() - sh->ready_ms > POOL_QUIET_ENTER_MS;
    struct pool_owned *o = owned_get(cl, sub->room_no, sh->id, true);
    /* The announcement is the node's whole list: sessions it no longer has are gone. */
    while (o != NULL && drop_one_of_node(cl, o, origin, sub, announce))
        o = owned_get(cl, sub->room_no, sh->id, false);
    o = owned_get(cl, sub->room_no, sh->id, true);
    for (size_t i = 0; i < sub->n_sessions; i++) {
        if (!owned_add(o, origin, sub->sessions[i].session, sub->sessions[i].user) || !announce)
            continue;
        struct room_event ev = {.kind = ROOM_EV_ENTERED, .room_no = sub->room_no,
                                .user = sub->sessions[i].user};
        owned_event(cl, o, &ev);
        o = owned_get(cl, sub->room_no, sh->id, true);
    }
    uint64_t last = shard_fsm_room_last(sh->fsm, sub->room_no);
    uint64_t base = sub->last_delivered;
    if (base > last)
        base = last;
    /* Messages retention or an administrator purged are gone for everyone: start after
     * them (a replay into a purged range would show the node a gap it asks about forever). */
    uint64_t floor = shard_fsm_room_floor(sh->fsm, sub->room_no);
    if (base < floor && floor <= last)
        base = floor;
    /* The node's sessions must see every message after what it delivered (DESIGN.md §3.2),
     * however many it missed. A replay reads the store on this loop, so a long one comes in
     * rounds: floor tells the node how far there is to go, and it asks again. */
    uint64_t upto = last - base > POOL_REPLAY_MAX ? base + POOL_REPLAY_MAX : last;
    struct room_res res = {.seq = base, .n_present = HASH_COUNT(o->users), .floor = last};
    owner_answer(cl, origin, sub->req_id, &res);
    replay(cl, origin, sub->room_no, base, upto);
}

/* ---- proposing ------------------------------------------------------------------------------ */

struct proposal {
    struct pool_shard *sh;
    size_t n;
    uint64_t tags[];
};

static void proposal_done(void *arg, int status, void *result)
{
    (void)result;
    struct proposal *p = arg;
    struct pool_shard *sh = p->sh;
    struct cluster *cl = sh->pl;
    sh->inflight--;
    for (size_t i = 0; i < p->n; i++) {
        struct pool_op *o = NULL;
        HASH_FIND(hh, sh->proposed, &p->tags[i], sizeof p->tags[i], o);
        if (o == NULL)
            continue; /* answered by the apply hook */
        HASH_DEL(sh->proposed, o);
        if (answered_op(o)) {
            /* NOTLEADER: never appended, the asker may send it to the new owner. UNKNOWN:
             * appended; a later leader may still commit it. */
            int rc = status == PC_ENOTLEADER ? PC_ENOTOWNER
                   : status == 0 ? PC_EIO /* applied as nothing: a corrupt entry */
                   : status;
            if (rc != PC_ENOTOWNER)
                cl->stats.posts_failed++;
            answer_status(cl, o->origin, o->req_id, rc);
        }
        op_free(o);
    }
    pc_free(p);
}

/* Proposes what arrived for the shard since the last pass: one entry of up to
 * POOL_MAX_OPS_PER_ENTRY ops, a few entries in flight (raft_uv writes them together). */
void owner_propose(struct pool_shard *sh)
{
    struct cluster *cl = sh->pl;
    while (!TAILQ_EMPTY(&sh->pending) && sh->inflight < POOL_MAX_INFLIGHT &&
           group_ready_leader(sh->g)) {
        size_t n = sh->n_pending < POOL_MAX_OPS_PER_ENTRY ? sh->n_pending : POOL_MAX_OPS_PER_ENTRY;
        struct shard_op *ops = pc_calloc(n, sizeof *ops);
        struct proposal *p = pc_calloc(1, sizeof *p + n * sizeof p->tags[0]);
        p->sh = sh;
        p->n = n;
        struct pool_op *o;
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) {
            o = TAILQ_FIRST(&sh->pending);
            /* File chunks are large: about a megabyte per entry, the rest in the next. */
            if (i > 0 && bytes + o->op.data_len > POOL_MAX_ENTRY_FILE_BYTES) {
                n = p->n = i;
                break;
            }
            bytes += o->op.data_len;
            TAILQ_REMOVE(&sh->pending, o, link);
            sh->n_pending--;
            if (o->op.kind == SHARD_OP_POST) {
                /* The proposer stamps the time, never going backwards within the shard, so
                 * history in seq order is in time order; apply never reads a clock. */
                int64_t now = pc_wall_us();
                sh->last_ts_us = now > sh->last_ts_us ? now : sh->last_ts_us + 1;
                o->op.ts_us = sh->last_ts_us;
            }
            ops[i] = o->op;
            p->tags[i] = o->tag;
            HASH_ADD(hh, sh->proposed, tag, sizeof o->tag, o);
        }
        struct raft_buffer buf;
        int rc = shard_fsm_entry(cl->node_label, ops, n, &buf);
        pc_free(ops);
        if (rc == 0)
            rc = group_propose(sh->g, buf, proposal_done, p);
        if (rc == 0) {
            sh->inflight++;
            sh->proposed_ms = pc_mono_ms();
            continue;
        }
        /* Refused before it was appended: nothing of it is committed. */
        if (rc == PC_ENOSPC)
            disk_note_enospc(cl, "raft refused an entry for lack of disk space");
        sh->inflight++;
        proposal_done(p, rc == PC_ENOTLEADER || rc == PC_ENOSPC ? rc : PC_EIO, NULL);
    }
}

/* The apply hook of every shard on every replica: the proposer answers its requests, the
 * ready leader fans messages out. Runs inside raft: never calls raft. */
void owner_applied(void *ctx, uint64_t index, const struct shard_op *ops, size_t n)
{
    (void)index;
    struct pool_shard *sh = ctx;
    struct cluster *cl = sh->pl;
    bool leader = sh->g != NULL && group_ready_leader(sh->g); /* NULL: inside raft_start */
    for (size_t i = 0; i < n; i++) {
        const struct shard_op *op = &ops[i];
        struct pool_op *o = NULL;
        if (tag_is_mine(cl, op->tag))
            HASH_FIND(hh, sh->proposed, &op->tag, sizeof op->tag, o);
        if (o != NULL)
            HASH_DEL(sh->proposed, o);
        if (op->kind == SHARD_OP_FILE_CHUNK && o != NULL)
            answer_status(cl, o->origin, o->req_id, 0);
        if (op->kind == SHARD_OP_PURGE) {
            backfill_purged(cl, op->room_no, shard_fsm_room_floor(sh->fsm, op->room_no));
            filefix_purged(cl, op->room_no);
        }
        /* A file whose chunks were committed before a snapshot this replica installed:
         * its record arrives now, its bytes must be fetched (pool_filefix.c). */
        if (op->kind == SHARD_OP_POST && op->has_file)
            filefix_check(cl, sh, op->room_no, op->file_no);
        if ((op->kind == SHARD_OP_EDIT || op->kind == SHARD_OP_PURGE) && o != NULL &&
            o->req_id != 0)
            owner_answer(cl, o->origin, o->req_id,
                         &(struct room_res){.seq = o->answer_seq, .floor = o->answer_floor});
        if (op->kind == SHARD_OP_IMPORT && o != NULL && o->req_id != 0)
            owner_answer(cl, o->origin, o->req_id,
                         &(struct room_res){.seq = shard_fsm_room_last(sh->fsm, op->room_no)});
        if (op->kind != SHARD_OP_POST) {
            if (o != NULL)
                op_free(o);
            continue;
        }
        if (o != NULL) {
            cl->stats.posts_committed++;
            struct room_res res = {.seq = op->seq, .ts_us = op->ts_us};
            owner_answer(cl, o->origin, o->req_id, &res);
            op_free(o);
        }
        if (!leader)
            continue; /* followers deliver through their subscription at the leader */
        struct pool_owned *room = owned_get(cl, op->room_no, sh->id, false);
        if (room == NULL)
            continue;
        struct room_msg msg = {op->room_no, op->seq, op->ts_us, op->author, op->text};
        struct room_event ev = {.kind = ROOM_EV_MESSAGE, .room_no = op->room_no, .msg = &msg};
        owned_event(cl, room, &ev);
    }
}

/* ---- leadership and links ---------------------------------------------------------------- */

static void fail_pending(struct pool_shard *sh, int status)
{
    struct cluster *cl = sh->pl;
    struct pool_op *o;
    while ((o = TAILQ_FIRST(&sh->pending)) != NULL) {
        TAILQ_REMOVE(&sh->pending, o, link);
        sh->n_pending--;
        if (answered_op(o))
            answer_status(cl, o->origin, o->req_id, status);
        op_free(o);
    }
}

void owner_leadership(struct pool_shard *sh, bool ready)
{
    struct cluster *cl = sh->pl;
    /* Rosters start empty in every term: the nodes re-announce their sessions. */
    drop_group_rosters(cl, sh->id);
    sh->ready_ms = ready ? pc_mono_ms() : 0;
    if (!ready)
        fail_pending(sh, PC_ENOTOWNER); /* never proposed: the askers re-route them */
}

void owner_link(struct cluster *cl, uint64_t node, bool up)
{
    if (up) {
        /* Whatever we sent while the link was down is lost: ask the node to re-announce
         * (it also does when it sees a new leader or a gap). */
        struct pc_buf b = {0};
        pool_resync_encode(&b);
        pool_send(cl, node, POOL_MSG_RESYNC, &b);
        pc_buf_free(&b);
        return;
    }
    /* The node's sessions are unreachable: they leave until it re-announces them. The
     * rooms are listed first: deliveries here may change the tables under an iteration. */
    size_t n = HASH_COUNT(cl->owned), i = 0;
    uint64_t *rooms = pc_calloc(n + 1, sizeof *rooms);
    struct pool_owned *o, *tmp;
    HASH_ITER(hh, cl->owned, o, tmp)
        rooms[i++] = o->room_no;
    for (i = 0; i < n; i++) {
        while ((o = owned_get(cl, rooms[i], 0, false)) != NULL &&
               drop_one_of_node(cl, o, node, NULL, true))
            ;
    }
    pc_free(rooms);
}

void owner_close(struct cluster *cl)
{
    for (uint32_t i = 0; i < cl->n_shards; i++)
        fail_pending(&cl->shards[i], PC_EUNAVAIL);
    drop_group_rosters(cl, 0);
}
