/* The compliance dispatcher (DESIGN.md §3.6). Every node runs one; only the metadata
 * group's ready leader delivers. A round for one adapter: read, from this node's store,
 * the events of every raft group after the adapter's replicated cursor; merge them into
 * one batch that keeps each group's log order (so each room's order) and is otherwise
 * ordered by time; hand it to the adapter; once the adapter confirms, propose the new
 * cursor positions as a metadata operation, whose apply deletes on every replica what all
 * adapters have taken. A leader change between the adapter's confirmation and the cursor
 * commit re-delivers the batch to the adapter from the next leader: the same events with
 * the same ids, never a skipped one. */
#include "compliance/compl_dispatch.h"

#include <stdio.h>
#include <string.h>

#include "cluster/cluster.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "compliance/compl_adapter.h"
#include "compliance/compl_log.h"

enum { CHECK_MS = 100, BACKOFF_START_MS = 1000, BACKOFF_MAX_MS = 60000 };

struct slot {
    struct compl_dispatch *d;
    struct compl_adapter *a;
    bool busy, full;
    uint64_t next_ms;     /* next round (interval), unless a full batch is waiting */
    unsigned backoff_ms;
    struct meta_compl_pos *taken; /* what the batch with the adapter covers, per group */
    size_t n_taken;
    size_t batch_n;
    struct compl_adapter_status st;
};

struct compl_dispatch {
    uv_loop_t *loop;
    struct cluster *cl;
    struct compl_dispatch_config cfg;
    struct slot *slots;
    size_t n_slots;
    uv_timer_t timer;
    bool stopping;
    unsigned pending; /* callbacks still to come (adapter deliveries, cursor commits) */
};

static void maybe_free(struct compl_dispatch *d)
{
    if (!d->stopping || d->pending > 0)
        return;
    for (size_t i = 0; i < d->n_slots; i++)
        pc_free(d->slots[i].taken);
    pc_free(d->slots);
    pc_free(d);
}

static void fail_round(struct slot *s, const char *why)
{
    s->st.failures++;
    snprintf(s->st.last_error, sizeof s->st.last_error, "%s", why);
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_START_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->next_ms = pc_mono_ms() + s->backoff_ms;
    pc_warn("compliance: adapter %s: %s; the events are kept and offered again in %u ms",
            s->a->name, why, s->backoff_ms);
}

static void cursor_stored(void *arg, const struct meta_result *res)
{
    struct slot *s = arg;
    struct compl_dispatch *d = s->d;
    d->pending--;
    s->busy = false;
    if (!d->stopping) {
        if (res->status != 0) {
            /* The adapter has the batch but the cursor did not move: the next round (here
             * or on a new leader) offers the same events again, same ids. */
            fail_round(s, res->errmsg[0] ? res->errmsg : pc_strerror(res->status));
        } else {
            s->st.delivered += s->batch_n;
            s->st.batches++;
            s->backoff_ms = 0;
            s->st.last_error[0] = '\0';
            s->next_ms = s->full ? 0 : pc_mono_ms() + d->cfg.interval_ms;
        }
    }
    maybe_free(d);
}

static void delivered(void *arg, int status, const char *why)
{
    struct slot *s = arg;
    struct compl_dispatch *d = s->d;
    d->pending--;
    if (d->stopping || status != 0) {
        s->busy = false;
        if (!d->stopping)
            fail_round(s, why != NULL ? why : pc_strerror(status));
        maybe_free(d);
        return;
    }
    struct meta_op op = {.kind = META_OP_COMPL_CURSOR, .ts_us = pc_wall_us()};
    snprintf(op.adapter, sizeof op.adapter, "%s", s->a->name);
    snprintf(op.actor, sizeof op.actor, "compliance");
    op.positions = s->taken;
    op.n_positions = s->n_taken;
    int rc = cluster_meta_submit(d->cl, &op, cursor_stored, s);
    if (rc == 0) {
        d->pending++;
    } else {
        s->busy = false;
        fail_round(s, "the metadata leader cannot store the cursor right now");
    }
}

/* Reads each group's next events and merges them: at every step the head with the
 * smallest time stamp, which keeps every group's (and so every room's) order. */
static size_t build_batch(struct compl_dispatch *d, struct slot *s, struct pc_arena *arena,
                          struct compl_rec **out)
{
    const struct meta *m = cluster_meta(d->cl);
    uint32_t groups = m->shard_count + 1;
    const struct meta_compl_adapter *ma = meta_compl_adapter(m, s->a->name);
    size_t max = d->cfg.batch_size;
    struct compl_rec **lists = pc_calloc(groups, sizeof *lists);
    size_t *len = pc_calloc(groups, sizeof *len), *head = pc_calloc(groups, sizeof *head);
    for (uint32_t g = 0; g < groups; g++) {
        struct meta_compl_pos after = ma != NULL && g < ma->n_pos ? ma->pos[g]
                                                                 : (struct meta_compl_pos){g, 0, 0};
        lists[g] = pc_arena_alloc(arena, max * sizeof *lists[g]);
        int n = compl_log_read(cluster_store(d->cl), g, after.index, after.n, max, arena, lists[g]);
        len[g] = n > 0 ? (size_t)n : 0;
    }
    struct compl_rec *batch = pc_arena_alloc(arena, max * sizeof *batch);
    size_t n = 0;
    while (n < max) {
        int best = -1;
        for (uint32_t g = 0; g < groups; g++)
            if (head[g] < len[g] &&
                (best < 0 || lists[g][head[g]].ev.ts_us < lists[best][head[best]].ev.ts_us))
                best = (int)g;
        if (best < 0)
            break;
        batch[n++] = lists[best][head[best]++];
    }
    /* The cursor of each group moves to the last of its events in the batch. */
    pc_free(s->taken);
    s->taken = pc_calloc(groups, sizeof *s->taken);
    s->n_taken = 0;
    for (uint32_t g = 0; g < groups; g++)
        if (head[g] > 0) {
            const struct compl_rec *r = &lists[g][head[g] - 1];
            s->taken[s->n_taken++] = (struct meta_compl_pos){g, r->index, r->n};
        }
    pc_free(lists);
    pc_free(len);
    pc_free(head);
    *out = batch;
    return n;
}

static void round_for(struct compl_dispatch *d, struct slot *s)
{
    struct pc_arena arena = {0};
    struct compl_rec *batch = NULL;
    size_t n = build_batch(d, s, &arena, &batch);
    if (n == 0) {
        s->full = false;
        s->next_ms = pc_mono_ms() + d->cfg.interval_ms;
        pc_arena_free(&arena);
        return;
    }
    s->busy = true;
    s->full = n == d->cfg.batch_size;
    s->batch_n = n;
    d->pending++;
    s->a->deliver(s->a, batch, n, delivered, s); /* serialises the batch before returning */
    pc_arena_free(&arena);
}

static void check(uv_timer_t *t)
{
    struct compl_dispatch *d = t->data;
    if (d->stopping || !cluster_meta_leader(d->cl) || !cluster_meta_ready(d->cl))
        return;
    uint64_t now = pc_mono_ms();
    for (size_t i = 0; i < d->n_slots; i++) {
        struct slot *s = &d->slots[i];
        if (!s->busy && now >= s->next_ms)
            round_for(d, s);
    }
}

struct compl_dispatch *compl_dispatch_start(uv_loop_t *loop, struct cluster *cl,
                                            const struct compl_dispatch_config *cfg,
                                            struct compl_adapter **adapters, size_t n)
{
    struct compl_dispatch *d = pc_calloc(1, sizeof *d);
    d->loop = loop;
    d->cl = cl;
    d->cfg = *cfg;
    if (d->cfg.batch_size == 0)
        d->cfg.batch_size = 1000;
    if (d->cfg.interval_ms == 0)
        d->cfg.interval_ms = 60000;
    d->slots = pc_calloc(n + 1, sizeof *d->slots);
    d->n_slots = n;
    for (size_t i = 0; i < n; i++) {
        d->slots[i].d = d;
        d->slots[i].a = adapters[i];
        d->slots[i].st.name = adapters[i]->name;
    }
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, check, CHECK_MS, CHECK_MS);
    for (size_t i = 0; i < n; i++)
        pc_notice("compliance: adapter %s ready (batches of up to %u events every %u ms, "
                  "delivered by the metadata leader)", adapters[i]->name, d->cfg.batch_size,
                  d->cfg.interval_ms);
    return d;
}

static void timer_closed(uv_handle_t *h)
{
    struct compl_dispatch *d = h->data;
    d->pending--;
    maybe_free(d);
}

void compl_dispatch_stop(struct compl_dispatch *d)
{
    d->stopping = true;
    d->pending++;
    uv_close((uv_handle_t *)&d->timer, timer_closed);
    /* An adapter with a delivery in flight calls delivered() before it is gone. */
    for (size_t i = 0; i < d->n_slots; i++)
        d->slots[i].a->free(d->slots[i].a);
}

size_t compl_dispatch_status(struct compl_dispatch *d, struct compl_adapter_status *out, size_t max)
{
    const struct meta *m = cluster_meta(d->cl);
    uint64_t now = pc_mono_ms();
    for (size_t i = 0; i < d->n_slots && i < max; i++) {
        struct slot *s = &d->slots[i];
        const struct meta_compl_adapter *ma = meta_compl_adapter(m, s->a->name);
        uint64_t backlog = 0;
        for (uint32_t g = 0; g <= m->shard_count; g++) {
            struct meta_compl_pos after = ma != NULL && g < ma->n_pos ? ma->pos[g]
                                                                     : (struct meta_compl_pos){g, 0, 0};
            backlog += compl_log_count(cluster_store(d->cl), g, after.index, after.n, 10000000);
        }
        out[i] = s->st;
        out[i].active = cluster_meta_leader(d->cl);
        out[i].busy = s->busy;
        out[i].backlog = backlog;
        out[i].retry_in_ms = s->backoff_ms && s->next_ms > now ? (unsigned)(s->next_ms - now) : 0;
    }
    return d->n_slots;
}

uint64_t compl_dispatch_log_size(struct compl_dispatch *d, uint64_t limit)
{
    return compl_log_count_all(cluster_store(d->cl), limit);
}
