/* Binary form of shard op batches (the payload of an ENTRY_SHARD_OPS raft entry). */
#include "cluster/shard_op.h"
#include "cluster/cluster.h"

#include <string.h>

#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"

/* V2 added FILE_CHUNK and the file part of POST, V3 EDIT and PURGE, V4 FILE_DROP; older
 * batches still decode. */
enum { OPS_V1 = 1, OPS_V2 = 2, OPS_V3 = 3, OPS_V4 = 4 };

void shard_ops_encode(const char *node, const struct shard_op *ops, size_t n, struct pc_buf *out)
{
    pc_bin_put_u8(out, OPS_V4);
    pc_bin_put_str(out, node);
    pc_bin_put_uv(out, n);
    for (size_t i = 0; i < n; i++) {
        const struct shard_op *op = &ops[i];
        pc_bin_put_u8(out, (uint8_t)op->kind);
        pc_bin_put_uv(out, op->tag);
        if (op->kind == SHARD_OP_POST) {
            pc_bin_put_uv(out, op->room_no);
            pc_bin_put_sv(out, op->ts_us);
            pc_bin_put_str(out, op->author);
            pc_bin_put_str(out, op->text);
            pc_bin_put_str(out, op->room_guid);
            pc_bin_put_str(out, op->room_name);
            pc_bin_put_u8(out, op->has_file);
            if (op->has_file) {
                pc_bin_put_uv(out, op->file_no);
                pc_bin_put_str(out, op->file_name);
                pc_bin_put_str(out, op->file_sha);
                pc_bin_put_uv(out, op->file_size);
                pc_bin_put_uv(out, op->file_chunks);
            }
        } else if (op->kind == SHARD_OP_EDIT || op->kind == SHARD_OP_PURGE ||
                   op->kind == SHARD_OP_IMPORT) {
            pc_bin_put_uv(out, op->room_no);
            pc_bin_put_uv(out, op->target_seq);
            pc_bin_put_sv(out, op->ts_us);
            pc_bin_put_str(out, op->author);
            pc_bin_put_str(out, op->text);
            pc_bin_put_str(out, op->room_guid);
            pc_bin_put_str(out, op->room_name);
            pc_bin_put_u8(out, op->kind == SHARD_OP_IMPORT ? op->flags : op->remove);
        } else if (op->kind == SHARD_OP_FILE_DROP) {
            pc_bin_put_uv(out, op->room_no);
            pc_bin_put_uv(out, op->file_no);
        } else if (op->kind == SHARD_OP_FILE_CHUNK) {
            pc_bin_put_uv(out, op->room_no);
            pc_bin_put_uv(out, op->file_no);
            pc_bin_put_uv(out, op->chunk);
            pc_bin_put_str(out, op->author);
            pc_bin_put_bytes(out, op->data, op->data_len);
        } else {
            pc_bin_put_bytes(out, op->event, op->event_len);
        }
    }
}

/* A NUL-terminated arena copy of a length-prefixed string; sets r->err when it is longer
 * than max or holds a NUL (it could not be a C string everywhere else). */
static const char *get_str(struct pc_bin_reader *r, struct pc_arena *a, size_t max)
{
    struct pc_str s = pc_bin_get_bytes(r);
    if (r->err == 0 && (s.len > max || memchr(s.p, '\0', s.len) != NULL))
        r->err = PC_ECORRUPT;
    if (r->err != 0)
        return "";
    return pc_arena_strndup(a, s.p, s.len);
}

int shard_ops_decode(const void *p, size_t len, struct pc_arena *arena, const char **node,
                     struct shard_op **ops, size_t *n)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    *ops = NULL;
    *n = 0;
    *node = "";
    uint8_t version = pc_bin_get_u8(&r);
    if (version < OPS_V1 || version > OPS_V4)
        return PC_ECORRUPT;
    const char *nd = get_str(&r, arena, SHARD_MAX_URI);
    uint64_t count = pc_bin_get_uv(&r);
    /* Each op takes at least 3 bytes, so a count above the remaining length is a lie: check
     * it before allocating count slots. */
    if (r.err != 0 || count > SHARD_MAX_OPS || count > (uint64_t)(r.end - r.p))
        return PC_ECORRUPT;
    struct shard_op *v = count ? pc_arena_alloc(arena, count * sizeof *v) : NULL;
    for (uint64_t i = 0; i < count && r.err == 0; i++) {
        struct shard_op *op = &v[i];
        uint8_t kind = pc_bin_get_u8(&r);
        op->tag = pc_bin_get_uv(&r);
        if (kind == SHARD_OP_POST) {
            op->kind = SHARD_OP_POST;
            op->room_no = pc_bin_get_uv(&r);
            op->ts_us = pc_bin_get_sv(&r);
            op->author = get_str(&r, arena, SHARD_MAX_URI);
            op->text = get_str(&r, arena, SHARD_MAX_TEXT);
            op->room_guid = get_str(&r, arena, SHARD_MAX_NAME);
            op->room_name = get_str(&r, arena, SHARD_MAX_NAME);
            if (version >= OPS_V2 && (op->has_file = pc_bin_get_u8(&r) != 0)) {
                op->file_no = pc_bin_get_uv(&r);
                op->file_name = get_str(&r, arena, SHARD_MAX_NAME);
                op->file_sha = get_str(&r, arena, 64);
                op->file_size = pc_bin_get_uv(&r);
                uint64_t chunks = pc_bin_get_uv(&r);
                op->file_chunks = (uint32_t)chunks;
                if (r.err == 0 && (op->file_no == 0 || op->file_name[0] == '\0' ||
                                   chunks > UINT32_MAX ||
                                   chunks != (op->file_size + SHARD_MAX_CHUNK - 1) / SHARD_MAX_CHUNK))
                    r.err = PC_ECORRUPT;
            }
            if (r.err == 0 && (op->room_no == 0 || op->author[0] == '\0'))
                r.err = PC_ECORRUPT;
        } else if (kind == SHARD_OP_FILE_CHUNK && version >= OPS_V2) {
            op->kind = SHARD_OP_FILE_CHUNK;
            op->room_no = pc_bin_get_uv(&r);
            op->file_no = pc_bin_get_uv(&r);
            uint64_t chunk = pc_bin_get_uv(&r);
            op->chunk = (uint32_t)chunk;
            op->author = get_str(&r, arena, SHARD_MAX_URI);
            struct pc_str d = pc_bin_get_bytes(&r);
            op->data = d.p;
            op->data_len = d.len;
            if (r.err == 0 && (op->room_no == 0 || op->file_no == 0 || chunk > UINT32_MAX ||
                               d.len == 0 || d.len > SHARD_MAX_CHUNK))
                r.err = PC_ECORRUPT;
        } else if ((kind == SHARD_OP_EDIT || kind == SHARD_OP_PURGE || kind == SHARD_OP_IMPORT) &&
                   version >= OPS_V3) {
            op->kind = (enum shard_op_kind)kind;
            op->room_no = pc_bin_get_uv(&r);
            op->target_seq = pc_bin_get_uv(&r);
            op->ts_us = pc_bin_get_sv(&r);
            op->author = get_str(&r, arena, SHARD_MAX_URI);
            op->text = get_str(&r, arena, SHARD_MAX_TEXT);
            op->room_guid = get_str(&r, arena, SHARD_MAX_NAME);
            op->room_name = get_str(&r, arena, SHARD_MAX_NAME);
            uint8_t remove = pc_bin_get_u8(&r);
            if (kind == SHARD_OP_IMPORT) {
                op->flags = remove;
                remove = remove > (ROOM_MSG_REMOVED | ROOM_MSG_REPLACED) ? 2 : 0;
            }
            op->remove = remove == 1;
            if (r.err == 0 && (op->room_no == 0 || op->target_seq == 0 || remove > 1 ||
                               op->target_seq == UINT64_MAX))
                r.err = PC_ECORRUPT;
        } else if (kind == SHARD_OP_FILE_DROP && version >= OPS_V4) {
            op->kind = SHARD_OP_FILE_DROP;
            op->room_no = pc_bin_get_uv(&r);
            op->file_no = pc_bin_get_uv(&r);
            if (r.err == 0 && (op->room_no == 0 || op->file_no == 0))
                r.err = PC_ECORRUPT;
        } else if (kind == SHARD_OP_EVENT) {
            op->kind = SHARD_OP_EVENT;
            struct pc_str e = pc_bin_get_bytes(&r);
            /* Stored as-is, but only if it is an event the dispatcher will be able to read. */
            if (r.err == 0 && compl_event_decode(e.p, e.len, &op->ev, arena) != 0)
                r.err = PC_ECORRUPT;
            op->event = e.p;
            op->event_len = e.len;
            op->room_no = op->ev.room_no;
        } else {
            r.err = PC_ECORRUPT;
        }
    }
    if (r.err != 0 || !pc_bin_at_end(&r))
        return PC_ECORRUPT;
    *node = nd;
    *ops = v;
    *n = (size_t)count;
    return 0;
}
