/* Applied indexes and the compliance section of FSM snapshots. */
#include "cluster/fsm_util.h"

#include <string.h>
#include <unistd.h>

#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "compliance/compl_event.h"
#include "storage/store.h"
#include "storage/store_keys.h"

uint64_t fsm_stored_applied(struct store *st, uint32_t group)
{
    uint8_t k[8];
    struct pc_buf v = {0};
    uint64_t n = 0;
    if (store_get(st, STORE_CF_STATE, k, store_key_applied(k, group), &v) == 0 && v.len == 8)
        n = pc_be64_read((const uint8_t *)v.data);
    pc_buf_free(&v);
    return n;
}

void fsm_put_applied(struct store_batch *b, uint32_t group, uint64_t index)
{
    uint8_t k[8], v[8];
    pc_be64_write(v, index);
    store_batch_put(b, STORE_CF_STATE, k, store_key_applied(k, group), v, 8);
}

size_t fsm_prefix_end(const uint8_t *prefix, size_t len, uint8_t *out)
{
    memcpy(out, prefix, len);
    while (len > 0) {
        if (out[len - 1] != 0xff) {
            out[len - 1]++;
            return len;
        }
        len--;
    }
    return 0;
}

int fsm_compl_snapshot(struct store *st, uint32_t group, struct pc_buf *out)
{
    uint8_t lo[4], hi[4];
    pc_be32_write(lo, group);
    size_t hlen = fsm_prefix_end(lo, 4, hi);
    struct store_iter *it = store_iter_new(st, STORE_CF_COMPL, lo, 4, hlen ? hi : NULL, hlen);
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        pc_bin_put_u8(out, 1);
        pc_bin_put_bytes(out, k.p, k.len);
        pc_bin_put_bytes(out, v.p, v.len);
    }
    pc_bin_put_u8(out, 0);
    int rc = store_iter_status(it);
    store_iter_free(it);
    return rc;
}

int fsm_compl_restore(struct pc_bin_reader *r, uint32_t group, struct store_batch *b)
{
    uint8_t lo[4], hi[STORE_COMPL_KEY_LEN + 1];
    pc_be32_write(lo, group);
    size_t hlen = fsm_prefix_end(lo, 4, hi);
    if (hlen == 0) { /* group 0xffffffff: past every 16-byte key of it */
        memset(hi, 0xff, sizeof hi);
        hlen = sizeof hi;
    }
    store_batch_delete_range(b, STORE_CF_COMPL, lo, 4, hi, hlen);
    struct pc_arena arena = {0};
    int rc = 0;
    for (;;) {
        uint8_t more = pc_bin_get_u8(r);
        if (r->err != 0 || more == 0)
            break;
        struct pc_str k = pc_bin_get_bytes(r), v = pc_bin_get_bytes(r);
        struct compl_event ev;
        uint32_t g;
        uint64_t index;
        uint32_t n;
        if (r->err != 0 || more != 1 || k.len != STORE_COMPL_KEY_LEN) {
            rc = PC_ECORRUPT;
            break;
        }
        store_key_compl_parse((const uint8_t *)k.p, &g, &index, &n);
        if (g != group || compl_event_decode(v.p, v.len, &ev, &arena) != 0) {
            rc = PC_ECORRUPT;
            break;
        }
        store_batch_put(b, STORE_CF_COMPL, k.p, k.len, v.p, v.len);
        /* One event at a time: the arena would otherwise hold every decoded copy. */
        pc_arena_free(&arena);
    }
    pc_arena_free(&arena);
    if (r->err != 0)
        rc = PC_ECORRUPT;
    return rc;
}

int fsm_snapshot_hand_over(int rc, enum entry_kind kind, struct pc_buf *body,
                           struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct raft_buffer out = {0};
    if (rc == 0)
        rc = entry_encode(kind, body->data, body->len, &out);
    pc_buf_free(body);
    if (rc != 0)
        return rc == PC_ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL) {
        raft_free(out.base);
        return RAFT_NOMEM;
    }
    (*bufs)[0] = out;
    *n_bufs = 1;
    return 0;
}

int fsm_snapshot_open(const void *p, size_t len, enum entry_kind kind, uint8_t version,
                      struct pc_bin_reader *r, uint64_t *applied)
{
    enum entry_kind got;
    const void *payload;
    size_t plen;
    if (entry_decode(p, len, &got, &payload, &plen) != 0 || got != kind)
        return PC_ECORRUPT;
    pc_bin_reader_init(r, payload, plen);
    if (pc_bin_get_u8(r) != version)
        return PC_ECORRUPT;
    *applied = pc_bin_get_uv(r);
    return r->err != 0 ? PC_ECORRUPT : 0;
}

void fsm_store_failed(const char *what, uint64_t index, int rc)
{
    pc_error("%s: storing applied entry %llu failed (%s): the node stops now, since libraft "
             "cannot take a failed apply back; the raft log keeps the entry and the next start "
             "applies it again.%s", what, (unsigned long long)index, pc_strerror(rc),
             rc == PC_ENOSPC ? " Free space on the data disk ([node] min_free_space): the "
                               "node waits for it at start, then catches up" : "");
    _exit(75); /* the log line went out with one write(): nothing buffered to lose */
}
