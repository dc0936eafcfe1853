/* The metadata group's raft_fsm: apply into RocksDB with the applied index in the same batch,
 * whole-state snapshots (metadata is small), atomic restore. */
#include "cluster/meta_fsm.h"

#include <stdio.h>
#include <string.h>
#include <sys/queue.h>

#include "cluster/entry.h"
#include "cluster/fsm_util.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "storage/store.h"
#include "storage/store_keys.h"

enum { META_GROUP = 0, SNAP_V1 = 1 };

/* A result waiting for the proposer's callback; the pointer handed to raft is &res. */
struct result_slot {
    struct meta_result res; /* first: the slot is found back from the result pointer */
    uint64_t index;
    TAILQ_ENTRY(result_slot) link;
};

struct meta_fsm {
    int last_store_rc; /* of the last store write in apply (fsm_store_failed says it) */
    struct raft_fsm fsm;
    struct meta_fsm_config cfg;
    struct raft *raft;
    struct meta meta;
    struct store_batch *batch;
    TAILQ_HEAD(, result_slot) results;
};

static int reload(struct meta_fsm *f)
{
    meta_free(&f->meta);
    int rc = meta_load(&f->meta, f->cfg.st);
    /* meta_load starts from zero, and the mask is configuration, not stored state. */
    f->meta.compl_mask = f->cfg.compl_mask;
    return rc;
}

int meta_fsm_apply_entry(struct meta_fsm *f, uint64_t index, const void *p, size_t len,
                         struct meta_result *res)
{
    struct meta_result scratch;
    if (res == NULL)
        res = &scratch;
    memset(res, 0, sizeof *res);
    if (index <= f->meta.applied_index)
        return FSM_SKIPPED;
    enum entry_kind kind;
    const void *payload;
    size_t plen;
    struct meta_op op;
    bool ok = entry_decode(p, len, &kind, &payload, &plen) == 0 && kind == ENTRY_META_OP &&
              meta_op_decode(payload, plen, &op) == 0;
    store_batch_clear(f->batch);
    if (ok) {
        meta_apply(&f->meta, index, &op, f->batch, res);
        meta_op_clear(&op);
    } else {
        /* Every replica holds the same committed bytes, so every replica skips the entry the
         * same way: state stays identical and the group keeps going. */
        pc_error("meta: entry %llu is not a valid metadata operation; skipped",
                 (unsigned long long)index);
        res->status = PC_ECORRUPT;
        snprintf(res->errmsg, sizeof res->errmsg, "corrupt metadata entry");
        f->meta.applied_index = index;
        fsm_put_applied(f->batch, META_GROUP, index);
    }
    /* No fsync: raft's log is durable and replays what the store lost; the applied index
     * in the same batch says where that replay starts. */
    int rc = store_write(f->cfg.st, f->batch, false);
    f->last_store_rc = rc;
    store_batch_clear(f->batch);
    if (rc != 0) {
        if (rc != PC_ENOSPC) /* the disk guard holds writes back and said so once */
            pc_error("meta: storing entry %llu failed: %s", (unsigned long long)index,
                     pc_strerror(rc));
        /* Memory already holds the change: make it match the store again, so that a retry
         * of the same entry applies it once. */
        if (reload(f) != 0)
            pc_error("meta: metadata could not be reloaded after a failed write");
        return PC_EIO;
    }
    if (res->status == 0 && ok && f->cfg.changed != NULL)
        f->cfg.changed(f->cfg.ctx, index);
    return FSM_APPLIED;
}

/* ---- raft_fsm callbacks --------------------------------------------------------------------- */

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct meta_fsm *f = rf->data;
    *result = NULL;
    if (f->raft == NULL) {
        pc_error("meta: apply before meta_fsm_attach");
        return RAFT_INVALID;
    }
    uint64_t index = raft_last_applied(f->raft) + 1;
    struct meta_result res;
    int rc = meta_fsm_apply_entry(f, index, buf->base, buf->len, &res);
    if (rc < 0)
        fsm_store_failed("meta", index, f->last_store_rc ? f->last_store_rc : PC_EIO);
    if (rc == FSM_APPLIED && raft_state(f->raft) == RAFT_LEADER) {
        struct result_slot *s = pc_malloc(sizeof *s);
        s->res = res;
        s->index = index;
        TAILQ_INSERT_TAIL(&f->results, s, link);
        *result = &s->res;
    }
    return 0;
}

void meta_fsm_result_release(struct meta_fsm *f, struct meta_result *res)
{
    if (res == NULL)
        return;
    struct result_slot *s;
    uint64_t index = ((struct result_slot *)res)->index; /* read before the slot is freed */
    /* Raft fires apply callbacks in index order, so a result older than this one whose
     * callback has not come by now never will. */
    while ((s = TAILQ_FIRST(&f->results)) != NULL && s->index <= index) {
        TAILQ_REMOVE(&f->results, s, link);
        pc_free(s);
    }
}

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct meta_fsm *f = rf->data;
    /* Raft may drop log entries up to this snapshot once it is stored: everything applied
     * so far must be durable in RocksDB first, or a crash would lose it for good. */
    int rc = store_sync(f->cfg.st);
    if (rc != 0)
        return RAFT_IOERR;
    struct pc_buf b = {0};
    pc_bin_put_u8(&b, SNAP_V1);
    pc_bin_put_uv(&b, f->meta.applied_index);
    struct store_iter *it = store_iter_new(f->cfg.st, STORE_CF_META, NULL, 0, NULL, 0);
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        pc_bin_put_u8(&b, 1);
        pc_bin_put_bytes(&b, k.p, k.len);
        pc_bin_put_bytes(&b, v.p, v.len);
    }
    pc_bin_put_u8(&b, 0);
    rc = store_iter_status(it);
    store_iter_free(it);
    if (rc == 0)
        rc = fsm_compl_snapshot(f->cfg.st, META_GROUP, &b);
    return fsm_snapshot_hand_over(rc, ENTRY_META_SNAP, &b, bufs, n_bufs);
}

/* Parses a snapshot fully into a batch before anything is written, so a corrupt snapshot
 * changes nothing. */
static int restore_bytes(struct meta_fsm *f, const void *p, size_t len)
{
    struct pc_bin_reader r;
    uint64_t applied;
    if (fsm_snapshot_open(p, len, ENTRY_META_SNAP, SNAP_V1, &r, &applied) != 0)
        return PC_ECORRUPT;
    /* At start raft restores its last snapshot, but the store is usually past it already
     * (it holds every applied entry): restoring would only move it backwards. */
    if (applied <= f->meta.applied_index)
        return 0;
    struct store_batch *b = f->batch;
    store_batch_clear(b);
    /* Every meta key starts with an ASCII tag byte: ["", 0xff) is the whole family. */
    static const uint8_t all_end[1] = {0xff};
    store_batch_delete_range(b, STORE_CF_META, "", 0, all_end, 1);
    for (;;) {
        uint8_t more = pc_bin_get_u8(&r);
        if (r.err != 0 || more == 0)
            break;
        struct pc_str k = pc_bin_get_bytes(&r), v = pc_bin_get_bytes(&r);
        if (more != 1 || k.len == 0 || k.len > STORE_KEY_MAX || (uint8_t)k.p[0] == 0xff)
            r.err = PC_ECORRUPT;
        if (r.err != 0)
            break;
        store_batch_put(b, STORE_CF_META, k.p, k.len, v.p, v.len);
    }
    int rc = r.err != 0 ? PC_ECORRUPT : fsm_compl_restore(&r, META_GROUP, b);
    if (rc == 0 && !pc_bin_at_end(&r))
        rc = PC_ECORRUPT;
    if (rc == 0) {
        fsm_put_applied(b, META_GROUP, applied);
        /* Synced: raft considers the snapshot installed once this returns. */
        rc = store_write(f->cfg.st, b, true);
    }
    store_batch_clear(b);
    if (rc != 0)
        return rc;
    /* The records in the store are new; the in-memory indexes are rebuilt from them. A
     * corrupt record in a snapshot that decoded fine is reported like a corrupt store. */
    rc = reload(f);
    if (rc != 0)
        return rc;
    if (f->cfg.changed != NULL)
        f->cfg.changed(f->cfg.ctx, applied);
    return 0;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct meta_fsm *f = rf->data;
    int rc = restore_bytes(f, buf->base, buf->len);
    if (rc != 0) {
        pc_error("meta: cannot install snapshot: %s", pc_strerror(rc));
        return rc == PC_ECORRUPT ? RAFT_CORRUPT : RAFT_IOERR; /* raft frees buf */
    }
    raft_free(buf->base); /* on success the FSM owns it */
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

int meta_fsm_create(const struct meta_fsm_config *cfg, struct meta_fsm **out)
{
    struct meta_fsm *f = pc_calloc(1, sizeof *f);
    f->cfg = *cfg;
    TAILQ_INIT(&f->results);
    int rc = meta_load(&f->meta, cfg->st);
    if (rc != 0) {
        pc_free(f);
        *out = NULL;
        return rc;
    }
    f->meta.compl_mask = cfg->compl_mask;
    f->batch = store_batch_new(cfg->st);
    f->fsm.version = 2;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.restore = fsm_restore;
    *out = f;
    return 0;
}

void meta_fsm_destroy(struct meta_fsm *f)
{
    if (f == NULL)
        return;
    struct result_slot *s;
    while ((s = TAILQ_FIRST(&f->results)) != NULL) {
        TAILQ_REMOVE(&f->results, s, link);
        pc_free(s);
    }
    store_batch_free(f->batch);
    meta_free(&f->meta);
    pc_free(f);
}

struct raft_fsm *meta_fsm_raft(struct meta_fsm *f)
{
    return &f->fsm;
}

void meta_fsm_attach(struct meta_fsm *f, struct raft *r)
{
    f->raft = r;
}

const struct meta *meta_fsm_meta(const struct meta_fsm *f)
{
    return &f->meta;
}

int meta_fsm_entry(const struct meta_op *op, struct raft_buffer *out)
{
    struct pc_buf b = {0};
    meta_op_encode(op, &b);
    int rc = entry_encode(ENTRY_META_OP, b.data, b.len, out);
    pc_buf_free(&b);
    return rc;
}
