/* The asking side of the pool: every room request of this node's sessions goes to the
 * room's owner (the ready leader of its shard group), here or over the peer link; a stale
 * route is retried; and every room this node has sessions in is subscribed at its current
 * owner, whose events are delivered to the chat layer strictly in seq order (docs/POOL.md,
 * "Fan-out and failover"). */
#include <string.h>

#include "cluster/pool_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

/* ---- requests ----------------------------------------------------------------------------- */

static void fwd_free(struct pool_fwd *f)
{
    pc_free((char *)f->req.user);
    pc_free((char *)f->req.text);
    pc_free((void *)f->req.data);
    pc_free((char *)f->file.name);
    pc_free((char *)f->file.uploader);
    pc_free((char *)f->file.sha256);
    pc_free((char *)f->edit.author);
    pc_free((char *)f->edit.keywords);
    pc_arena_free(&f->msgs_arena);
    pc_free(f);
}

static void fwd_finish(struct cluster *cl, struct pool_fwd *f, const struct room_res *res)
{
    HASH_DEL(cl->fwds, f);
    if (f->req.kind == ROOM_REQ_POST)
        cl->n_fwd_posts--;
    f->cb(f->arg, res);
    fwd_free(f);
}

static void fwd_fail(struct cluster *cl, struct pool_fwd *f, int status)
{
    struct room_res res = {.status = status};
    fwd_finish(cl, f, &res);
}

/* Where a back-fill read goes: the leader if it is another node, else any reachable peer. */
static uint64_t replica_for_read(struct cluster *cl, struct pool_shard *sh, unsigned pick)
{
    uint64_t leader = group_leader(sh->g, NULL);
    if (pick == 0 && leader != 0 && leader != cl->self && peer_up(cl->peers, leader))
        return leader;
    size_t up = 0;
    for (size_t i = 0; i < cl->n_nodes; i++)
        up += cl->nodes[i].id != cl->self && peer_up(cl->peers, cl->nodes[i].id);
    for (size_t i = 0, k = 0; up > 0 && i < cl->n_nodes; i++)
        if (cl->nodes[i].id != cl->self && peer_up(cl->peers, cl->nodes[i].id) &&
            k++ == pick % up)
            return cl->nodes[i].id;
    for (size_t i = 0; i < cl->n_nodes; i++)
        if (cl->nodes[i].id != cl->self && peer_up(cl->peers, cl->nodes[i].id))
            return cl->nodes[i].id;
    return 0;
}

/* Sends f to the room's owner, or leaves it parked (dest 0) for the next tick when no owner
 * is reachable now. f may be finished (freed) before this returns. */
static void fwd_dispatch(struct cluster *cl, struct pool_fwd *f)
{
    f->dest = 0;
    struct pool_shard *sh = pool_shard_of_room(cl, f->req.room_no);
    if (sh == NULL) {
        fwd_fail(cl, f, PC_ENOTFOUND);
        return;
    }
    uint64_t dest = f->req.any_replica ? replica_for_read(cl, sh, f->req.replica_pick)
                                       : group_leader(sh->g, NULL);
    if (dest == 0)
        return;
    f->sent_ms = pc_mono_ms();
    if (dest == cl->self) {
        if (!group_ready_leader(sh->g))
            return; /* elected, but earlier entries are still being applied */
        f->dest = dest;
        owner_request(cl, cl->self, f->req_id, &f->req); /* may finish f */
        return;
    }
    if (!peer_up(cl->peers, dest))
        return; /* the leader we know is gone: a new one will be elected */
    struct pc_buf b = {0};
    pool_room_req_encode(&b, f->req_id, &f->req);
    int rc = pool_send(cl, dest, POOL_MSG_ROOM_REQ, &b);
    pc_buf_free(&b);
    if (rc == PC_EBUSY || rc == PC_ETOOBIG) {
        fwd_fail(cl, f, rc);
        return;
    }
    if (rc == 0)
        f->dest = dest;
}

static void sub_remove_member(struct cluster *cl, uint64_t room_no, uint64_t session);

int route_submit(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg)
{
    if ((req->kind == ROOM_REQ_POST || req->kind == ROOM_REQ_FILE_CHUNK) &&
        cl->n_fwd_posts >= cl->cfg.max_pending_posts)
        return PC_EBUSY;
    if (req->kind == ROOM_REQ_PART)
        sub_remove_member(cl, req->room_no, req->session);
    struct pool_fwd *f = pc_calloc(1, sizeof *f);
    f->req = *req;
    f->req.user = pc_strdup(req->user != NULL ? req->user : "");
    f->req.text = pc_strdup(req->text != NULL ? req->text : "");
    f->req.data = req->data_len > 0 ? pc_memdup(req->data, req->data_len) : NULL;
    if (req->file != NULL) {
        f->file = *req->file;
        f->file.name = pc_strdup(req->file->name ? req->file->name : "");
        f->file.uploader = pc_strdup(req->file->uploader ? req->file->uploader : "");
        f->file.sha256 = pc_strdup(req->file->sha256 ? req->file->sha256 : "");
        f->req.file = &f->file;
    }
    if (req->edit != NULL) {
        f->edit = *req->edit;
        f->edit.author = pc_strdup(req->edit->author ? req->edit->author : "");
        f->edit.keywords = pc_strdup(req->edit->keywords ? req->edit->keywords : "");
        f->req.edit = &f->edit;
    }
    if (req->msgs != NULL && req->n_msgs > 0) {
        struct room_msg *m = pc_arena_alloc(&f->msgs_arena, req->n_msgs * sizeof *m);
        for (size_t i = 0; i < req->n_msgs; i++) {
            m[i] = req->msgs[i];
            m[i].author = pc_arena_strdup(&f->msgs_arena, req->msgs[i].author ? req->msgs[i].author : "");
            m[i].text = pc_arena_strdup(&f->msgs_arena, req->msgs[i].text ? req->msgs[i].text : "");
        }
        f->req.msgs = m;
    } else {
        f->req.msgs = NULL;
        f->req.n_msgs = 0;
    }
    f->cb = cb;
    f->arg = arg;
    f->req_id = cl->next_req_id++;
    f->born_ms = pc_mono_ms();
    HASH_ADD(hh, cl->fwds, req_id, sizeof f->req_id, f);
    if (req->kind == ROOM_REQ_POST)
        cl->n_fwd_posts++;
    fwd_dispatch(cl, f);
    return 0;
}

/* ---- subscriptions -------------------------------------------------------------------------- */

static struct pool_sub *sub_find(const struct cluster *cl, uint64_t room_no)
{
    struct pool_sub *s = NULL;
    HASH_FIND(hh, cl->subs, &room_no, sizeof room_no, s);
    return s;
}

static uint64_t group_term(const struct group *g)
{
    struct group_status st;
    group_status(g, &st);
    return st.term;
}

static void sub_free(struct cluster *cl, struct pool_sub *s)
{
    HASH_DEL(cl->subs, s);
    for (size_t i = 0; i < s->n_members; i++)
        pc_free(s->members[i].user);
    pc_free(s->members);
    pc_free(s);
}

/* A session's JOIN was answered by owner: from now on its node needs the room's events. */
static void sub_add_member(struct cluster *cl, uint64_t room_no, uint64_t owner, uint64_t session,
                           const char *user, const struct room_res *res)
{
    struct pool_shard *sh = pool_shard_of_room(cl, room_no);
    if (sh == NULL)
        return;
    struct pool_sub *s = sub_find(cl, room_no);
    if (s == NULL) {
        s = pc_calloc(1, sizeof *s);
        s->room_no = room_no;
        s->group = sh->id;
        /* The joiner reads history up to res->seq; live delivery starts after it. */
        s->last = res->seq;
        s->owner = owner;
        s->term = group_term(sh->g);
        HASH_ADD(hh, cl->subs, room_no, sizeof s->room_no, s);
    }
    s->users = (unsigned)res->n_present;
    if (s->n_members == s->cap_members) {
        s->cap_members = s->cap_members ? s->cap_members * 2 : 4;
        s->members = pc_realloc(s->members, s->cap_members * sizeof *s->members);
    }
    s->members[s->n_members++] = (struct pool_sub_member){session, pc_strdup(user)};
}

static void sub_remove_member(struct cluster *cl, uint64_t room_no, uint64_t session)
{
    struct pool_sub *s = sub_find(cl, room_no);
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_members; i++) {
        if (s->members[i].session != session)
            continue;
        pc_free(s->members[i].user);
        s->members[i] = s->members[--s->n_members];
        break;
    }
    if (s->n_members == 0)
        sub_free(cl, s);
}

/* Announces the node's sessions in the room to the shard's current leader, which answers
 * with the seq to continue from and replays what this node has not delivered. */
static void sub_announce(struct cluster *cl, struct pool_sub *s, uint64_t leader, uint64_t term)
{
    struct pool_sub_session *list = pc_calloc(s->n_members + 1, sizeof *list);
    for (size_t i = 0; i < s->n_members; i++)
        list[i] = (struct pool_sub_session){s->members[i].session, s->members[i].user};
    struct pool_subscribe m = {.room_no = s->room_no, .last_delivered = s->last,
                               .sessions = list, .n_sessions = s->n_members,
                               .req_id = cl->next_req_id++};
    s->sub_req = m.req_id;
    s->sub_owner = leader;
    s->sub_term = term;
    s->sub_sent_ms = pc_mono_ms();
    if (leader == cl->self) {
        owner_subscribe(cl, cl->self, &m); /* answers through route_complete at once */
    } else {
        struct pc_buf b = {0};
        pool_subscribe_encode(&b, &m);
        pool_send(cl, leader, POOL_MSG_SUBSCRIBE, &b);
        pc_buf_free(&b);
    }
    pc_free(list);
}

static void sub_answered(struct cluster *cl, uint64_t req_id, const struct room_res *res)
{
    struct pool_sub *s, *tmp;
    HASH_ITER(hh, cl->subs, s, tmp) {
        if (s->sub_req != req_id)
            continue;
        s->sub_req = 0;
        if (res->status != 0)
            return; /* not the owner (any more): the tick tries the next one */
        s->owner = s->sub_owner;
        s->term = s->sub_term;
        s->catch_up = res->floor;
        /* The owner replays from res->seq on. Past s->last, the sessions here miss
         * messages (purged meanwhile, or an owner of an older version replayed only the
         * newest 10,000): say so. */
        if (res->seq > s->last) {
            pc_warn("cluster: room %llu: messages %llu to %llu were not replayed to this "
                    "node's %zu session(s) in it (purged, or older than an old owner "
                    "replays)",
                    (unsigned long long)s->room_no, (unsigned long long)s->last + 1,
                    (unsigned long long)res->seq, s->n_members);
            cl->stats.replay_skipped += res->seq - s->last;
            s->last = res->seq;
        }
        return;
    }
}

/* Events of the rooms this node has sessions in, from the owner's fan-out (or replay). */
void route_event(struct cluster *cl, const struct room_event *ev)
{
    struct pool_sub *s = sub_find(cl, ev->room_no);
    if (s == NULL)
        return;
    if (ev->kind == ROOM_EV_MESSAGE) {
        uint64_t seq = ev->msg->seq;
        if (seq <= s->last)
            return; /* a duplicate: replay overlapping live fan-out, or an old owner */
        if (seq > s->last + 1) {
            /* Something was lost between owner and here (a link drop, an owner change):
             * announce again; the owner replays from s->last. */
            if (s->sub_req == 0)
                s->owner = 0;
            return;
        }
        s->last = seq;
    } else if (ev->kind == ROOM_EV_ENTERED) {
        s->users++;
    } else if (ev->kind == ROOM_EV_LEFT && s->users > 0) {
        s->users--;
    }
    cl->stats.events_out++;
    cl->sink.event(cl->sink.ctx, ev);
}

void route_resync(struct cluster *cl, uint64_t owner)
{
    struct pool_sub *s, *tmp;
    HASH_ITER(hh, cl->subs, s, tmp)
        if (s->owner == owner)
            s->owner = 0;
}

void route_answers_lost(struct cluster *cl, uint64_t node)
{
    /* Its link to us went down and came back: what it had queued for us is gone, answers
     * included, and our requests would wait for the forward timeout (10 s; a back-fill
     * after a partition stalled that long in the chaos run). Reads and roster requests go
     * out again (a second answer finds the request finished and is ignored); posts keep
     * waiting: sending one again could commit it twice. */
    struct pool_fwd *f, *tmp;
    HASH_ITER(hh, cl->fwds, f, tmp)
        if (f->dest == node && node != cl->self && f->req.kind != ROOM_REQ_POST)
            fwd_dispatch(cl, f); /* may finish f */
    route_resync(cl, node);
}

unsigned route_room_users(const struct cluster *cl, uint64_t room_no)
{
    const struct pool_sub *s = sub_find(cl, room_no);
    if (s != NULL)
        return s->users;
    const struct pool_owned *o = NULL;
    HASH_FIND(hh, cl->owned, &room_no, sizeof room_no, o);
    return o != NULL ? HASH_COUNT(o->users) : 0;
}

/* ---- answers -------------------------------------------------------------------------------- */

void route_complete(struct cluster *cl, uint64_t req_id, const struct room_res *res)
{
    struct pool_fwd *f = NULL;
    HASH_FIND(hh, cl->fwds, &req_id, sizeof req_id, f);
    if (f == NULL) {
        sub_answered(cl, req_id, res);
        return; /* otherwise: answered already (timed out, link lost) */
    }
    if (res->status == PC_ENOTOWNER && !cl->closing) {
        /* Never executed there: safe to send again once the new owner is known (an
         * election or a planned transfer takes a moment; the park limit bounds it). */
        f->reroutes++;
        if (pc_mono_ms() - f->born_ms < POOL_PARK_MS) {
            f->dest = 0;
            return;
        }
        fwd_fail(cl, f, PC_EUNAVAIL);
        return;
    }
    if (f->req.kind == ROOM_REQ_JOIN && res->status == 0)
        sub_add_member(cl, f->req.room_no, f->dest, f->req.session, f->req.user, res);
    fwd_finish(cl, f, res);
}

/* ---- link changes and the tick ------------------------------------------------------------- */

void route_link(struct cluster *cl, uint64_t node, bool up)
{
    if (up)
        return;
    struct pool_fwd *f, *tmp;
    HASH_ITER(hh, cl->fwds, f, tmp) {
        if (f->dest != node)
            continue;
        /* A post handed to a node that died may have been committed: say so. Anything else
         * is a read or idempotent on the roster: the next owner serves it. */
        if (f->req.kind == ROOM_REQ_POST)
            fwd_fail(cl, f, PC_EUNKNOWN);
        else
            f->dest = 0;
    }
    route_resync(cl, node);
}

static void subs_tick(struct cluster *cl, uint64_t now)
{
    struct pool_sub *s, *tmp;
    HASH_ITER(hh, cl->subs, s, tmp) {
        struct pool_shard *sh = pool_shard_by_group(cl, s->group);
        uint64_t leader = sh != NULL ? group_leader(sh->g, NULL) : 0;
        if (leader == 0 || (leader == cl->self && !group_ready_leader(sh->g)))
            continue;
        if (leader != cl->self && !peer_up(cl->peers, leader))
            continue;
        uint64_t term = group_term(sh->g);
        /* Caught up, or the next round of a long replay (asked once the last one had
         * time to arrive: an early ask only replays some twice, which are dropped). */
        bool behind = s->last < s->catch_up && now - s->sub_sent_ms >= POOL_RESUB_MS;
        if (s->owner == leader && s->term == term && !behind)
            continue;
        if (s->sub_req != 0 && now - s->sub_sent_ms < POOL_RESUB_MS)
            continue;
        sub_announce(cl, s, leader, term);
    }
}

/* True when another node than f's destination now leads the room's shard. */
static bool owner_moved(struct cluster *cl, const struct pool_fwd *f)
{
    if (f->req.any_replica)
        return false;
    struct pool_shard *sh = pool_shard_of_room(cl, f->req.room_no);
    uint64_t leader = sh != NULL ? group_leader(sh->g, NULL) : 0;
    return leader != 0 && leader != f->dest;
}

static void fwds_tick(struct cluster *cl, uint64_t now)
{
    struct pool_fwd *f, *tmp;
    HASH_ITER(hh, cl->fwds, f, tmp) {
        if (f->dest == 0) {
            if (now - f->born_ms > POOL_PARK_MS)
                fwd_fail(cl, f, PC_EUNAVAIL); /* never sent anywhere: not committed */
            else
                fwd_dispatch(cl, f);
        } else if (f->dest != cl->self && owner_moved(cl, f)) {
            /* The node it went to no longer leads the shard (paused, cut off): it will not
             * answer soon. A post may still have been committed there. */
            if (f->req.kind == ROOM_REQ_POST)
                fwd_fail(cl, f, PC_EUNKNOWN);
            else
                fwd_dispatch(cl, f);
        } else if (f->dest != cl->self && now - f->sent_ms > POOL_FWD_TIMEOUT_MS) {
            pc_warn("cluster: node %llu did not answer a %s within %d ms",
                    (unsigned long long)f->dest, f->req.kind == ROOM_REQ_POST ? "post" : "request",
                    POOL_FWD_TIMEOUT_MS);
            fwd_fail(cl, f, f->req.kind == ROOM_REQ_POST ? PC_EUNKNOWN : PC_EUNAVAIL);
        }
    }
}

void route_tick(struct cluster *cl, uint64_t now)
{
    fwds_tick(cl, now);
    subs_tick(cl, now);
    backfill_tick(cl, now);
}

void route_close(struct cluster *cl)
{
    struct pool_fwd *f, *tmp;
    HASH_ITER(hh, cl->fwds, f, tmp)
        fwd_fail(cl, f, f->req.kind == ROOM_REQ_POST && f->dest != 0 ? PC_EUNKNOWN : PC_EUNAVAIL);
    struct pool_sub *s, *st;
    HASH_ITER(hh, cl->subs, s, st)
        sub_free(cl, s);
    backfill_close(cl);
    filefix_close(cl);
    uploads_free(cl);
}
