/* Metadata changes in the pool: the metadata group's ready leader proposes them; any other
 * node forwards them there (META_REQ) and calls back only once its own replica has applied
 * the change (the leader's applied index comes back in META_RES), so the caller reads its
 * own write on whichever node it is (DESIGN.md §3, read-your-writes). */
#include <stdio.h>
#include <string.h>

#include "cluster/pool_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

/* glibc's sys/queue.h lacks the _SAFE variants. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                         \
    for ((var) = TAILQ_FIRST(head); (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);  \
         (var) = (tvar))
#endif

/* The metadata group's raft index applied here: every index (barriers and configuration
 * entries included, which never reach the FSM), so that it is comparable with a leader's
 * commit index. */
static uint64_t applied_here(const struct cluster *cl)
{
    struct group_status st;
    group_status(cl->meta_g, &st);
    return st.last_applied;
}

static void call_free(struct pool_meta_call *c)
{
    meta_op_clear(&c->op);
    pc_free(c);
}

/* An owned deep copy of op (the caller's strings and lists stay the caller's). */
static void copy_op(struct meta_op *dst, const struct meta_op *src)
{
    struct pc_buf b = {0};
    meta_op_encode(src, &b);
    if (meta_op_decode(b.data, b.len, dst) != 0)
        pc_error("cluster: a metadata change could not be copied (encoder and decoder disagree)");
    pc_buf_free(&b);
}

static void queue_proposal(struct cluster *cl, struct pool_meta_call *c)
{
    if (c->queued)
        return;
    c->queued = true;
    TAILQ_INSERT_TAIL(&cl->meta_propose, c, plink);
}

static void set_status(struct meta_result *res, int status, const char *why)
{
    memset(res, 0, sizeof *res);
    res->status = status;
    snprintf(res->errmsg, sizeof res->errmsg, "%s", why);
}

/* A local caller's answer: delivered at the next prepare once this replica has caught up. */
static void local_answered(struct pool_meta_call *c, const struct meta_result *res, uint64_t index)
{
    c->res = *res;
    c->wait_index = index;
    c->answered_ms = pc_mono_ms();
    if (c->answered_ms == 0)
        c->answered_ms = 1;
}

static void remote_answer(struct cluster *cl, struct pool_meta_call *c,
                          const struct meta_result *res, uint64_t index)
{
    struct pc_buf b = {0};
    pool_meta_res_encode(&b, c->origin_req, res, index);
    pool_send(cl, c->origin, POOL_MSG_META_RES, &b);
    pc_buf_free(&b);
}

static void proposal_done(void *arg, int status, void *result)
{
    struct pool_meta_call *c = arg;
    struct cluster *cl = c->cl;
    c->proposing = false;
    struct meta_result res;
    memset(&res, 0, sizeof res);
    if (status == 0 && result != NULL) {
        res = *(struct meta_result *)result;
        meta_fsm_result_release(cl->meta_fsm, result);
    } else if (status == PC_EUNKNOWN) {
        set_status(&res, PC_EUNKNOWN, "the metadata leader changed while applying this change: "
                   "check whether it took effect before retrying");
    } else if (status == PC_ENOSPC) {
        set_status(&res, status, "the metadata leader's data disk is full: the change was not "
                   "made; retry once space is freed");
    } else if (status != 0 && status != PC_ENOTLEADER) {
        set_status(&res, status, "the metadata change could not be stored");
    }
    if (c->is_init) {
        if (status != 0)
            cl->init_proposed = false; /* a later leader tries again */
        else
            pc_notice("cluster: pool initialised: domain %s, %u shards", c->op.domain,
                      c->op.shard_count);
        call_free(c);
        return;
    }
    if (c->origin != 0) {
        if (status == PC_ENOTLEADER)
            set_status(&res, PC_ENOTOWNER, "not the metadata leader");
        if (!cl->closing)
            remote_answer(cl, c, &res, applied_here(cl));
        call_free(c);
        return;
    }
    if (c->cb == NULL) { /* its caller was answered at close */
        call_free(c);
        return;
    }
    if (status == PC_ENOTLEADER) {
        c->dest = 0; /* the tick sends it to the new leader */
        return;
    }
    local_answered(c, &res, applied_here(cl));
}

void meta_request(struct cluster *cl, uint64_t origin, const struct pool_meta_req *in)
{
    if (!group_ready_leader(cl->meta_g)) {
        struct meta_result res;
        set_status(&res, PC_ENOTOWNER, "not the metadata leader");
        struct pc_buf b = {0};
        pool_meta_res_encode(&b, in->req_id, &res, 0);
        pool_send(cl, origin, POOL_MSG_META_RES, &b);
        pc_buf_free(&b);
        return;
    }
    struct pool_meta_call *c = pc_calloc(1, sizeof *c);
    copy_op(&c->op, &in->op);
    c->origin = origin;
    c->origin_req = in->req_id;
    c->cl = cl;
    c->born_ms = pc_mono_ms();
    queue_proposal(cl, c);
}

static uint64_t commit_here(const struct cluster *cl)
{
    struct group_status st;
    group_status(cl->meta_g, &st);
    return st.commit_index;
}

void meta_sync_request(struct cluster *cl, uint64_t origin, uint64_t req_id)
{
    struct meta_result res;
    set_status(&res, group_ready_leader(cl->meta_g) ? 0 : PC_ENOTOWNER,
               group_ready_leader(cl->meta_g) ? "" : "not the metadata leader");
    struct pc_buf b = {0};
    pool_meta_res_encode(&b, req_id, &res, res.status == 0 ? commit_here(cl) : 0);
    pool_send(cl, origin, POOL_MSG_META_RES, &b);
    pc_buf_free(&b);
}

/* A local caller's call, routed at once (meta_tick) and delivered from a later prepare. */
static struct pool_meta_call *local_call(struct cluster *cl, meta_cb cb, void *arg)
{
    struct pool_meta_call *c = pc_calloc(1, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    c->cl = cl;
    c->req_id = cl->next_req_id++;
    c->born_ms = pc_mono_ms();
    TAILQ_INSERT_TAIL(&cl->meta_out, c, link);
    return c;
}

int cluster_meta_sync(struct cluster *cl, meta_cb cb, void *arg)
{
    if (cl->closing)
        return PC_EUNAVAIL;
    struct pool_meta_call *c = local_call(cl, cb, arg);
    c->is_sync = true;
    meta_tick(cl, c->born_ms);
    return 0;
}

/* Routes a sync: the leader's commit index is what this replica must reach. Bounded: a
 * sync never holds a session longer than POOL_SYNC_MS (an unreachable leader, a minority
 * side), it then goes on with what this replica has. */
static void sync_tick(struct cluster *cl, struct pool_meta_call *c, uint64_t now)
{
    struct meta_result ok;
    set_status(&ok, 0, "");
    uint64_t leader = group_leader(cl->meta_g, NULL);
    if (now - c->born_ms > POOL_SYNC_MS) {
        local_answered(c, &ok, 0);
    } else if (cl->n_nodes == 1 || (leader == cl->self && group_ready_leader(cl->meta_g))) {
        local_answered(c, &ok, commit_here(cl));
    } else if (leader != 0 && leader != cl->self && peer_up(cl->peers, leader) &&
               (c->dest == 0 || now - c->sent_ms > POOL_SYNC_MS / 2)) {
        struct pc_buf b = {0};
        pool_meta_sync_encode(&b, c->req_id);
        if (pool_send(cl, leader, POOL_MSG_META_SYNC, &b) == 0) {
            c->dest = leader;
            c->sent_ms = now;
        }
        pc_buf_free(&b);
    }
}

void meta_answer(struct cluster *cl, const struct pool_meta_res *m)
{
    struct pool_meta_call *c;
    TAILQ_FOREACH(c, &cl->meta_out, link) {
        if (c->req_id != m->req_id || c->answered_ms != 0)
            continue;
        if (m->res.status == PC_ENOTOWNER)
            c->dest = 0; /* re-sent at the next tick */
        else
            local_answered(c, &m->res, m->applied_index);
        return;
    }
}

int cluster_meta_submit(struct cluster *cl, const struct meta_op *op, meta_cb cb, void *arg)
{
    if (cl->closing)
        return PC_EUNAVAIL;
    if (!cluster_meta_ready(cl))
        return PC_EUNAVAIL; /* the pool is not initialised yet (no metadata leader so far) */
    struct pool_meta_call *c = local_call(cl, cb, arg);
    copy_op(&c->op, op);
    meta_tick(cl, c->born_ms);
    return 0;
}

static void propose_all(struct cluster *cl)
{
    struct pool_meta_call *c;
    while ((c = TAILQ_FIRST(&cl->meta_propose)) != NULL) {
        TAILQ_REMOVE(&cl->meta_propose, c, plink);
        c->queued = false;
        if (!c->is_init && disk_refuse_write(cl)) {
            proposal_done(c, PC_ENOSPC, NULL); /* the data disk is full (pool_disk.c) */
            continue;
        }
        struct raft_buffer buf;
        int rc = meta_fsm_entry(&c->op, &buf);
        if (rc == 0) {
            rc = group_propose(cl->meta_g, buf, proposal_done, c);
        }
        c->proposing = rc == 0;
        if (rc == PC_ENOSPC)
            disk_note_enospc(cl, "raft refused a metadata entry for lack of disk space");
        if (rc != 0)
            proposal_done(c, rc == PC_ENOTLEADER || rc == PC_ENOSPC ? rc : PC_EIO, NULL);
    }
}

void meta_prepare(struct cluster *cl)
{
    if (group_ready_leader(cl->meta_g) && !cluster_meta_ready(cl) && !cl->init_proposed) {
        /* A new pool: the first ready metadata leader writes its domain and shard count. */
        struct pool_meta_call *c = pc_calloc(1, sizeof *c);
        c->op.kind = META_OP_INIT;
        c->op.ts_us = pc_wall_us();
        c->op.shard_count = cl->n_shards;
        snprintf(c->op.domain, sizeof c->op.domain, "%s", cl->cfg.domain);
        snprintf(c->op.actor, sizeof c->op.actor, "system");
        snprintf(c->op.node, sizeof c->op.node, "%s", cl->node_label);
        c->cl = cl;
        c->is_init = true;
        cl->init_proposed = true;
        queue_proposal(cl, c);
    }
    if (!TAILQ_EMPTY(&cl->meta_propose))
        propose_all(cl);
    /* Answered calls whose change this replica has applied. */
    uint64_t applied = applied_here(cl);
    struct pool_meta_call *c, *tmp;
    TAILQ_FOREACH_SAFE(c, &cl->meta_out, link, tmp) {
        if (c->answered_ms == 0 || c->wait_index > applied)
            continue;
        TAILQ_REMOVE(&cl->meta_out, c, link);
        c->cb(c->arg, &c->res);
        call_free(c);
    }
}

/* Answers a local caller that will not be served, and forgets the call. */
static void give_up(struct cluster *cl, struct pool_meta_call *c, int status, const char *why)
{
    TAILQ_REMOVE(&cl->meta_out, c, link);
    struct meta_result res;
    set_status(&res, status, why);
    c->cb(c->arg, &res);
    call_free(c);
}

void meta_tick(struct cluster *cl, uint64_t now)
{
    struct pool_meta_call *c, *tmp;
    TAILQ_FOREACH_SAFE(c, &cl->meta_out, link, tmp) {
        if (c->answered_ms != 0) {
            if (now - c->answered_ms > POOL_META_WAIT_MS) {
                pc_warn("cluster: this replica has applied metadata up to %llu, not %llu, "
                        "after %d ms; answering anyway", (unsigned long long)applied_here(cl),
                        (unsigned long long)c->wait_index, POOL_META_WAIT_MS);
                c->wait_index = 0; /* delivered at the next prepare */
            }
            continue;
        }
        if (c->is_sync) {
            sync_tick(cl, c, now);
            continue;
        }
        if (c->proposing || c->queued)
            continue;
        if (c->dest != 0 && c->dest != cl->self && now - c->sent_ms > POOL_FWD_TIMEOUT_MS) {
            give_up(cl, c, PC_EUNKNOWN, "the metadata leader did not answer: check whether the "
                    "change took effect before retrying");
            continue;
        }
        if (c->dest != 0)
            continue;
        if (now - c->born_ms > POOL_PARK_MS) {
            give_up(cl, c, PC_EUNAVAIL, "no metadata leader is reachable: is a majority of the "
                    "pool's nodes up?");
            continue;
        }
        uint64_t leader = group_leader(cl->meta_g, NULL);
        if (leader == cl->self && group_ready_leader(cl->meta_g)) {
            c->dest = cl->self;
            queue_proposal(cl, c);
        } else if (leader != 0 && leader != cl->self && peer_up(cl->peers, leader)) {
            struct pool_meta_req m = {.req_id = c->req_id, .op = c->op};
            struct pc_buf b = {0};
            pool_meta_req_encode(&b, m.req_id, &m.op);
            if (pool_send(cl, leader, POOL_MSG_META_REQ, &b) == 0) {
                c->dest = leader;
                c->sent_ms = now;
            }
            pc_buf_free(&b);
        }
    }
}

void meta_leadership(struct cluster *cl, bool ready)
{
    if (!ready)
        cl->init_proposed = cl->init_proposed && cluster_meta_ready(cl);
}

void meta_close(struct cluster *cl)
{
    struct pool_meta_call *c;
    while ((c = TAILQ_FIRST(&cl->meta_out)) != NULL) {
        TAILQ_REMOVE(&cl->meta_out, c, link);
        struct meta_result res;
        bool sent = c->dest != 0 || c->proposing;
        set_status(&res, sent ? PC_EUNKNOWN : PC_EUNAVAIL, "the node is shutting down");
        if (c->answered_ms != 0)
            res = c->res;
        c->cb(c->arg, &res);
        c->cb = NULL;
        if (c->queued) {
            TAILQ_REMOVE(&cl->meta_propose, c, plink);
            c->queued = false;
        }
        if (!c->proposing)
            call_free(c); /* a proposing one is freed by its raft callback */
    }
    while ((c = TAILQ_FIRST(&cl->meta_propose)) != NULL) {
        TAILQ_REMOVE(&cl->meta_propose, c, plink);
        call_free(c);
    }
}
