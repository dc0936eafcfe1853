/* Payload codecs of the peer-link messages (see pool_msg.h). */
#include "cluster/pool_msg.h"

#include <limits.h>
#include <string.h>

#include "common/pc_bin.h"
#include "common/pc_err.h"

/* Fewest input bytes one list entry can take (one byte per varint / empty string), used to
 * refuse a count the remaining input cannot hold before allocating for it. */
enum { MIN_MSG_BYTES = 5, MIN_PRESENCE_BYTES = 2, MIN_SUB_SESSION_BYTES = 2 };

const char *pool_msg_type_name(uint8_t type)
{
    switch (type) {
    case POOL_MSG_ROOM_REQ:
        return "ROOM_REQ";
    case POOL_MSG_ROOM_RES:
        return "ROOM_RES";
    case POOL_MSG_ROOM_EVENT:
        return "ROOM_EVENT";
    case POOL_MSG_META_REQ:
        return "META_REQ";
    case POOL_MSG_META_RES:
        return "META_RES";
    case POOL_MSG_SUBSCRIBE:
        return "SUBSCRIBE";
    case POOL_MSG_RESYNC:
        return "RESYNC";
    case POOL_MSG_META_SYNC:
        return "META_SYNC";
    case POOL_MSG_NODE_STATE:
        return "NODE_STATE";
    }
    return "UNKNOWN";
}

/* ---- reading helpers (all sticky: after an error they return zero / "") ---------------- */

static void fail(struct pc_bin_reader *r)
{
    if (r->err == 0)
        r->err = PC_EPROTO;
}

static void get_version(struct pc_bin_reader *r)
{
    if (pc_bin_get_u8(r) != POOL_MSG_V1)
        fail(r);
}

/* A string of at most max bytes without NUL, copied into the arena. */
static const char *get_str(struct pc_bin_reader *r, struct pc_arena *a, size_t max)
{
    struct pc_str s = pc_bin_get_bytes(r);
    if (r->err == 0 && (s.len > max || memchr(s.p, '\0', s.len) != NULL))
        fail(r);
    if (r->err != 0)
        return "";
    return pc_arena_strndup(a, s.p, s.len);
}

static uint64_t get_bounded(struct pc_bin_reader *r, uint64_t max)
{
    uint64_t v = pc_bin_get_uv(r);
    if (v > max) {
        fail(r);
        return 0;
    }
    return v;
}

/* A status: 0 or a negative code that fits an int. */
static int get_status(struct pc_bin_reader *r)
{
    int64_t v = pc_bin_get_sv(r);
    if (v > 0 || v < INT_MIN) {
        fail(r);
        return 0;
    }
    return (int)v;
}

/* A list count: at most POOL_MSG_MAX_LIST, and no more entries than the rest could hold. */
static size_t get_count(struct pc_bin_reader *r, size_t min_entry_bytes)
{
    uint64_t n = pc_bin_get_uv(r);
    if (r->err != 0)
        return 0;
    if (n > POOL_MSG_MAX_LIST || n > (uint64_t)(r->end - r->p) / min_entry_bytes) {
        fail(r);
        return 0;
    }
    return (size_t)n;
}

/* Maps any reader error to PC_EPROTO and checks that the whole payload was consumed. */
static int finish(struct pc_bin_reader *r)
{
    if (r->err == 0 && !pc_bin_at_end(r))
        fail(r);
    return r->err != 0 ? PC_EPROTO : 0;
}

/* ---- room messages --------------------------------------------------------------------- */

static void put_msg(struct pc_buf *b, const struct room_msg *m)
{
    pc_bin_put_uv(b, m->room_no);
    pc_bin_put_uv(b, m->seq);
    pc_bin_put_sv(b, m->ts_us);
    pc_bin_put_str(b, m->author);
    pc_bin_put_str(b, m->text);
    pc_bin_put_u8(b, m->flags);
}

static void get_msg(struct pc_bin_reader *r, struct pc_arena *a, struct room_msg *m)
{
    m->room_no = pc_bin_get_uv(r);
    m->seq = pc_bin_get_uv(r);
    m->ts_us = pc_bin_get_sv(r);
    m->author = get_str(r, a, POOL_MSG_MAX_USER);
    m->text = get_str(r, a, POOL_MSG_MAX_TEXT);
    m->flags = pc_bin_get_u8(r);
    if (m->flags > (ROOM_MSG_REMOVED | ROOM_MSG_REPLACED))
        fail(r);
}

/* ---- 1 ROOM_REQ ------------------------------------------------------------------------ */

void pool_room_req_encode(struct pc_buf *out, uint64_t req_id, const struct room_req *req)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, req_id);
    pc_bin_put_uv(out, (uint64_t)req->kind);
    pc_bin_put_uv(out, req->room_no);
    pc_bin_put_str(out, req->user);
    pc_bin_put_uv(out, req->session);
    pc_bin_put_str(out, req->text);
    pc_bin_put_uv(out, req->count);
    pc_bin_put_uv(out, req->before);
    pc_bin_put_uv(out, req->upto);
    bool files = req->kind == ROOM_REQ_FILE_CHUNK || req->kind == ROOM_REQ_FILE_FETCH ||
                 req->file != NULL;
    bool edit = req->edit != NULL, msgs = req->msgs != NULL && req->n_msgs > 0;
    pc_bin_put_u8(out, (uint8_t)((req->record_read ? 1 : 0) | (req->any_replica ? 2 : 0) |
                                 (files ? 4 : 0) | (edit ? 8 : 0) | (msgs ? 16 : 0)));
    if (msgs) {
        pc_bin_put_uv(out, req->n_msgs);
        for (size_t i = 0; i < req->n_msgs; i++)
            put_msg(out, &req->msgs[i]);
    }
    if (edit) {
        const struct room_edit *e = req->edit;
        pc_bin_put_str(out, e->author);
        pc_bin_put_str(out, e->keywords);
        pc_bin_put_u8(out, (uint8_t)e->match);
        pc_bin_put_u8(out, (uint8_t)((e->case_sensitive ? 1 : 0) | (e->remove ? 2 : 0)));
        pc_bin_put_sv(out, e->from_us);
        pc_bin_put_sv(out, e->to_us);
        pc_bin_put_uv(out, e->seq);
        pc_bin_put_uv(out, e->after);
    }
    if (!files)
        return;
    pc_bin_put_uv(out, req->file_no);
    pc_bin_put_uv(out, req->chunk);
    pc_bin_put_bytes(out, req->data, req->data_len);
    pc_bin_put_u8(out, req->file != NULL);
    if (req->file != NULL) {
        const struct room_file *f = req->file;
        pc_bin_put_uv(out, f->file_no);
        pc_bin_put_str(out, f->name);
        pc_bin_put_str(out, f->uploader);
        pc_bin_put_str(out, f->sha256);
        pc_bin_put_uv(out, f->size);
        pc_bin_put_uv(out, f->chunks);
    }
}

int pool_room_req_decode(const void *p, size_t len, struct pc_arena *arena,
                         struct pool_room_req *out)
{
    struct pc_bin_reader r;
    memset(out, 0, sizeof *out);
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    out->req_id = pc_bin_get_uv(&r);
    uint64_t kind = pc_bin_get_uv(&r);
    if (kind < ROOM_REQ_POST || kind > ROOM_REQ_FILE_FETCH)
        fail(&r);
    struct room_req *q = &out->req;
    q->kind = (enum room_req_kind)kind;
    q->room_no = pc_bin_get_uv(&r);
    q->user = get_str(&r, arena, POOL_MSG_MAX_USER);
    q->session = pc_bin_get_uv(&r);
    q->text = get_str(&r, arena, POOL_MSG_MAX_TEXT);
    q->count = (uint32_t)get_bounded(&r, UINT32_MAX);
    q->before = pc_bin_get_uv(&r);
    q->upto = pc_bin_get_uv(&r);
    uint8_t flags = pc_bin_get_u8(&r);
    if (flags > 31)
        fail(&r);
    if (flags & 16) {
        size_t n = get_count(&r, MIN_MSG_BYTES);
        if (n == 0 || n > ROOM_IMPORT_MAX)
            fail(&r);
        struct room_msg *m = r.err == 0 ? pc_arena_alloc(arena, n * sizeof *m) : NULL;
        for (size_t i = 0; i < n && r.err == 0; i++)
            get_msg(&r, arena, &m[i]);
        q->msgs = m;
        q->n_msgs = r.err == 0 ? n : 0;
    }
    q->record_read = (flags & 1) != 0;
    q->any_replica = (flags & 2) != 0;
    if (flags & 8) {
        struct room_edit *e = &out->edit;
        e->author = get_str(&r, arena, POOL_MSG_MAX_USER);
        e->keywords = get_str(&r, arena, POOL_MSG_MAX_USER);
        uint8_t match = pc_bin_get_u8(&r), bits = pc_bin_get_u8(&r);
        if (match > ROOM_MATCH_EXACT || bits > 3)
            fail(&r);
        e->match = (enum room_edit_match)match;
        e->case_sensitive = (bits & 1) != 0;
        e->remove = (bits & 2) != 0;
        e->from_us = pc_bin_get_sv(&r);
        e->to_us = pc_bin_get_sv(&r);
        e->seq = pc_bin_get_uv(&r);
        e->after = pc_bin_get_uv(&r);
        q->edit = e;
    }
    if (flags & 4) {
        q->file_no = pc_bin_get_uv(&r);
        q->chunk = (uint32_t)get_bounded(&r, UINT32_MAX);
        struct pc_str d = pc_bin_get_bytes(&r);
        if (d.len > POOL_MSG_MAX_CHUNK)
            fail(&r);
        q->data = d.p; /* borrowed from p, as the strings are from the arena */
        q->data_len = d.len;
        if (pc_bin_get_u8(&r) != 0) {
            struct room_file *f = &out->file;
            f->file_no = pc_bin_get_uv(&r);
            f->name = get_str(&r, arena, POOL_MSG_MAX_USER);
            f->uploader = get_str(&r, arena, POOL_MSG_MAX_USER);
            f->sha256 = get_str(&r, arena, 64);
            f->size = pc_bin_get_uv(&r);
            f->chunks = (uint32_t)get_bounded(&r, UINT32_MAX);
            f->room_no = q->room_no;
            q->file = f;
        }
    }
    if (q->kind == ROOM_REQ_FILE_CHUNK && (q->data_len == 0 || q->file_no == 0))
        fail(&r);
    if ((q->kind == ROOM_REQ_EDIT || q->kind == ROOM_REQ_PURGE) && q->edit == NULL)
        fail(&r);
    if (q->kind == ROOM_REQ_IMPORT && q->n_msgs == 0)
        fail(&r);
    if (q->kind == ROOM_REQ_FILE_FETCH && q->file_no == 0)
        fail(&r);
    int rc = finish(&r);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- 2 ROOM_RES ------------------------------------------------------------------------ */

void pool_room_res_encode(struct pc_buf *out, uint64_t req_id, const struct room_res *res)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, req_id);
    pc_bin_put_sv(out, res->status);
    pc_bin_put_uv(out, res->seq);
    pc_bin_put_uv(out, res->floor);
    pc_bin_put_sv(out, res->ts_us);
    size_t n_msgs = res->msgs != NULL ? res->n_msgs : 0;
    pc_bin_put_uv(out, n_msgs);
    for (size_t i = 0; i < n_msgs; i++)
        put_msg(out, &res->msgs[i]);
    size_t n_present = res->present != NULL ? res->n_present : 0;
    pc_bin_put_uv(out, n_present);
    for (size_t i = 0; i < n_present; i++) {
        pc_bin_put_str(out, res->present[i].user);
        pc_bin_put_uv(out, res->present[i].sessions);
    }
    pc_bin_put_bytes(out, res->data, res->data != NULL ? res->data_len : 0);
}

int pool_room_res_decode(const void *p, size_t len, struct pc_arena *arena,
                         struct pool_room_res *out)
{
    struct pc_bin_reader r;
    memset(out, 0, sizeof *out);
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    out->req_id = pc_bin_get_uv(&r);
    struct room_res *res = &out->res;
    res->status = get_status(&r);
    res->seq = pc_bin_get_uv(&r);
    res->floor = pc_bin_get_uv(&r);
    res->ts_us = pc_bin_get_sv(&r);

    size_t n = get_count(&r, MIN_MSG_BYTES);
    if (n > 0) {
        struct room_msg *msgs = pc_arena_alloc(arena, n * sizeof *msgs);
        for (size_t i = 0; i < n && r.err == 0; i++)
            get_msg(&r, arena, &msgs[i]);
        res->msgs = msgs;
        res->n_msgs = n;
    }

    n = get_count(&r, MIN_PRESENCE_BYTES);
    if (n > 0) {
        struct room_presence *present = pc_arena_alloc(arena, n * sizeof *present);
        for (size_t i = 0; i < n && r.err == 0; i++) {
            present[i].user = get_str(&r, arena, POOL_MSG_MAX_USER);
            present[i].sessions = (unsigned)get_bounded(&r, UINT_MAX);
        }
        res->present = present;
        res->n_present = n;
    }

    struct pc_str d = pc_bin_get_bytes(&r);
    if (d.len > POOL_MSG_MAX_CHUNK)
        fail(&r);
    if (r.err == 0 && d.len > 0) {
        res->data = d.p; /* borrowed from p */
        res->data_len = d.len;
    }
    int rc = finish(&r);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- 3 ROOM_EVENT ---------------------------------------------------------------------- */

void pool_room_event_encode(struct pc_buf *out, const struct room_event *ev)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, (uint64_t)ev->kind);
    pc_bin_put_uv(out, ev->room_no);
    if (ev->kind == ROOM_EV_MESSAGE) {
        static const struct room_msg none;
        put_msg(out, ev->msg != NULL ? ev->msg : &none);
    } else {
        pc_bin_put_str(out, ev->user);
    }
}

int pool_room_event_decode(const void *p, size_t len, struct pc_arena *arena,
                           struct room_event *out)
{
    struct pc_bin_reader r;
    memset(out, 0, sizeof *out);
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    uint64_t kind = pc_bin_get_uv(&r);
    out->kind = (enum room_event_kind)kind;
    out->room_no = pc_bin_get_uv(&r);
    switch (kind) {
    case ROOM_EV_MESSAGE: {
        if (r.err != 0)
            break;
        struct room_msg *m = pc_arena_alloc(arena, sizeof *m);
        get_msg(&r, arena, m);
        out->msg = m;
        break;
    }
    case ROOM_EV_ENTERED:
    case ROOM_EV_LEFT:
        out->user = get_str(&r, arena, POOL_MSG_MAX_USER);
        break;
    default:
        fail(&r);
    }
    int rc = finish(&r);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- 4 META_REQ ------------------------------------------------------------------------ */

void pool_meta_req_encode(struct pc_buf *out, uint64_t req_id, const struct meta_op *op)
{
    struct pc_buf blob = {0};
    meta_op_encode(op, &blob);
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, req_id);
    pc_bin_put_bytes(out, blob.data, blob.len);
    pc_buf_free(&blob);
}

int pool_meta_req_decode(const void *p, size_t len, struct pool_meta_req *out)
{
    struct pc_bin_reader r;
    memset(out, 0, sizeof *out);
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    out->req_id = pc_bin_get_uv(&r);
    struct pc_str blob = pc_bin_get_bytes(&r);
    if (finish(&r) != 0 || meta_op_decode(blob.p, blob.len, &out->op) != 0) {
        /* meta_op_decode clears the op itself when it fails. */
        memset(out, 0, sizeof *out);
        return PC_EPROTO;
    }
    return 0;
}

/* ---- 5 META_RES ------------------------------------------------------------------------ */

void pool_meta_res_encode(struct pc_buf *out, uint64_t req_id, const struct meta_result *res,
                          uint64_t applied_index)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, req_id);
    pc_bin_put_sv(out, res->status);
    pc_bin_put_bytes(out, res->errmsg, strnlen(res->errmsg, sizeof res->errmsg - 1));
    pc_bin_put_uv(out, res->no);
    pc_bin_put_uv(out, applied_index);
}

int pool_meta_res_decode(const void *p, size_t len, struct pc_arena *arena,
                         struct pool_meta_res *out)
{
    (void)arena;
    struct pc_bin_reader r;
    memset(out, 0, sizeof *out);
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    out->req_id = pc_bin_get_uv(&r);
    out->res.status = get_status(&r);
    struct pc_str msg = pc_bin_get_bytes(&r);
    if (r.err == 0 && (msg.len >= sizeof out->res.errmsg || memchr(msg.p, '\0', msg.len) != NULL))
        fail(&r);
    if (r.err == 0)
        memcpy(out->res.errmsg, msg.p, msg.len); /* NUL from the memset */
    out->res.no = pc_bin_get_uv(&r);
    out->applied_index = pc_bin_get_uv(&r);
    int rc = finish(&r);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- 6 SUBSCRIBE ----------------------------------------------------------------------- */

void pool_subscribe_encode(struct pc_buf *out, const struct pool_subscribe *sub)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, sub->room_no);
    pc_bin_put_uv(out, sub->last_delivered);
    size_t n = sub->sessions != NULL ? sub->n_sessions : 0;
    pc_bin_put_uv(out, n);
    for (size_t i = 0; i < n; i++) {
        pc_bin_put_uv(out, sub->sessions[i].session);
        pc_bin_put_str(out, sub->sessions[i].user);
    }
    pc_bin_put_uv(out, sub->req_id);
}

int pool_subscribe_decode(const void *p, size_t len, struct pc_arena *arena,
                          struct pool_subscribe *out)
{
    struct pc_bin_reader r;
    memset(out, 0, sizeof *out);
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    out->room_no = pc_bin_get_uv(&r);
    out->last_delivered = pc_bin_get_uv(&r);
    size_t n = get_count(&r, MIN_SUB_SESSION_BYTES);
    if (n > 0) {
        struct pool_sub_session *s = pc_arena_alloc(arena, n * sizeof *s);
        for (size_t i = 0; i < n && r.err == 0; i++) {
            s[i].session = pc_bin_get_uv(&r);
            s[i].user = get_str(&r, arena, POOL_MSG_MAX_USER);
        }
        out->sessions = s;
        out->n_sessions = n;
    }
    out->req_id = pc_bin_get_uv(&r);
    int rc = finish(&r);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---- 7 RESYNC ----------------------------------------------------------------------------- */

void pool_resync_encode(struct pc_buf *out)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
}

int pool_resync_decode(const void *p, size_t len)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    return finish(&r);
}

/* ---- 8 META_SYNC -------------------------------------------------------------------------- */

void pool_meta_sync_encode(struct pc_buf *out, uint64_t req_id)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_uv(out, req_id);
}

int pool_meta_sync_decode(const void *p, size_t len, uint64_t *req_id)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    *req_id = pc_bin_get_uv(&r);
    int rc = finish(&r);
    if (rc != 0)
        *req_id = 0;
    return rc;
}

/* ---- 9 NODE_STATE ------------------------------------------------------------------------- */

void pool_node_state_encode(struct pc_buf *out, unsigned flags)
{
    pc_bin_put_u8(out, POOL_MSG_V1);
    pc_bin_put_u8(out, (uint8_t)flags);
}

int pool_node_state_decode(const void *p, size_t len, unsigned *flags)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, p, len);
    get_version(&r);
    *flags = pc_bin_get_u8(&r);
    int rc = finish(&r);
    if (rc != 0)
        *flags = 0;
    return rc;
}
