/* Back-fill after a shard snapshot install: store the messages a peer sent for the ranges
 * recorded at restore ('b' records, storage/KEYS.md) and shrink those records. */
#include <string.h>

#include "cluster/fsm_util.h"
#include "cluster/shard_fsm.h"
#include "cluster/shard_fsm_int.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "storage/store.h"
#include "storage/store_keys.h"

int shard_backfill_ranges(struct shard_fsm *f, uint64_t room_no, struct shard_range **out,
                          size_t *n)
{
    uint8_t lo[24], hi[24];
    store_key_backfill(lo, f->cfg.group, room_no, 0);
    size_t hlen = fsm_prefix_end(lo, 13, hi);
    struct store_iter *it = store_iter_new(f->cfg.st, STORE_CF_STATE, lo, 13, hi, hlen);
    struct shard_range *v = NULL;
    size_t cnt = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), val = store_iter_value(it);
        if (k.len != 21 || val.len != 8)
            continue;
        v = pc_realloc(v, (cnt + 1) * sizeof *v);
        v[cnt].from = pc_be64_read((const uint8_t *)k.p + 13);
        v[cnt].to = pc_be64_read((const uint8_t *)val.p);
        cnt++;
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    *out = v;
    *n = cnt;
    return rc;
}

/* First seq in [from, to] that is not stored (to + 1 when none is missing). */
static uint64_t first_missing(struct shard_fsm *f, uint64_t room_no, uint64_t from, uint64_t to)
{
    uint8_t lo[STORE_MSG_KEY_LEN], hi[STORE_MSG_KEY_LEN];
    store_key_msg(lo, room_no, from);
    store_key_msg(hi, room_no, to + 1);
    struct store_iter *it = store_iter_new(f->cfg.st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    uint64_t next = from;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        uint64_t room, seq;
        if (k.len != STORE_MSG_KEY_LEN)
            break;
        store_key_msg_parse((const uint8_t *)k.p, &room, &seq);
        if (seq != next)
            break;
        next++;
    }
    if (store_iter_status(it) != 0)
        next = from; /* unknown: keep the whole range pending */
    store_iter_free(it);
    return next;
}

int shard_fsm_backfill_store(struct shard_fsm *f, uint64_t room_no, const struct room_msg *msgs,
                             size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (msgs[i].room_no != room_no || msgs[i].author == NULL || msgs[i].text == NULL)
            return PC_EINVAL;
    struct shard_range *ranges;
    size_t nr;
    int rc = shard_backfill_ranges(f, room_no, &ranges, &nr);
    struct roomlog_room *room = roomlog_room(&f->log, room_no);
    struct store_batch *b = store_batch_new(f->cfg.st);
    size_t puts = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Only missing seqs: a seq outside every range is stored here already, and the same
         * seq holds the same message on every replica anyway. */
        bool wanted = false;
        for (size_t j = 0; j < nr && !wanted; j++)
            wanted = msgs[i].seq >= ranges[j].from && msgs[i].seq <= ranges[j].to;
        if (!wanted || msgs[i].seq <= room->floor)
            continue; /* purged here since the peer read it */
        /* An edit applied here before the message arrived wins over the peer's copy (the
         * peer may not have applied it yet). */
        struct room_msg m = msgs[i];
        struct pc_buf e = {0};
        shard_edit_overlay(f, &m, &e);
        uint8_t k[STORE_MSG_KEY_LEN];
        struct pc_buf v = {0};
        store_key_msg(k, room_no, m.seq);
        roomlog_encode_msg_flags(m.ts_us, m.author, m.text, m.flags, &v);
        pc_buf_free(&e);
        store_batch_put(b, STORE_CF_MSGS, k, sizeof k, v.data, v.len);
        pc_buf_free(&v);
        puts++;
    }
    /* Messages first, records after: both unsynced, but the WAL keeps their order, so a
     * crash can lose the record update (refetch, harmless) but never keep it without the
     * messages. */
    if (rc == 0 && puts > 0)
        rc = store_write(f->cfg.st, b, false);
    store_batch_clear(b);
    size_t pending = 0;
    for (size_t j = 0; rc == 0 && j < nr; j++) {
        uint64_t next = first_missing(f, room_no, ranges[j].from, ranges[j].to);
        if (next <= ranges[j].to)
            pending++;
        if (next == ranges[j].from)
            continue;
        uint8_t k[24], v[8];
        store_batch_delete(b, STORE_CF_STATE, k,
                           store_key_backfill(k, f->cfg.group, room_no, ranges[j].from));
        if (next <= ranges[j].to) {
            pc_be64_write(v, ranges[j].to);
            store_batch_put(b, STORE_CF_STATE, k, store_key_backfill(k, f->cfg.group, room_no, next),
                            v, 8);
        }
    }
    if (rc == 0 && store_batch_count(b) > 0)
        rc = store_write(f->cfg.st, b, false);
    store_batch_free(b);
    pc_free(ranges);
    return rc != 0 ? rc : (int)pending;
}

int shard_fsm_backfill_list(struct shard_fsm *f,
                            void (*cb)(void *ctx, uint64_t room_no, uint64_t from_seq,
                                       uint64_t to_seq),
                            void *ctx)
{
    uint8_t lo[24], hi[24];
    store_key_backfill(lo, f->cfg.group, 0, 0);
    size_t hlen = fsm_prefix_end(lo, 5, hi);
    struct store_iter *it = store_iter_new(f->cfg.st, STORE_CF_STATE, lo, 5, hi, hlen);
    int count = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        if (k.len != 21 || v.len != 8)
            continue;
        cb(ctx, pc_be64_read((const uint8_t *)k.p + 5), pc_be64_read((const uint8_t *)k.p + 13),
           pc_be64_read((const uint8_t *)v.p));
        count++;
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    return rc != 0 ? rc : count;
}
