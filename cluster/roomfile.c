/* A file record: version byte, then name, uploader, sha256 (strings), size, chunks, time,
 * seq (varints). */
#include "cluster/roomfile.h"

#include <string.h>

#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "storage/store.h"
#include "storage/store_keys.h"

enum { FILE_V1 = 1 };

void roomfile_put(struct store_batch *b, const struct room_file *f)
{
    struct pc_buf v = {0};
    pc_bin_put_u8(&v, FILE_V1);
    pc_bin_put_str(&v, f->name);
    pc_bin_put_str(&v, f->uploader);
    pc_bin_put_str(&v, f->sha256);
    pc_bin_put_uv(&v, f->size);
    pc_bin_put_uv(&v, f->chunks);
    pc_bin_put_sv(&v, f->ts_us);
    pc_bin_put_uv(&v, f->seq);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_FILES, k, store_key_file(k, f->room_no, f->file_no), v.data, v.len);
    pc_buf_free(&v);
}

void roomfile_put_chunk(struct store_batch *b, uint64_t room_no, uint64_t file_no,
                        uint32_t chunk, const void *data, size_t len)
{
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_FILES, k, store_key_file_data(k, room_no, file_no, chunk), data,
                    len);
}

static const char *get_str(struct pc_bin_reader *r, struct pc_arena *a)
{
    struct pc_str s = pc_bin_get_bytes(r);
    return r->err == 0 ? pc_arena_strndup(a, s.p, s.len) : "";
}

static int decode(const void *p, size_t len, uint64_t room_no, uint64_t file_no,
                  struct room_file *f, struct pc_arena *a)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    memset(f, 0, sizeof *f);
    if (pc_bin_get_u8(&r) != FILE_V1)
        return PC_ECORRUPT;
    f->room_no = room_no;
    f->file_no = file_no;
    f->name = get_str(&r, a);
    f->uploader = get_str(&r, a);
    f->sha256 = get_str(&r, a);
    f->size = pc_bin_get_uv(&r);
    f->chunks = (uint32_t)pc_bin_get_uv(&r);
    f->ts_us = pc_bin_get_sv(&r);
    f->seq = pc_bin_get_uv(&r);
    return r.err != 0 ? PC_ECORRUPT : 0;
}

int roomfile_get(struct store *st, uint64_t room_no, uint64_t file_no, struct room_file *out,
                 struct pc_arena *arena)
{
    uint8_t k[STORE_KEY_MAX];
    struct pc_buf v = {0};
    int rc = store_get(st, STORE_CF_FILES, k, store_key_file(k, room_no, file_no), &v);
    if (rc == 0)
        rc = decode(v.data, v.len, room_no, file_no, out, arena);
    pc_buf_free(&v);
    return rc;
}

int roomfile_list(struct store *st, uint64_t room_no,
                  void (*cb)(void *ctx, const struct room_file *f), void *ctx)
{
    uint8_t lo[STORE_KEY_MAX], hi[STORE_KEY_MAX];
    store_key_file(lo, room_no, 0);
    store_key_file(hi, room_no + 1, 0);
    struct store_iter *it = store_iter_new(st, STORE_CF_FILES, lo, 9, hi, 9);
    int n = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str key = store_iter_key(it), val = store_iter_value(it);
        if (key.len != 17)
            continue;
        struct pc_arena a = {0};
        struct room_file f;
        if (decode(val.p, val.len, room_no, pc_be64_read((const uint8_t *)key.p + 9), &f, &a) == 0) {
            cb(ctx, &f);
            n++;
        }
        pc_arena_free(&a);
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    return rc != 0 ? rc : n;
}

int roomfile_chunk(struct store *st, uint64_t room_no, uint64_t file_no, uint32_t chunk,
                   struct pc_buf *out)
{
    uint8_t k[STORE_KEY_MAX];
    return store_get(st, STORE_CF_FILES, k, store_key_file_data(k, room_no, file_no, chunk), out);
}

uint32_t roomfile_first_missing(struct store *st, uint64_t room_no, uint64_t file_no,
                                uint32_t chunks)
{
    uint8_t lo[STORE_KEY_MAX], hi[STORE_KEY_MAX];
    size_t klen = store_key_file_data(lo, room_no, file_no, 0);
    store_key_file(hi, room_no, file_no + 1);
    hi[0] = STORE_TAG_FILE_DATA;
    struct store_iter *it = store_iter_new(st, STORE_CF_FILES, lo, klen, hi, 17);
    uint32_t next = 0;
    for (store_iter_first(it); store_iter_valid(it) && next < chunks; store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        if (k.len != klen || pc_be32_read((const uint8_t *)k.p + 17) != next)
            break;
        next++;
    }
    if (store_iter_status(it) != 0)
        next = 0;
    store_iter_free(it);
    return next;
}

void roomfile_drop_chunks(struct store_batch *b, uint64_t room_no, uint64_t file_no)
{
    uint8_t lo[STORE_KEY_MAX], hi[STORE_KEY_MAX];
    size_t klen = store_key_file_data(lo, room_no, file_no, 0);
    store_key_file_data(hi, room_no, file_no, UINT32_MAX);
    store_batch_delete_range(b, STORE_CF_FILES, lo, klen, hi, klen);
    store_batch_delete(b, STORE_CF_FILES, hi, klen); /* the range's end is exclusive */
}

int roomfile_unannounced(struct store *st, uint64_t room_no,
                         void (*cb)(void *ctx, uint64_t file_no), void *ctx)
{
    uint8_t lo[STORE_KEY_MAX], hi[STORE_KEY_MAX], k[STORE_KEY_MAX];
    size_t klen = store_key_file_data(lo, room_no, 0, 0);
    store_key_file_data(hi, room_no + 1, 0, 0);
    struct store_iter *it = store_iter_new(st, STORE_CF_FILES, lo, klen, hi, klen);
    store_iter_first(it);
    while (store_iter_valid(it)) {
        struct pc_str key = store_iter_key(it);
        if (key.len != klen)
            break;
        uint64_t file_no = pc_be64_read((const uint8_t *)key.p + 9);
        struct pc_buf v = {0};
        if (store_get(st, STORE_CF_FILES, k, store_key_file(k, room_no, file_no), &v) == PC_ENOTFOUND)
            cb(ctx, file_no);
        pc_buf_free(&v);
        if (file_no == UINT64_MAX)
            break;
        store_iter_seek(it, k, store_key_file_data(k, room_no, file_no + 1, 0));
    }
    int rc = store_iter_status(it);
    store_iter_free(it);
    return rc;
}

bool roomfile_record_valid(const void *p, size_t len)
{
    struct pc_arena a = {0};
    struct room_file f;
    bool ok = len < 4096 && decode(p, len, 1, 1, &f, &a) == 0;
    pc_arena_free(&a);
    return ok;
}
