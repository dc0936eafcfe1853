/* Binary encoding of metadata records and operations (stored values, raft entries). */
#include <string.h>

#include "cluster/meta.h"
#include "cluster/meta_int.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"

/* Every record starts with a format version so that later releases can read old data. */
/* Categories and rooms: V2 adds retention (keep_days, keep_messages). */
enum { RECORD_V1 = 1, RECORD_V2 = 2, MAX_STR = 64 * 1024, MAX_LIST = 100000 };

static void put_principals(struct pc_buf *b, const struct meta_principals *p)
{
    pc_bin_put_uv(b, p->n);
    for (size_t i = 0; i < p->n; i++)
        pc_bin_put_str(b, p->items[i]);
}

static void get_principals(struct pc_bin_reader *r, struct meta_principals *p)
{
    uint64_t n = pc_bin_get_uv(r);
    if (n > MAX_LIST) {
        r->err = PC_ECORRUPT;
        return;
    }
    for (uint64_t i = 0; i < n && r->err == 0; i++) {
        char *s = pc_bin_get_str(r, 512);
        meta_principals_add(p, s);
        pc_free(s);
    }
}

static void get_guid(struct pc_bin_reader *r, char *guid)
{
    char *s = pc_bin_get_str(r, PC_GUID_LEN - 1);
    memcpy(guid, s, strlen(s) + 1);
    pc_free(s);
}

/* The record's version byte: V1 or V2 (retention follows at the end). */
static uint8_t get_version_v2(struct pc_bin_reader *r)
{
    uint8_t v = pc_bin_get_u8(r);
    if (v != RECORD_V1 && v != RECORD_V2 && r->err == 0)
        r->err = PC_ECORRUPT;
    return v;
}

static uint32_t get_u32(struct pc_bin_reader *r)
{
    uint64_t v = pc_bin_get_uv(r);
    if (v > UINT32_MAX && r->err == 0)
        r->err = PC_ECORRUPT;
    return (uint32_t)v;
}

void meta_category_encode(const struct meta_category *c, struct pc_buf *b)
{
    pc_bin_put_u8(b, RECORD_V2);
    pc_bin_put_uv(b, c->no);
    pc_bin_put_str(b, c->guid);
    pc_bin_put_str(b, c->name);
    pc_bin_put_str(b, c->description);
    put_principals(b, &c->allowed);
    put_principals(b, &c->denied);
    put_principals(b, &c->creators);
    pc_bin_put_u8(b, (uint8_t)(c->file_upload | c->chat_history << 1 | c->invitations << 2));
    pc_bin_put_uv(b, c->keep_days);
    pc_bin_put_uv(b, c->keep_messages);
}

int meta_category_decode(struct pc_bin_reader *r, struct meta_category *c)
{
    uint8_t version = get_version_v2(r);
    c->no = pc_bin_get_uv(r);
    get_guid(r, c->guid);
    c->name = pc_bin_get_str(r, MAX_STR);
    c->description = pc_bin_get_str(r, MAX_STR);
    get_principals(r, &c->allowed);
    get_principals(r, &c->denied);
    get_principals(r, &c->creators);
    uint8_t f = pc_bin_get_u8(r);
    c->file_upload = f & 1;
    c->chat_history = (f >> 1) & 1;
    c->invitations = (f >> 2) & 1;
    if (version == RECORD_V2) {
        c->keep_days = get_u32(r);
        c->keep_messages = get_u32(r);
    }
    return r->err;
}

void meta_room_encode(const struct meta_room *rm, struct pc_buf *b)
{
    pc_bin_put_u8(b, RECORD_V2);
    pc_bin_put_uv(b, rm->no);
    pc_bin_put_str(b, rm->guid);
    pc_bin_put_str(b, rm->name);
    pc_bin_put_str(b, rm->description);
    pc_bin_put_uv(b, rm->category_no);
    pc_bin_put_u8(b, (uint8_t)rm->privacy);
    pc_bin_put_u8(b, (uint8_t)rm->type);
    pc_bin_put_u8(b, (uint8_t)(rm->disabled | rm->invitations << 1));
    put_principals(b, &rm->managers);
    put_principals(b, &rm->members);
    put_principals(b, &rm->presenters);
    pc_bin_put_str(b, rm->creator);
    pc_bin_put_sv(b, rm->created_us);
    pc_bin_put_uv(b, rm->shard);
    pc_bin_put_uv(b, rm->keep_days);
    pc_bin_put_uv(b, rm->keep_messages);
}

int meta_room_decode(struct pc_bin_reader *r, struct meta_room *rm)
{
    uint8_t version = get_version_v2(r);
    rm->no = pc_bin_get_uv(r);
    get_guid(r, rm->guid);
    rm->name = pc_bin_get_str(r, MAX_STR);
    rm->description = pc_bin_get_str(r, MAX_STR);
    rm->category_no = pc_bin_get_uv(r);
    uint8_t privacy = pc_bin_get_u8(r), type = pc_bin_get_u8(r), f = pc_bin_get_u8(r);
    if (privacy > META_SECRET || type > META_AUDITORIUM)
        r->err = PC_ECORRUPT;
    rm->privacy = (enum meta_privacy)privacy;
    rm->type = (enum meta_room_type)type;
    rm->disabled = f & 1;
    rm->invitations = (f >> 1) & 1;
    get_principals(r, &rm->managers);
    get_principals(r, &rm->members);
    get_principals(r, &rm->presenters);
    rm->creator = pc_bin_get_str(r, MAX_STR);
    rm->created_us = pc_bin_get_sv(r);
    uint64_t shard = pc_bin_get_uv(r);
    if (shard > 0xffffffffu)
        r->err = PC_ECORRUPT;
    rm->shard = (uint32_t)shard;
    if (version == RECORD_V2) {
        rm->keep_days = get_u32(r);
        rm->keep_messages = get_u32(r);
    }
    return r->err;
}

void meta_user_encode(const struct meta_user *u, struct pc_buf *b)
{
    pc_bin_put_u8(b, RECORD_V1);
    pc_bin_put_str(b, u->uri);
    pc_bin_put_str(b, u->display_name);
    pc_bin_put_u8(b, (uint8_t)(u->disabled | u->chat_enabled << 1 | u->admin << 2));
    pc_bin_put_str(b, u->password_hash);
}

int meta_user_decode(struct pc_bin_reader *r, struct meta_user *u)
{
    if (pc_bin_get_u8(r) != RECORD_V1 && r->err == 0)
        r->err = PC_ECORRUPT;
    u->uri = pc_bin_get_str(r, 255);
    u->display_name = pc_bin_get_str(r, MAX_STR);
    uint8_t f = pc_bin_get_u8(r);
    u->disabled = f & 1;
    u->chat_enabled = (f >> 1) & 1;
    u->admin = (f >> 2) & 1;
    u->password_hash = pc_bin_get_str(r, 1024);
    if (u->password_hash[0] == '\0') {
        pc_free(u->password_hash);
        u->password_hash = NULL;
    }
    return r->err;
}

static void get_fixed(struct pc_bin_reader *r, char *dst, size_t cap)
{
    char *s = pc_bin_get_str(r, cap - 1);
    memcpy(dst, s, strlen(s) + 1);
    pc_free(s);
}

void meta_settings_encode(const struct meta_settings *s, struct pc_buf *b)
{
    pc_bin_put_u8(b, RECORD_V1);
    pc_bin_put_uv(b, s->default_history);
    pc_bin_put_uv(b, s->participant_update_limit);
    pc_bin_put_uv(b, s->max_file_kb);
    pc_bin_put_str(b, s->removal_notice);
}

int meta_settings_decode(struct pc_bin_reader *r, struct meta_settings *s)
{
    if (pc_bin_get_u8(r) != RECORD_V1 && r->err == 0)
        r->err = PC_ECORRUPT;
    s->default_history = get_u32(r);
    s->participant_update_limit = get_u32(r);
    s->max_file_kb = get_u32(r);
    get_fixed(r, s->removal_notice, sizeof s->removal_notice);
    return r->err;
}

void meta_op_encode(const struct meta_op *op, struct pc_buf *out)
{
    pc_bin_put_u8(out, RECORD_V1);
    pc_bin_put_u8(out, (uint8_t)op->kind);
    pc_bin_put_sv(out, op->ts_us);
    pc_bin_put_str(out, op->actor);
    pc_bin_put_str(out, op->node);
    switch (op->kind) {
    case META_OP_CATEGORY_PUT:
    case META_OP_CATEGORY_DEL:
        meta_category_encode(&op->cat, out);
        break;
    case META_OP_ROOM_PUT:
    case META_OP_ROOM_DEL:
        meta_room_encode(&op->room, out);
        break;
    case META_OP_USER_PUT:
    case META_OP_USER_DEL:
        meta_user_encode(&op->user, out);
        break;
    case META_OP_FOLLOW:
    case META_OP_INVITE:
        pc_bin_put_uv(out, op->room_no);
        pc_bin_put_str(out, op->target_user);
        pc_bin_put_u8(out, op->flag);
        break;
    case META_OP_INIT:
        pc_bin_put_uv(out, op->shard_count);
        pc_bin_put_str(out, op->domain);
        break;
    case META_OP_NODES:
        pc_bin_put_str(out, op->nodes);
        pc_bin_put_str(out, op->prev_nodes);
        break;
    case META_OP_SETTINGS:
        meta_settings_encode(&op->settings, out);
        break;
    case META_OP_COMPL_CURSOR:
    case META_OP_COMPL_FORGET:
        pc_bin_put_str(out, op->adapter);
        pc_bin_put_uv(out, op->kind == META_OP_COMPL_CURSOR ? op->n_positions : 0);
        for (size_t i = 0; op->kind == META_OP_COMPL_CURSOR && i < op->n_positions; i++) {
            pc_bin_put_uv(out, op->positions[i].group);
            pc_bin_put_uv(out, op->positions[i].index);
            pc_bin_put_uv(out, op->positions[i].n);
        }
        break;
    }
}


int meta_op_decode(const void *p, size_t len, struct meta_op *op)
{
    struct pc_bin_reader r;
    memset(op, 0, sizeof *op);
    pc_bin_reader_init(&r, p, len);
    if (pc_bin_get_u8(&r) != RECORD_V1)
        return PC_ECORRUPT;
    op->kind = (enum meta_op_kind)pc_bin_get_u8(&r);
    op->ts_us = pc_bin_get_sv(&r);
    get_fixed(&r, op->actor, sizeof op->actor);
    get_fixed(&r, op->node, sizeof op->node);
    switch (op->kind) {
    case META_OP_CATEGORY_PUT:
    case META_OP_CATEGORY_DEL:
        meta_category_decode(&r, &op->cat);
        break;
    case META_OP_ROOM_PUT:
    case META_OP_ROOM_DEL:
        meta_room_decode(&r, &op->room);
        break;
    case META_OP_USER_PUT:
    case META_OP_USER_DEL:
        meta_user_decode(&r, &op->user);
        break;
    case META_OP_FOLLOW:
    case META_OP_INVITE:
        op->room_no = pc_bin_get_uv(&r);
        get_fixed(&r, op->target_user, sizeof op->target_user);
        op->flag = pc_bin_get_u8(&r) != 0;
        break;
    case META_OP_INIT: {
        uint64_t n = pc_bin_get_uv(&r);
        if (n == 0 || n > 4096)
            r.err = PC_ECORRUPT;
        op->shard_count = (uint32_t)n;
        get_fixed(&r, op->domain, sizeof op->domain);
        break;
    }
    case META_OP_NODES:
        get_fixed(&r, op->nodes, sizeof op->nodes);
        get_fixed(&r, op->prev_nodes, sizeof op->prev_nodes);
        break;
    case META_OP_SETTINGS:
        meta_settings_decode(&r, &op->settings);
        break;
    case META_OP_COMPL_CURSOR:
    case META_OP_COMPL_FORGET: {
        get_fixed(&r, op->adapter, sizeof op->adapter);
        uint64_t n = pc_bin_get_uv(&r);
        /* Each position takes at least 3 bytes: never allocate more than the input holds. */
        if (n > 4097 || n * 3 > len) {
            r.err = PC_ECORRUPT;
            break;
        }
        op->positions = n ? pc_calloc(n, sizeof *op->positions) : NULL;
        op->n_positions = n;
        for (size_t i = 0; i < n && r.err == 0; i++) {
            uint64_t g = pc_bin_get_uv(&r), idx = pc_bin_get_uv(&r), k = pc_bin_get_uv(&r);
            if (g > UINT32_MAX || k > UINT32_MAX)
                r.err = PC_ECORRUPT;
            op->positions[i] = (struct meta_compl_pos){(uint32_t)g, idx, (uint32_t)k};
        }
        break;
    }
    default:
        r.err = PC_ECORRUPT;
    }
    if (r.err == 0 && !pc_bin_at_end(&r))
        r.err = PC_ECORRUPT;
    if (r.err != 0) {
        meta_op_clear(op);
        return PC_ECORRUPT;
    }
    return 0;
}

void meta_op_clear(struct meta_op *op)
{
    pc_free(op->positions);
    op->positions = NULL;
    op->n_positions = 0;
    meta_category_clear(&op->cat);
    meta_room_clear(&op->room);
    meta_user_clear(&op->user);
}
