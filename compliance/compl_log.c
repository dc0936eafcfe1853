/* Reading the compliance column family: keys (group, index, n), values compl_event_encode. */
#include "compliance/compl_log.h"

#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "storage/store.h"
#include "storage/store_keys.h"

static struct store_iter *open_after(struct store *st, uint32_t group, uint64_t after_index,
                                     uint32_t after_n)
{
    uint8_t lo[STORE_COMPL_KEY_LEN], hi[STORE_COMPL_KEY_LEN];
    if (after_index == 0)
        store_key_compl(lo, group, 0, 0);
    else if (after_n == UINT32_MAX)
        store_key_compl(lo, group, after_index + 1, 0);
    else
        store_key_compl(lo, group, after_index, after_n + 1);
    if (group == UINT32_MAX)
        return store_iter_new(st, STORE_CF_COMPL, lo, sizeof lo, NULL, 0);
    store_key_compl(hi, group + 1, 0, 0);
    return store_iter_new(st, STORE_CF_COMPL, lo, sizeof lo, hi, sizeof hi);
}

int compl_log_read(struct store *st, uint32_t group, uint64_t after_index, uint32_t after_n,
                   size_t max, struct pc_arena *arena, struct compl_rec *out)
{
    struct store_iter *it = open_after(st, group, after_index, after_n);
    size_t n = 0;
    for (store_iter_first(it); store_iter_valid(it) && n < max; store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        if (k.len != STORE_COMPL_KEY_LEN)
            continue;
        struct compl_rec *r = &out[n];
        store_key_compl_parse((const uint8_t *)k.p, &r->group, &r->index, &r->n);
        compl_event_id(r->group, r->index, r->n, r->id);
        if (compl_event_decode(v.p, v.len, &r->ev, arena) != 0) {
            pc_error("compliance: event %s is corrupt; skipped", r->id);
            continue;
        }
        n++;
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    return rc != 0 ? rc : (int)n;
}

size_t compl_log_count(struct store *st, uint32_t group, uint64_t after_index, uint32_t after_n,
                       size_t limit)
{
    struct store_iter *it = open_after(st, group, after_index, after_n);
    size_t n = 0;
    for (store_iter_first(it); store_iter_valid(it) && n < limit; store_iter_next(it))
        n++;
    store_iter_free(it);
    return n;
}

uint64_t compl_log_count_all(struct store *st, uint64_t limit)
{
    struct store_iter *it = store_iter_new(st, STORE_CF_COMPL, NULL, 0, NULL, 0);
    uint64_t n = 0;
    for (store_iter_first(it); store_iter_valid(it) && n < limit; store_iter_next(it))
        n++;
    store_iter_free(it);
    return n;
}
