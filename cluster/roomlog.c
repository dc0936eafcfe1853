#include "cluster/roomlog.h"

#include <string.h>

#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "storage/store.h"
#include "storage/store_keys.h"

/* V2 adds the ROOM_MSG_* flags of an edited message; untouched messages stay V1. */
enum { MSG_V1 = 1, MSG_V2 = 2, MAX_TEXT = 1 << 20 };

void roomlog_init(struct roomlog *log, struct store *st)
{
    log->st = st;
    log->rooms = NULL;
}

void roomlog_free(struct roomlog *log)
{
    struct roomlog_room *r, *tmp;
    HASH_ITER(hh, log->rooms, r, tmp) {
        HASH_DEL(log->rooms, r);
        pc_free(r);
    }
}

struct roomlog_room *roomlog_room(struct roomlog *log, uint64_t room_no)
{
    struct roomlog_room *r = NULL;
    HASH_FIND(hh, log->rooms, &room_no, sizeof room_no, r);
    if (r != NULL)
        return r;
    r = pc_calloc(1, sizeof *r);
    r->room_no = room_no;
    uint8_t k[16];
    struct pc_buf v = {0};
    if (store_get(log->st, STORE_CF_STATE, k, store_key_room_last(k, room_no), &v) == 0 &&
        v.len == 8)
        r->last = pc_be64_read((const uint8_t *)v.data);
    if (store_get(log->st, STORE_CF_STATE, k, store_key_floor(k, room_no), &v) == 0 &&
        v.len == 8)
        r->floor = pc_be64_read((const uint8_t *)v.data);
    pc_buf_free(&v);
    r->durable = r->last;
    HASH_ADD(hh, log->rooms, room_no, sizeof r->room_no, r);
    return r;
}

void roomlog_forget(struct roomlog *log, uint64_t room_no)
{
    struct roomlog_room *r = NULL;
    HASH_FIND(hh, log->rooms, &room_no, sizeof room_no, r);
    if (r != NULL) {
        HASH_DEL(log->rooms, r);
        pc_free(r);
    }
}

void roomlog_encode_msg(int64_t ts_us, const char *author, const char *text, struct pc_buf *out)
{
    roomlog_encode_msg_flags(ts_us, author, text, 0, out);
}

void roomlog_encode_msg_flags(int64_t ts_us, const char *author, const char *text, uint8_t flags,
                              struct pc_buf *out)
{
    pc_bin_put_u8(out, flags != 0 ? MSG_V2 : MSG_V1);
    pc_bin_put_sv(out, ts_us);
    pc_bin_put_str(out, author);
    pc_bin_put_str(out, text);
    if (flags != 0)
        pc_bin_put_u8(out, flags);
}

int roomlog_decode_msg(const void *p, size_t len, struct room_msg *msg, struct pc_arena *arena)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    uint8_t version = pc_bin_get_u8(&r);
    if (version != MSG_V1 && version != MSG_V2)
        return PC_ECORRUPT;
    msg->ts_us = pc_bin_get_sv(&r);
    struct pc_str a = pc_bin_get_bytes(&r);
    struct pc_str t = pc_bin_get_bytes(&r);
    msg->flags = version == MSG_V2 ? pc_bin_get_u8(&r) : 0;
    if (r.err != 0 || t.len > MAX_TEXT || msg->flags > (ROOM_MSG_REMOVED | ROOM_MSG_REPLACED))
        return PC_ECORRUPT;
    msg->author = pc_arena_strndup(arena, a.p, a.len);
    msg->text = pc_arena_strndup(arena, t.p, t.len);
    return 0;
}

uint64_t roomlog_append(struct roomlog *log, struct store_batch *b, uint64_t room_no,
                        int64_t ts_us, const char *author, const char *text)
{
    return roomlog_append_flags(log, b, room_no, ts_us, author, text, 0);
}

uint64_t roomlog_append_flags(struct roomlog *log, struct store_batch *b, uint64_t room_no,
                              int64_t ts_us, const char *author, const char *text, uint8_t flags)
{
    struct roomlog_room *r = roomlog_room(log, room_no);
    uint64_t seq = ++r->last;
    uint8_t k[STORE_MSG_KEY_LEN], lk[16], lv[8];
    store_key_msg(k, room_no, seq);
    struct pc_buf v = {0};
    roomlog_encode_msg_flags(ts_us, author, text, flags, &v);
    store_batch_put(b, STORE_CF_MSGS, k, sizeof k, v.data, v.len);
    pc_buf_free(&v);
    pc_be64_write(lv, seq);
    store_batch_put(b, STORE_CF_STATE, lk, store_key_room_last(lk, room_no), lv, 8);
    return seq;
}

int roomlog_read(struct store *st, uint64_t room_no, uint64_t before, uint64_t upto,
                 uint32_t count, struct pc_arena *arena, struct room_msg **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (count == 0)
        return 0;
    /* Exclusive upper bound on seq: min(before, upto + 1). */
    uint64_t bound = UINT64_MAX;
    if (before != 0)
        bound = before;
    if (upto != 0 && upto != UINT64_MAX && upto + 1 < bound)
        bound = upto + 1;
    uint8_t lo[STORE_MSG_KEY_LEN], hi[STORE_MSG_KEY_LEN];
    store_key_msg(lo, room_no, 0);
    store_key_msg(hi, room_no, bound);
    struct store_iter *it = store_iter_new(st, STORE_CF_MSGS, lo, sizeof lo, hi, sizeof hi);
    struct room_msg *msgs = pc_arena_alloc(arena, count * sizeof *msgs);
    size_t got = 0;
    int rc = 0;
    /* Walk backwards from the bound, then reverse to oldest-first order. */
    for (store_iter_last(it); store_iter_valid(it) && got < count; store_iter_prev(it)) {
        struct pc_str key = store_iter_key(it);
        struct pc_str val = store_iter_value(it);
        if (key.len != STORE_MSG_KEY_LEN) {
            rc = PC_ECORRUPT;
            break;
        }
        struct room_msg *m = &msgs[count - 1 - got];
        store_key_msg_parse((const uint8_t *)key.p, &m->room_no, &m->seq);
        rc = roomlog_decode_msg(val.p, val.len, m, arena);
        if (rc != 0)
            break;
        got++;
    }
    if (rc == 0)
        rc = store_iter_status(it);
    store_iter_free(it);
    if (rc != 0)
        return rc;
    *out = msgs + (count - got);
    *n = got;
    return 0;
}
