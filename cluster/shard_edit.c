/* Administrators' changes to history, applied by every replica of a shard: removing or
 * replacing one message (Remove-CsPersistentChatMessage) and purging a room's messages up
 * to a seq (Clear-CsPersistentChatRoom, retention). The proposer chose the messages; apply
 * only executes, so every replica ends with the same bytes.
 *
 * An edit is kept as an 'e' record beside the message it changed, because the message may
 * not be stored here yet (a range waiting for back-fill): the back-fill, and a snapshot
 * install, apply the record to whatever arrives later. A purge deletes everything of the
 * room up to its seq and raises the room's floor ('p'), which back-fill and snapshots
 * respect the same way. */
#include <string.h>

#include "cluster/fsm_util.h"
#include "cluster/roomfile.h"
#include "cluster/shard_fsm_int.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "storage/store.h"
#include "storage/store_keys.h"

enum { EDIT_V1 = 1 };

static void put_edit(struct store_batch *b, uint64_t room_no, uint64_t seq, uint8_t flags,
                     const char *text)
{
    uint8_t k[24];
    struct pc_buf v = {0};
    pc_bin_put_u8(&v, EDIT_V1);
    pc_bin_put_u8(&v, flags);
    pc_bin_put_str(&v, text);
    store_batch_put(b, STORE_CF_STATE, k, store_key_edit(k, room_no, seq), v.data, v.len);
    pc_buf_free(&v);
}

static int decode_edit(const void *p, size_t len, uint8_t *flags, struct pc_str *text)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    uint8_t version = pc_bin_get_u8(&r);
    *flags = pc_bin_get_u8(&r);
    *text = pc_bin_get_bytes(&r);
    if (r.err != 0 || version != EDIT_V1 || !pc_bin_at_end(&r) ||
        (*flags != ROOM_MSG_REMOVED && *flags != ROOM_MSG_REPLACED))
        return PC_ECORRUPT;
    return 0;
}

/* Rewrites the stored message (if it is here) with the edit. */
static void edit_stored(struct shard_fsm *f, struct store_batch *b, uint64_t room_no,
                        uint64_t seq, uint8_t flags, const char *text)
{
    uint8_t k[STORE_MSG_KEY_LEN];
    store_key_msg(k, room_no, seq);
    struct pc_buf v = {0};
    if (store_get(f->cfg.st, STORE_CF_MSGS, k, sizeof k, &v) == 0) {
        struct pc_arena a = {0};
        struct room_msg m = {0};
        if (roomlog_decode_msg(v.data, v.len, &m, &a) == 0) {
            struct pc_buf out = {0};
            roomlog_encode_msg_flags(m.ts_us, m.author, text, flags, &out);
            store_batch_put(b, STORE_CF_MSGS, k, sizeof k, out.data, out.len);
            pc_buf_free(&out);
        }
        pc_arena_free(&a);
    }
    pc_buf_free(&v);
}

void shard_edit_apply(struct shard_fsm *f, uint64_t index, uint32_t n, const char *node,
                      const struct shard_op *op)
{
    struct roomlog_room *r = roomlog_room(&f->log, op->room_no);
    /* A message purged meanwhile, or one never written: nothing to change. */
    if (op->target_seq <= r->floor || op->target_seq > r->last)
        return;
    uint8_t flags = op->remove ? ROOM_MSG_REMOVED : ROOM_MSG_REPLACED;
    const char *text = op->remove ? "" : op->text;
    put_edit(f->batch, op->room_no, op->target_seq, flags, text);
    edit_stored(f, f->batch, op->room_no, op->target_seq, flags, text);
    struct compl_event ev = {.type = op->remove ? COMPL_MSG_REMOVED : COMPL_MSG_REPLACED,
                             .ts_us = op->ts_us, .node = node, .user = op->author,
                             .room_no = op->room_no, .room_guid = op->room_guid,
                             .room_name = op->room_name, .seq = op->target_seq,
                             .content = text};
    compl_event_put(f->batch, f->cfg.compl_mask, f->cfg.group, index, n, &ev);
}

void shard_edit_overlay(struct shard_fsm *f, struct room_msg *m, struct pc_buf *buf)
{
    uint8_t k[24];
    struct pc_buf v = {0};
    if (store_get(f->cfg.st, STORE_CF_STATE, k, store_key_edit(k, m->room_no, m->seq), &v) == 0) {
        uint8_t flags;
        struct pc_str text;
        if (decode_edit(v.data, v.len, &flags, &text) == 0) {
            pc_buf_reset(buf);
            pc_buf_append(buf, text.p, text.len);
            pc_buf_append(buf, "", 1);
            m->text = buf->data;
            m->flags = flags;
        }
    }
    pc_buf_free(&v);
}

/* ---- purges ------------------------------------------------------------------------------ */

struct doomed_files {
    uint64_t upto;
    uint64_t *nos;
    size_t n;
};

static void collect_file(void *ctx, const struct room_file *file)
{
    struct doomed_files *d = ctx;
    if (file->seq <= d->upto) {
        d->nos = pc_realloc(d->nos, (d->n + 1) * sizeof *d->nos);
        d->nos[d->n++] = file->file_no;
    }
}

void shard_purge_room(struct shard_fsm *f, struct store_batch *b, uint64_t room_no, uint64_t seq)
{
    struct roomlog_room *r = roomlog_room(&f->log, room_no);
    uint8_t lo[32], hi[32];
    store_key_msg(lo, room_no, 0);
    store_key_msg(hi, room_no, seq + 1);
    store_batch_delete_range(b, STORE_CF_MSGS, lo, STORE_MSG_KEY_LEN, hi, STORE_MSG_KEY_LEN);
    size_t klen = store_key_edit(lo, room_no, 0);
    store_key_edit(hi, room_no, seq + 1);
    store_batch_delete_range(b, STORE_CF_STATE, lo, klen, hi, klen);
    /* Files announced by purged messages go with them: their content is room content. */
    struct doomed_files d = {.upto = seq};
    roomfile_list(f->cfg.st, room_no, collect_file, &d);
    for (size_t i = 0; i < d.n; i++) {
        klen = store_key_file(lo, room_no, d.nos[i]);
        store_batch_delete(b, STORE_CF_FILES, lo, klen);
        klen = store_key_file_data(lo, room_no, d.nos[i], 0);
        store_key_file_data(hi, room_no, d.nos[i], UINT32_MAX);
        store_batch_delete_range(b, STORE_CF_FILES, lo, klen, hi, klen);
        store_batch_delete(b, STORE_CF_FILES, hi, klen);
    }
    pc_free(d.nos);
    /* Ranges waiting for back-fill below the floor are no longer wanted. */
    struct shard_range *ranges = NULL;
    size_t nr = 0;
    if (shard_backfill_ranges(f, room_no, &ranges, &nr) == 0) {
        for (size_t i = 0; i < nr; i++) {
            if (ranges[i].from > seq)
                continue;
            uint8_t v[8];
            store_batch_delete(b, STORE_CF_STATE, lo,
                               store_key_backfill(lo, f->cfg.group, room_no, ranges[i].from));
            if (ranges[i].to > seq) {
                pc_be64_write(v, ranges[i].to);
                store_batch_put(b, STORE_CF_STATE, lo,
                                store_key_backfill(lo, f->cfg.group, room_no, seq + 1), v, 8);
            }
        }
    }
    pc_free(ranges);
    uint8_t v[8];
    pc_be64_write(v, seq);
    store_batch_put(b, STORE_CF_STATE, lo, store_key_floor(lo, room_no), v, 8);
    r->floor = seq;
}

void shard_purge_apply(struct shard_fsm *f, uint64_t index, uint32_t n, const char *node,
                       const struct shard_op *op)
{
    struct roomlog_room *r = roomlog_room(&f->log, op->room_no);
    uint64_t upto = op->target_seq < r->last ? op->target_seq : r->last;
    if (upto <= r->floor)
        return; /* already purged that far (a retention pass and a clear crossed) */
    uint64_t before = r->floor;
    shard_purge_room(f, f->batch, op->room_no, upto);
    char what[600];
    snprintf(what, sizeof what, "%s: messages %llu to %llu purged", op->text,
             (unsigned long long)before + 1, (unsigned long long)upto);
    struct compl_event ev = {.type = COMPL_PURGED, .ts_us = op->ts_us, .node = node,
                             .user = op->author, .room_no = op->room_no,
                             .room_guid = op->room_guid, .room_name = op->room_name,
                             .seq = upto, .content = what};
    compl_event_put(f->batch, f->cfg.compl_mask, f->cfg.group, index, n, &ev);
}

/* ---- imports ------------------------------------------------------------------------------ */

void shard_import_apply(struct shard_fsm *f, const struct shard_op *op)
{
    struct roomlog_room *r = roomlog_room(&f->log, op->room_no);
    if (op->target_seq <= r->last)
        return; /* imported before (or the room's own): importing twice changes nothing */
    if (op->target_seq > r->last + 1) {
        if (r->last != r->floor) {
            /* A hole inside the history would break "ids follow each other": refused the
             * same way on every replica. */
            pc_warn("shard %u: room %llu: imported message %llu skipped, the room ends at %llu",
                    f->cfg.group, (unsigned long long)op->room_no,
                    (unsigned long long)op->target_seq, (unsigned long long)r->last);
            return;
        }
        /* An empty room: the export started after a purge; the ids below count as purged. */
        uint8_t k[16], v[8];
        pc_be64_write(v, op->target_seq - 1);
        store_batch_put(f->batch, STORE_CF_STATE, k, store_key_floor(k, op->room_no), v, 8);
        r->floor = r->last = op->target_seq - 1;
    }
    if (r->last == 0 || r->last == r->floor) {
        uint8_t k[16];
        store_batch_put(f->batch, STORE_CF_STATE, k,
                        store_key_shard_room(k, f->cfg.group, op->room_no), "", 0);
    }
    roomlog_append_flags(&f->log, f->batch, op->room_no, op->ts_us, op->author,
                         (op->flags & ROOM_MSG_REMOVED) ? "" : op->text, op->flags);
}

/* ---- snapshots ----------------------------------------------------------------------------- */

int shard_edit_snapshot(struct shard_fsm *f, const uint64_t *rooms, size_t n_rooms,
                        struct pc_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < n_rooms && rc == 0; i++) {
        uint8_t lo[24], hi[24];
        size_t klen = store_key_edit(lo, rooms[i], 0);
        store_key_edit(hi, rooms[i] + 1, 0);
        struct store_iter *it = store_iter_new(f->cfg.st, STORE_CF_STATE, lo, klen, hi, klen);
        for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
            struct pc_str k = store_iter_key(it), v = store_iter_value(it);
            uint8_t flags;
            struct pc_str text;
            if (k.len != 17 || decode_edit(v.p, v.len, &flags, &text) != 0)
                continue;
            pc_bin_put_u8(out, 1);
            pc_bin_put_uv(out, rooms[i]);
            pc_bin_put_uv(out, pc_be64_read((const uint8_t *)k.p + 9));
            pc_bin_put_u8(out, flags);
            pc_bin_put_bytes(out, text.p, text.len);
        }
        rc = store_iter_status(it);
        store_iter_free(it);
    }
    pc_bin_put_u8(out, 0);
    return rc;
}

int shard_edit_restore(struct shard_fsm *f, struct pc_bin_reader *r, struct store_batch *b)
{
    /* No cap on the count: every record takes bytes of the snapshot, which bounds it. */
    for (;;) {
        uint8_t more = pc_bin_get_u8(r);
        if (r->err != 0 || more == 0)
            break;
        uint64_t room_no = pc_bin_get_uv(r), seq = pc_bin_get_uv(r);
        uint8_t flags = pc_bin_get_u8(r);
        struct pc_str text = pc_bin_get_bytes(r);
        if (r->err != 0 || more != 1 || room_no == 0 || seq == 0 ||
            (flags != ROOM_MSG_REMOVED && flags != ROOM_MSG_REPLACED) ||
            text.len > SHARD_MAX_TEXT || memchr(text.p, '\0', text.len) != NULL)
            return PC_ECORRUPT;
        if (seq <= roomlog_room(&f->log, room_no)->floor)
            continue;
        char *t = pc_strndup(text.p, text.len);
        put_edit(b, room_no, seq, flags, t);
        edit_stored(f, b, room_no, seq, flags, t);
        pc_free(t);
    }
    return r->err != 0 ? PC_ECORRUPT : 0;
}
