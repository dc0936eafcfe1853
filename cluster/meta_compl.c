/* Compliance cursors in the metadata: per registered adapter and raft group, the last
 * compliance event the adapter has taken. Advancing them is a metadata operation, and the
 * same apply deletes, on every replica, the events that every registered adapter has taken
 * (DESIGN.md §3.6: an event is deleted only after the adapters took it). */
#include <string.h>

#include "cluster/meta_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "storage/store.h"
#include "storage/store_keys.h"

static bool pos_after(const struct meta_compl_pos *a, const struct meta_compl_pos *b)
{
    return a->index > b->index || (a->index == b->index && a->n > b->n);
}

const struct meta_compl_adapter *meta_compl_adapter(const struct meta *m, const char *name)
{
    for (size_t i = 0; i < m->n_adapters; i++)
        if (strcmp(m->adapters[i].name, name) == 0)
            return &m->adapters[i];
    return NULL;
}

static struct meta_compl_adapter *adapter_get(struct meta *m, const char *name, bool create)
{
    struct meta_compl_adapter *a = (struct meta_compl_adapter *)meta_compl_adapter(m, name);
    if (a != NULL || !create || m->n_adapters >= META_MAX_ADAPTERS)
        return a;
    a = &m->adapters[m->n_adapters++];
    memset(a, 0, sizeof *a);
    strncpy(a->name, name, sizeof a->name - 1);
    return a;
}

static struct meta_compl_pos *pos_slot(struct meta_compl_adapter *a, uint32_t group)
{
    if (group >= a->n_pos) {
        size_t n = (size_t)group + 1;
        a->pos = pc_realloc(a->pos, n * sizeof *a->pos);
        for (size_t g = a->n_pos; g < n; g++)
            a->pos[g] = (struct meta_compl_pos){(uint32_t)g, 0, 0};
        a->n_pos = n;
    }
    return &a->pos[group];
}

struct meta_compl_pos meta_compl_taken(const struct meta *m, uint32_t group)
{
    struct meta_compl_pos min = {group, 0, 0};
    for (size_t i = 0; i < m->n_adapters; i++) {
        const struct meta_compl_adapter *a = &m->adapters[i];
        struct meta_compl_pos p = group < a->n_pos ? a->pos[group] : min;
        if (i == 0 || pos_after(&min, &p))
            min = p;
    }
    if (m->n_adapters == 0)
        min = (struct meta_compl_pos){group, 0, 0};
    min.group = group;
    return min;
}

/* Deletes the group's events up to what every adapter took: a range from the group's
 * start, so that events a snapshot install brought back are swept too. */
void meta_compl_delete_taken(const struct meta *m, uint32_t group, struct store_batch *b)
{
    struct meta_compl_pos t = meta_compl_taken(m, group);
    if (t.index == 0)
        return;
    uint8_t lo[STORE_COMPL_KEY_LEN], hi[STORE_COMPL_KEY_LEN];
    store_key_compl(lo, group, 0, 0);
    if (t.n == UINT32_MAX)
        store_key_compl(hi, group, t.index + 1, 0);
    else
        store_key_compl(hi, group, t.index, t.n + 1);
    store_batch_delete_range(b, STORE_CF_COMPL, lo, sizeof lo, hi, sizeof hi);
}

/* True when the group's oldest stored event is one every adapter took already. */
static bool oldest_taken(const struct meta *m, struct store *st, uint32_t group)
{
    struct meta_compl_pos t = meta_compl_taken(m, group);
    if (t.index == 0)
        return false;
    uint8_t lo[STORE_COMPL_KEY_LEN], hi[STORE_COMPL_KEY_LEN];
    store_key_compl(lo, group, 0, 0);
    store_key_compl(hi, group + 1, 0, 0);
    struct store_iter *it = store_iter_new(st, STORE_CF_COMPL, lo, sizeof lo,
                                           group == UINT32_MAX ? NULL : hi, sizeof hi);
    store_iter_first(it);
    bool taken = false;
    if (store_iter_valid(it)) {
        struct pc_str k = store_iter_key(it);
        struct meta_compl_pos first = {group, 0, 0};
        if (k.len == STORE_COMPL_KEY_LEN) {
            store_key_compl_parse((const uint8_t *)k.p, &first.group, &first.index, &first.n);
            taken = !pos_after(&first, &t);
        }
    }
    store_iter_free(it);
    return taken;
}

/* The cursor's apply deletes what the adapters took as it stood on this replica then. A
 * replica whose shard group lags its metadata group applies that shard's entries (or
 * installs its snapshot) later, and writes events the adapters took already; nothing
 * would delete them until the cursor moves again, maybe never (an idle group). This local
 * sweep catches them: one seek per group to its oldest event, and a range delete only
 * where that one is taken. Not replicated, and needs not be: the dispatcher never reads
 * at or below a cursor, so what is deleted here is dead on every replica. */
unsigned meta_compl_sweep(const struct meta *m, struct store *st)
{
    if (m->n_adapters == 0)
        return 0;
    struct store_batch *b = NULL;
    unsigned swept = 0;
    for (uint32_t g = 0; g <= m->shard_count; g++) {
        if (!oldest_taken(m, st, g))
            continue;
        if (b == NULL)
            b = store_batch_new(st);
        meta_compl_delete_taken(m, g, b);
        swept++;
    }
    if (b != NULL) {
        int rc = store_write(st, b, false);
        if (rc != 0) {
            /* Tried again at the next sweep. A full disk (its write gate closed) is said
             * loudly by the disk guard already: not once a second here too. */
            if (rc != PC_ENOSPC)
                pc_warn("compliance: could not delete events the adapters took: %s",
                        pc_strerror(rc));
            swept = 0;
        }
        store_batch_free(b);
    }
    return swept;
}

static void put_cursor(struct store_batch *b, const char *adapter, const struct meta_compl_pos *p)
{
    uint8_t k[STORE_KEY_MAX], v[12];
    pc_be64_write(v, p->index);
    pc_be32_write(v + 8, p->n);
    store_batch_put(b, STORE_CF_META, k, store_key_cursor(k, adapter, p->group), v, sizeof v);
}

void meta_apply_compl_cursor(struct meta *m, const struct meta_op *op, struct store_batch *b,
                             struct meta_result *res)
{
    if (op->adapter[0] == '\0') {
        meta_fail(res, PC_EINVAL, "%s", "a compliance cursor needs an adapter name");
        return;
    }
    struct meta_compl_adapter *a = adapter_get(m, op->adapter, true);
    if (a == NULL) {
        meta_fail(res, PC_ETOOBIG, "at most %d compliance adapters; forget one first",
                  META_MAX_ADAPTERS);
        return;
    }
    if (a->n_pos == 0) {
        /* Registration: a position for group 0 makes the adapter known after a reload. */
        put_cursor(b, a->name, pos_slot(a, 0));
    }
    for (size_t i = 0; i < op->n_positions; i++) {
        const struct meta_compl_pos *p = &op->positions[i];
        if (p->group > m->shard_count)
            continue; /* no such group: ignore rather than grow without bound */
        struct meta_compl_pos *cur = pos_slot(a, p->group);
        if (!pos_after(p, cur))
            continue; /* cursors only move forward (a duplicate confirmation is harmless) */
        *cur = *p;
        put_cursor(b, a->name, cur);
        meta_compl_delete_taken(m, p->group, b);
    }
}

void meta_apply_compl_forget(struct meta *m, const struct meta_op *op, struct store_batch *b,
                             struct meta_result *res)
{
    struct meta_compl_adapter *a = adapter_get(m, op->adapter, false);
    if (a == NULL) {
        meta_fail(res, PC_ENOTFOUND, "no compliance adapter '%s' is registered", op->adapter);
        return;
    }
    size_t n_pos = a->n_pos;
    for (size_t g = 0; g < n_pos; g++) {
        uint8_t k[STORE_KEY_MAX];
        store_batch_delete(b, STORE_CF_META, k, store_key_cursor(k, a->name, (uint32_t)g));
    }
    pc_free(a->pos);
    *a = m->adapters[--m->n_adapters];
    for (uint32_t g = 0; g <= m->shard_count; g++)
        meta_compl_delete_taken(m, g, b);
}

int meta_load_compl_cursor(struct meta *m, struct pc_str key, struct pc_str val)
{
    const uint8_t *k = (const uint8_t *)key.p;
    const uint8_t *zero = memchr(k + 1, 0, key.len - 1);
    if (zero == NULL || (size_t)(k + key.len - zero) != 5 || val.len != 12)
        return PC_ECORRUPT;
    char name[64];
    size_t nl = (size_t)(zero - (k + 1));
    if (nl == 0 || nl >= sizeof name)
        return PC_ECORRUPT;
    memcpy(name, k + 1, nl);
    name[nl] = '\0';
    struct meta_compl_adapter *a = adapter_get(m, name, true);
    if (a == NULL)
        return PC_ECORRUPT;
    uint32_t group = pc_be32_read(zero + 1);
    if (group > 65536)
        return PC_ECORRUPT;
    struct meta_compl_pos *p = pos_slot(a, group);
    p->index = pc_be64_read((const uint8_t *)val.p);
    p->n = pc_be32_read((const uint8_t *)val.p + 8);
    return 0;
}

void meta_free_compl(struct meta *m)
{
    for (size_t i = 0; i < m->n_adapters; i++)
        pc_free(m->adapters[i].pos);
    m->n_adapters = 0;
}
