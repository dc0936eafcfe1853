/* A shard group's raft_fsm: posts get their room seq at apply, message + counter + compliance
 * event + applied index in one batch; snapshots carry counters, not history (DESIGN.md §2),
 * and a replica that installs one back-fills the missing messages from a peer
 * (shard_backfill.c). */
#include "cluster/shard_fsm.h"
#include "cluster/shard_fsm_int.h"

#include <string.h>

#include "cluster/entry.h"
#include "cluster/fsm_util.h"
#include "cluster/roomfile.h"
#include "cluster/roomlog.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "storage/store.h"
#include "storage/store_keys.h"

/* V2 adds each room's purge floor, the group's message edits and its rooms' file records
 * (small; the files' bytes are fetched from a peer afterwards, like messages). */
enum { SNAP_V1 = 1, SNAP_V2 = 2, MAX_SNAP_ROOMS = 1 << 24 };


static void put_room_last(struct store_batch *b, uint64_t room_no, uint64_t last)
{
    uint8_t k[16], v[8];
    pc_be64_write(v, last);
    store_batch_put(b, STORE_CF_STATE, k, store_key_room_last(k, room_no), v, 8);
}

static void put_shard_room(struct store_batch *b, uint32_t group, uint64_t room_no)
{
    uint8_t k[16];
    store_batch_put(b, STORE_CF_STATE, k, store_key_shard_room(k, group, room_no), "", 0);
}

/* ---- apply -------------------------------------------------------------------------------------- */

static void add_post(struct shard_fsm *f, uint64_t index, uint32_t n, const char *node,
                     struct shard_op *op)
{
    struct roomlog_room *r = roomlog_room(&f->log, op->room_no);
    /* The room's first message makes it one of this shard's rooms, which is what the
     * snapshot lists; written once, in the batch of that message. */
    if (r->last == 0)
        put_shard_room(f->batch, f->cfg.group, op->room_no);
    op->seq = roomlog_append(&f->log, f->batch, op->room_no, op->ts_us, op->author, op->text);
    if (op->has_file) { /* the file exists for readers from this message on */
        struct room_file file = {.room_no = op->room_no, .file_no = op->file_no,
                                 .name = op->file_name, .uploader = op->author,
                                 .sha256 = op->file_sha, .size = op->file_size,
                                 .chunks = op->file_chunks, .ts_us = op->ts_us, .seq = op->seq};
        roomfile_put(f->batch, &file);
    }
    struct compl_event ev = {.type = op->has_file ? COMPL_FILEUPLOAD : COMPL_CHAT,
                             .ts_us = op->ts_us, .node = node,
                             .user = op->author, .room_no = op->room_no,
                             .room_guid = op->room_guid, .room_name = op->room_name,
                             .seq = op->seq, .content = op->has_file ? op->file_name : op->text};
    compl_event_put(f->batch, f->cfg.compl_mask, f->cfg.group, index, n, &ev);
}

/* FILE_DROP is the leader's guess that an upload was abandoned; a message that announced
 * the file since (stored, or earlier in this very entry) proves it wrong. Every replica
 * reads the same answer: records are written only by applying this log. */
static bool file_announced(struct shard_fsm *f, const struct shard_op *ops, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (ops[j].kind == SHARD_OP_POST && ops[j].has_file && ops[j].room_no == ops[i].room_no &&
            ops[j].file_no == ops[i].file_no)
            return true;
    uint8_t k[STORE_KEY_MAX];
    struct pc_buf v = {0};
    int rc = store_get(f->cfg.st, STORE_CF_FILES, k, store_key_file(k, ops[i].room_no, ops[i].file_no), &v);
    pc_buf_free(&v);
    return rc != PC_ENOTFOUND;
}

int shard_fsm_apply_entry(struct shard_fsm *f, uint64_t index, const void *p, size_t len)
{
    if (index <= f->applied)
        return FSM_SKIPPED;
    struct pc_arena arena = {0};
    enum entry_kind kind;
    const void *payload;
    size_t plen;
    const char *node = "";
    struct shard_op *ops = NULL;
    size_t n = 0;
    bool ok = entry_decode(p, len, &kind, &payload, &plen) == 0 && kind == ENTRY_SHARD_OPS &&
              shard_ops_decode(payload, plen, &arena, &node, &ops, &n) == 0;
    if (!ok) {
        /* Every replica holds the same committed bytes and skips them the same way. */
        pc_error("shard %u: entry %llu is not a valid batch of shard ops; skipped",
                 f->cfg.group, (unsigned long long)index);
        n = 0;
    }
    store_batch_clear(f->batch);
    for (size_t i = 0; i < n; i++) {
        /* The event id is (group, index, position in the entry): the same on every replica
         * and unique, whatever the op. */
        if (ops[i].kind == SHARD_OP_POST) {
            add_post(f, index, (uint32_t)i, node, &ops[i]);
        } else if (ops[i].kind == SHARD_OP_EDIT) {
            shard_edit_apply(f, index, (uint32_t)i, node, &ops[i]);
        } else if (ops[i].kind == SHARD_OP_PURGE) {
            shard_purge_apply(f, index, (uint32_t)i, node, &ops[i]);
        } else if (ops[i].kind == SHARD_OP_IMPORT) {
            shard_import_apply(f, &ops[i]);
        } else if (ops[i].kind == SHARD_OP_FILE_CHUNK) {
            roomfile_put_chunk(f->batch, ops[i].room_no, ops[i].file_no, ops[i].chunk,
                               ops[i].data, ops[i].data_len);
        } else if (ops[i].kind == SHARD_OP_FILE_DROP) {
            if (!file_announced(f, ops, i))
                roomfile_drop_chunks(f->batch, ops[i].room_no, ops[i].file_no);
        } else {
            uint8_t k[STORE_COMPL_KEY_LEN];
            store_key_compl(k, f->cfg.group, index, (uint32_t)i);
            store_batch_put(f->batch, STORE_CF_COMPL, k, sizeof k, ops[i].event, ops[i].event_len);
        }
    }
    fsm_put_applied(f->batch, f->cfg.group, index);
    /* No fsync: raft's log is durable and replays whatever the store lost; the applied index
     * in the same batch makes that replay skip what is stored. */
    int rc = store_write(f->cfg.st, f->batch, false);
    f->last_store_rc = rc;
    store_batch_clear(f->batch);
    for (size_t i = 0; i < n; i++) {
        if ((ops[i].kind == SHARD_OP_PURGE || ops[i].kind == SHARD_OP_IMPORT) && rc != 0)
            roomlog_forget(&f->log, ops[i].room_no); /* its counters moved only in memory */
        if (ops[i].kind != SHARD_OP_POST && ops[i].kind != SHARD_OP_IMPORT)
            continue;
        struct roomlog_room *r = roomlog_room(&f->log, ops[i].room_no);
        if (rc == 0)
            r->durable = r->last;
        else
            r->last = r->durable; /* hand the seqs back: a retry assigns them again */
    }
    if (rc != 0) {
        /* PC_ENOSPC: the disk guard holds writes back and said so once; raft retries. */
        if (rc != PC_ENOSPC)
            pc_error("shard %u: storing entry %llu failed: %s", f->cfg.group,
                     (unsigned long long)index, pc_strerror(rc));
        pc_arena_free(&arena);
        return PC_EIO;
    }
    f->applied = index;
    if (f->cfg.applied != NULL)
        f->cfg.applied(f->cfg.ctx, index, ops, n);
    pc_arena_free(&arena);
    return FSM_APPLIED;
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
    struct shard_fsm *f = rf->data;
    *result = NULL;
    if (f->raft == NULL) {
        pc_error("shard %u: apply before shard_fsm_attach", f->cfg.group);
        return RAFT_INVALID;
    }
    uint64_t index = raft_last_applied(f->raft) + 1;
    int rc = shard_fsm_apply_entry(f, index, buf->base, buf->len);
    if (rc < 0) {
        char what[32];
        snprintf(what, sizeof what, "shard %u", f->cfg.group);
        fsm_store_failed(what, index, f->last_store_rc ? f->last_store_rc : PC_EIO);
    }
    return 0;
}

/* ---- snapshot and restore ----------------------------------------------------------------------- */

/* The group's rooms: the 's' records of the state family. */
static struct store_iter *rooms_iter(struct shard_fsm *f)
{
    uint8_t lo[16], hi[16];
    store_key_shard_room(lo, f->cfg.group, 0);
    size_t hlen = fsm_prefix_end(lo, 5, hi);
    return store_iter_new(f->cfg.st, STORE_CF_STATE, lo, 5, hi, hlen);
}

static int files_snapshot(struct shard_fsm *f, const uint64_t *rooms, size_t n_rooms,
                          struct pc_buf *out);

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct shard_fsm *f = rf->data;
    /* Raft may drop log entries up to here once the snapshot is stored: what they did must
     * be durable in RocksDB first. */
    int rc = store_sync(f->cfg.st);
    if (rc != 0)
        return RAFT_IOERR;
    /* Not the history: it is large and written once. Per room "complete up to seq N,
     * purged up to F", then the administrators' edits, the only changes to messages. */
    struct pc_buf b = {0};
    pc_bin_put_u8(&b, SNAP_V2);
    pc_bin_put_uv(&b, f->applied);
    uint64_t *rooms = NULL;
    size_t n_rooms = 0;
    struct store_iter *it = rooms_iter(f);
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        if (k.len != 13)
            continue;
        uint64_t room_no = pc_be64_read((const uint8_t *)k.p + 5);
        struct roomlog_room *r = roomlog_room(&f->log, room_no);
        pc_bin_put_u8(&b, 1);
        pc_bin_put_uv(&b, room_no);
        pc_bin_put_uv(&b, r->last);
        pc_bin_put_uv(&b, r->floor);
        rooms = pc_realloc(rooms, (n_rooms + 1) * sizeof *rooms);
        rooms[n_rooms++] = room_no;
    }
    pc_bin_put_u8(&b, 0);
    rc = store_iter_status(it);
    store_iter_free(it);
    if (rc == 0)
        rc = shard_edit_snapshot(f, rooms, n_rooms, &b);
    if (rc == 0)
        rc = files_snapshot(f, rooms, n_rooms, &b);
    pc_free(rooms);
    if (rc == 0)
        rc = fsm_compl_snapshot(f->cfg.st, f->cfg.group, &b);
    return fsm_snapshot_hand_over(rc, ENTRY_SHARD_SNAP, &b, bufs, n_bufs);
}

/* (u8 1, uv room, uv file, bytes record)* u8 0 */
static int files_snapshot(struct shard_fsm *f, const uint64_t *rooms, size_t n_rooms,
                          struct pc_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < n_rooms && rc == 0; i++) {
        uint8_t lo[32], hi[32];
        size_t klen = store_key_file(lo, rooms[i], 0);
        store_key_file(hi, rooms[i] + 1, 0);
        struct store_iter *it = store_iter_new(f->cfg.st, STORE_CF_FILES, lo, 9, hi, 9);
        for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
            struct pc_str k = store_iter_key(it), v = store_iter_value(it);
            if (k.len != klen)
                continue;
            pc_bin_put_u8(out, 1);
            pc_bin_put_uv(out, rooms[i]);
            pc_bin_put_uv(out, pc_be64_read((const uint8_t *)k.p + 9));
            pc_bin_put_bytes(out, v.p, v.len);
        }
        rc = store_iter_status(it);
        store_iter_free(it);
    }
    pc_bin_put_u8(out, 0);
    return rc;
}

static int files_restore(struct shard_fsm *f, struct pc_bin_reader *r, struct store_batch *b)
{
    for (bool first = true;; first = false) {
        uint8_t more = pc_bin_get_u8(r);
        if (r->err != 0 || more == 0)
            break;
        uint64_t room_no = pc_bin_get_uv(r), file_no = pc_bin_get_uv(r);
        struct pc_str v = pc_bin_get_bytes(r);
        if (r->err != 0 || more != 1 || room_no == 0 || file_no == 0 ||
            !roomfile_record_valid(v.p, v.len))
            return PC_ECORRUPT;
        uint8_t k[32];
        store_batch_put(b, STORE_CF_FILES, k, store_key_file(k, room_no, file_no), v.p, v.len);
        if (first) /* look for missing bytes, even after a restart (pool_filefix.c) */
            store_batch_put(b, STORE_CF_STATE, k, store_key_filecheck(k, f->cfg.group), "", 0);
    }
    return r->err != 0 ? PC_ECORRUPT : 0;
}

struct snap_room {
    uint64_t room_no, last, have; /* have: last seq stored here before the install */
    uint64_t floor;               /* purged up to here on the leader */
};

/* Parses the snapshot fully into a batch before writing anything: a corrupt snapshot
 * changes nothing. */
static int restore_bytes(struct shard_fsm *f, const void *p, size_t len)
{
    struct pc_bin_reader r;
    uint64_t applied;
    bool v2 = fsm_snapshot_open(p, len, ENTRY_SHARD_SNAP, SNAP_V2, &r, &applied) == 0;
    if (!v2 && fsm_snapshot_open(p, len, ENTRY_SHARD_SNAP, SNAP_V1, &r, &applied) != 0)
        return PC_ECORRUPT;
    /* At start raft restores its last snapshot, but the store already holds every entry it
     * applied, which is at least that far: nothing to do. */
    if (applied <= f->applied)
        return 0;
    struct snap_room *rooms = NULL;
    size_t n = 0, cap = 0;
    struct store_batch *b = f->batch;
    store_batch_clear(b);
    for (;;) {
        uint8_t more = pc_bin_get_u8(&r);
        if (r.err != 0 || more == 0)
            break;
        uint64_t room_no = pc_bin_get_uv(&r), last = pc_bin_get_uv(&r);
        uint64_t floor = v2 ? pc_bin_get_uv(&r) : 0;
        if (r.err == 0 && (more != 1 || room_no == 0 || last == UINT64_MAX || floor > last ||
                           n >= MAX_SNAP_ROOMS))
            r.err = PC_ECORRUPT;
        if (r.err != 0)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            rooms = pc_realloc(rooms, cap * sizeof *rooms);
        }
        struct roomlog_room *local = roomlog_room(&f->log, room_no);
        uint64_t have = local->last;
        if (floor > local->floor) {
            /* Purged on the leader since: purge here too; nothing below it is missing. */
            uint64_t local_floor = local->floor;
            shard_purge_room(f, b, room_no, floor);
            local->floor = local_floor; /* set for real once the batch is written */
            if (have < floor)
                have = floor;
        }
        rooms[n++] = (struct snap_room){room_no, last, have, floor};
        if (have > last)
            pc_warn("shard %u: room %llu has seq %llu here but the snapshot ends at %llu",
                    f->cfg.group, (unsigned long long)room_no, (unsigned long long)have,
                    (unsigned long long)last);
        if (last > have) {
            /* Messages (have, last] were committed while this replica was behind and are no
             * longer in anyone's raft log: remember to fetch them from a peer. */
            uint8_t k[24], v[8];
            pc_be64_write(v, last);
            store_batch_put(b, STORE_CF_STATE, k,
                            store_key_backfill(k, f->cfg.group, room_no, have + 1), v, 8);
        }
        put_room_last(b, room_no, last);
        put_shard_room(b, f->cfg.group, room_no);
    }
    int rc = r.err != 0 ? PC_ECORRUPT : 0;
    if (rc == 0 && v2) {
        /* Edits are re-applied after the purges, above the new floors. */
        for (size_t i = 0; i < n; i++) {
            struct roomlog_room *local = roomlog_room(&f->log, rooms[i].room_no);
            if (rooms[i].floor > local->floor)
                local->floor = rooms[i].floor;
        }
        rc = shard_edit_restore(f, &r, b);
        if (rc == 0)
            rc = files_restore(f, &r, b);
    }
    if (rc == 0)
        rc = fsm_compl_restore(&r, f->cfg.group, b);
    if (rc == 0 && !pc_bin_at_end(&r))
        rc = PC_ECORRUPT;
    if (rc == 0) {
        fsm_put_applied(b, f->cfg.group, applied);
        /* Synced: raft considers the snapshot installed once this returns. */
        rc = store_write(f->cfg.st, b, true);
    }
    store_batch_clear(b);
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            roomlog_forget(&f->log, rooms[i].room_no); /* floors moved only in memory */
    if (rc == 0) {
        f->applied = applied;
        /* The counters continue from the snapshot: the next post gets last + 1, exactly as
         * on the replicas that applied every entry. */
        for (size_t i = 0; i < n; i++) {
            struct roomlog_room *rr = roomlog_room(&f->log, rooms[i].room_no);
            rr->last = rr->durable = rooms[i].last;
        }
        for (size_t i = 0; i < n; i++)
            if (rooms[i].floor > 0 && f->cfg.purged != NULL)
                f->cfg.purged(f->cfg.ctx, rooms[i].room_no, rooms[i].floor);
        for (size_t i = 0; i < n; i++)
            if (rooms[i].last > rooms[i].have && f->cfg.backfill_needed != NULL)
                f->cfg.backfill_needed(f->cfg.ctx, rooms[i].room_no, rooms[i].have + 1,
                                       rooms[i].last);
        if (f->cfg.files_check != NULL)
            f->cfg.files_check(f->cfg.ctx);
    }
    pc_free(rooms);
    return rc;
}

static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
    struct shard_fsm *f = rf->data;
    int rc = restore_bytes(f, buf->base, buf->len);
    if (rc != 0) {
        pc_error("shard %u: cannot install snapshot: %s", f->cfg.group, pc_strerror(rc));
        return rc == PC_ECORRUPT ? RAFT_CORRUPT : RAFT_IOERR; /* raft frees buf */
    }
    raft_free(buf->base); /* on success the FSM owns it */
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------------- */

int shard_fsm_create(const struct shard_fsm_config *cfg, struct shard_fsm **out)
{
    struct shard_fsm *f = pc_calloc(1, sizeof *f);
    f->cfg = *cfg;
    roomlog_init(&f->log, cfg->st);
    f->applied = fsm_stored_applied(cfg->st, cfg->group);
    f->batch = store_batch_new(cfg->st);
    f->fsm.version = 2;
    f->fsm.data = f;
    f->fsm.apply = fsm_apply;
    f->fsm.snapshot = fsm_snapshot;
    f->fsm.restore = fsm_restore;
    *out = f;
    return 0;
}

void shard_fsm_destroy(struct shard_fsm *f)
{
    if (f == NULL)
        return;
    store_batch_free(f->batch);
    roomlog_free(&f->log);
    pc_free(f);
}

struct raft_fsm *shard_fsm_raft(struct shard_fsm *f)
{
    return &f->fsm;
}

void shard_fsm_attach(struct shard_fsm *f, struct raft *r)
{
    f->raft = r;
}

uint64_t shard_fsm_applied_index(const struct shard_fsm *f)
{
    return f->applied;
}

uint64_t shard_fsm_room_last(struct shard_fsm *f, uint64_t room_no)
{
    return roomlog_room(&f->log, room_no)->last;
}

struct missing_files {
    void (*cb)(void *ctx, const struct room_file *file, uint32_t from);
    void *ctx;
    struct store *st;
};

static void missing_file(void *ctx, const struct room_file *file)
{
    struct missing_files *m = ctx;
    uint32_t from = roomfile_first_missing(m->st, file->room_no, file->file_no, file->chunks);
    if (from < file->chunks)
        m->cb(m->ctx, file, from);
}

int shard_fsm_missing_files(struct shard_fsm *f,
                            void (*cb)(void *ctx, const struct room_file *file, uint32_t from),
                            void *ctx)
{
    struct missing_files m = {cb, ctx, f->cfg.st};
    struct store_iter *it = rooms_iter(f);
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        if (k.len == 13)
            roomfile_list(f->cfg.st, pc_be64_read((const uint8_t *)k.p + 5), missing_file, &m);
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    return rc;
}

uint64_t shard_fsm_room_floor(struct shard_fsm *f, uint64_t room_no)
{
    return roomlog_room(&f->log, room_no)->floor;
}

int shard_fsm_entry(const char *node, const struct shard_op *ops, size_t n,
                    struct raft_buffer *out)
{
    struct pc_buf b = {0};
    shard_ops_encode(node, ops, n, &b);
    int rc = entry_encode(ENTRY_SHARD_OPS, b.data, b.len, out);
    pc_buf_free(&b);
    return rc;
}
