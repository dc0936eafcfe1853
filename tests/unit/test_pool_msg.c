/* Unit tests for cluster/pool_msg: the peer-link payload codecs. Round trips of every type
 * with edge values, every truncation, trailing bytes, seeded random and mutated inputs, and
 * bounds on strings and list counts (checked before anything is allocated). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/pool_msg.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define UTF8 "gr\xc3\xbc\xc3\x9f dich, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80"

/* ---- a decoder for any type, so that the damage tests can loop over them ---------------- */

static int decode_any(uint8_t type, const void *p, size_t len, struct pc_arena *a)
{
    switch (type) {
    case POOL_MSG_ROOM_REQ: {
        struct pool_room_req m;
        return pool_room_req_decode(p, len, a, &m);
    }
    case POOL_MSG_ROOM_RES: {
        struct pool_room_res m;
        return pool_room_res_decode(p, len, a, &m);
    }
    case POOL_MSG_ROOM_EVENT: {
        struct room_event m;
        return pool_room_event_decode(p, len, a, &m);
    }
    case POOL_MSG_META_REQ: {
        struct pool_meta_req m;
        int rc = pool_meta_req_decode(p, len, &m);
        if (rc == 0)
            meta_op_clear(&m.op);
        return rc;
    }
    case POOL_MSG_META_RES: {
        struct pool_meta_res m;
        return pool_meta_res_decode(p, len, a, &m);
    }
    case POOL_MSG_SUBSCRIBE: {
        struct pool_subscribe m;
        return pool_subscribe_decode(p, len, a, &m);
    }
    }
    fail_msg("bad type %u", type);
    return -1;
}

/* ---- sample messages (one or more valid encodings of every type) ------------------------ */

static const struct room_msg sample_msgs[] = {
    {1, 1, 0, ALICE, "hello"},
    {UINT64_MAX, UINT64_MAX, INT64_MAX, "", ""},
    {0, 0, INT64_MIN, BOB, UTF8},
};
static const struct room_presence sample_present[] = {
    {ALICE, 1},
    {"", 0},
    {UTF8, UINT_MAX},
};
static const struct pool_sub_session sample_sessions[] = {
    {0, ALICE},
    {UINT64_MAX, ""},
    {42, UTF8},
};

static void room_put_op(struct meta_op *op)
{
    memset(op, 0, sizeof *op);
    op->kind = META_OP_ROOM_PUT;
    op->ts_us = -5;
    snprintf(op->actor, sizeof op->actor, "%s", ALICE);
    snprintf(op->node, sizeof op->node, "n1");
    op->room.no = UINT64_MAX;
    snprintf(op->room.guid, sizeof op->room.guid, "00000001-0000-4000-8000-000000000001");
    op->room.name = pc_strdup(UTF8);
    op->room.description = pc_strdup("");
    op->room.category_no = 3;
    op->room.privacy = META_SECRET;
    op->room.creator = pc_strdup(ALICE);
    op->room.created_us = 1700000000000000;
    meta_principals_add(&op->room.managers, ALICE);
    meta_principals_add(&op->room.members, "*@example.test");
    meta_principals_add(&op->room.members, BOB);
}

/* Appends every sample encoding of `type` (each as its own buffer) to bufs; returns the count. */
static size_t samples(uint8_t type, struct pc_buf *bufs)
{
    size_t n = 0;
    switch (type) {
    case POOL_MSG_ROOM_REQ: {
        struct room_req q = {ROOM_REQ_POST, 7, ALICE, 0, UTF8, 0, 0, 0, false};
        pool_room_req_encode(&bufs[n++], 1, &q);
        struct room_req h = {ROOM_REQ_HISTORY, UINT64_MAX, "", UINT64_MAX, "", UINT32_MAX,
                             UINT64_MAX, UINT64_MAX, true};
        pool_room_req_encode(&bufs[n++], UINT64_MAX, &h);
        break;
    }
    case POOL_MSG_ROOM_RES: {
        struct room_res r = {PC_EUNAVAIL, UINT64_MAX, INT64_MIN, sample_msgs, 3, sample_present, 3};
        pool_room_res_encode(&bufs[n++], 9, &r);
        struct room_res e = {0};
        pool_room_res_encode(&bufs[n++], 0, &e);
        break;
    }
    case POOL_MSG_ROOM_EVENT: {
        struct room_event m = {ROOM_EV_MESSAGE, 5, &sample_msgs[2], NULL};
        pool_room_event_encode(&bufs[n++], &m);
        struct room_event u = {ROOM_EV_LEFT, UINT64_MAX, NULL, UTF8};
        pool_room_event_encode(&bufs[n++], &u);
        break;
    }
    case POOL_MSG_META_REQ: {
        struct meta_op op;
        room_put_op(&op);
        pool_meta_req_encode(&bufs[n++], UINT64_MAX, &op);
        meta_op_clear(&op);
        break;
    }
    case POOL_MSG_META_RES: {
        struct meta_result r = {PC_EEXIST, "a room with that name exists", 0};
        pool_meta_res_encode(&bufs[n++], 3, &r, UINT64_MAX);
        break;
    }
    case POOL_MSG_SUBSCRIBE: {
        struct pool_subscribe s = {UINT64_MAX, 0, sample_sessions, 3};
        pool_subscribe_encode(&bufs[n++], &s);
        break;
    }
    }
    return n;
}

static void free_bufs(struct pc_buf *bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pc_buf_free(&bufs[i]);
}

/* ---- round trips ------------------------------------------------------------------------ */

static void assert_msg_equal(const struct room_msg *a, const struct room_msg *b)
{
    assert_true(a->room_no == b->room_no);
    assert_true(a->seq == b->seq);
    assert_true(a->ts_us == b->ts_us);
    assert_string_equal(a->author, b->author);
    assert_string_equal(a->text, b->text);
}

static void roomReq_roundTrips(void **state)
{
    (void)state;
    struct room_req reqs[] = {
        {ROOM_REQ_POST, 7, ALICE, 0, UTF8, 0, 0, 0, false},
        {ROOM_REQ_JOIN, 0, "", UINT64_MAX, NULL, 0, 0, 0, false},
        {ROOM_REQ_PART, 1, BOB, 1, "", 0, 0, 0, false},
        {ROOM_REQ_HISTORY, UINT64_MAX, ALICE, 0, NULL, UINT32_MAX, UINT64_MAX, UINT64_MAX, true, true},
    };
    uint64_t ids[] = {0, 1, UINT64_MAX, 1ull << 63};
    for (size_t i = 0; i < 4; i++) {
        struct pc_buf b = {0};
        struct pc_arena a = {0};
        struct pool_room_req d;
        pool_room_req_encode(&b, ids[i], &reqs[i]);
        assert_int_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
        assert_true(d.req_id == ids[i]);
        assert_int_equal(d.req.kind, reqs[i].kind);
        assert_true(d.req.room_no == reqs[i].room_no);
        assert_string_equal(d.req.user, reqs[i].user);
        assert_true(d.req.session == reqs[i].session);
        assert_string_equal(d.req.text, reqs[i].text != NULL ? reqs[i].text : "");
        assert_true(d.req.count == reqs[i].count);
        assert_true(d.req.before == reqs[i].before);
        assert_true(d.req.upto == reqs[i].upto);
        assert_true(d.req.record_read == reqs[i].record_read);
        assert_true(d.req.any_replica == reqs[i].any_replica);
        pc_arena_free(&a);
        pc_buf_free(&b);
    }
}

static void roomReq_carriesFileChunksAndRecords(void **state)
{
    (void)state;
    struct room_file file = {.room_no = 9, .file_no = 42, .name = "r.pdf", .uploader = ALICE,
                             .sha256 = "beef", .size = 5, .chunks = 1};
    struct room_req chunk = {.kind = ROOM_REQ_FILE_CHUNK, .room_no = 9, .user = ALICE,
                             .file_no = 42, .chunk = 3, .data = "hello", .data_len = 5};
    struct room_req post = {.kind = ROOM_REQ_POST, .room_no = 9, .user = ALICE, .text = "t",
                            .file = &file};
    struct pc_buf b = {0};
    struct pc_arena a = {0};
    struct pool_room_req d;
    pool_room_req_encode(&b, 1, &chunk);
    assert_int_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    assert_int_equal(d.req.kind, ROOM_REQ_FILE_CHUNK);
    assert_true(d.req.file_no == 42 && d.req.chunk == 3 && d.req.data_len == 5);
    assert_memory_equal(d.req.data, "hello", 5);
    assert_null(d.req.file);
    pc_buf_reset(&b);
    pool_room_req_encode(&b, 2, &post);
    assert_int_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    assert_non_null(d.req.file);
    assert_true(d.req.file == &d.file && d.file.file_no == 42 && d.file.size == 5);
    assert_string_equal(d.file.name, "r.pdf");
    assert_string_equal(d.file.sha256, "beef");
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_not_equal(pool_room_req_decode(b.data, cut, &a, &d), 0);
    /* A chunk without bytes is refused. */
    chunk.data_len = 0;
    pc_buf_reset(&b);
    pool_room_req_encode(&b, 3, &chunk);
    assert_int_not_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    pc_arena_free(&a);
    pc_buf_free(&b);
}

/* Administrators' requests and the repair fetch: every field survives, flags included. */
static void roomReq_carriesEditsImportsAndFetches(void **state)
{
    (void)state;
    struct room_edit e = {.author = BOB, .keywords = "launch code", .match = ROOM_MATCH_EXACT,
                          .case_sensitive = true, .remove = true, .from_us = -5,
                          .to_us = INT64_MAX, .seq = 77};
    struct room_req edit = {.kind = ROOM_REQ_EDIT, .room_no = 3, .user = ALICE, .text = "gone",
                            .edit = &e};
    struct room_msg msgs[2] = {{3, 10, 1000, ALICE, UTF8, ROOM_MSG_REPLACED},
                               {3, 11, 2000, BOB, "", ROOM_MSG_REMOVED}};
    struct room_req import = {.kind = ROOM_REQ_IMPORT, .room_no = 3, .user = ALICE,
                              .msgs = msgs, .n_msgs = 2};
    struct room_req fetch = {.kind = ROOM_REQ_FILE_FETCH, .room_no = 3, .user = ALICE,
                             .file_no = 99, .chunk = 4, .any_replica = true};
    struct pc_buf b = {0};
    struct pc_arena a = {0};
    struct pool_room_req d;
    pool_room_req_encode(&b, 1, &edit);
    assert_int_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    assert_true(d.req.edit == &d.edit);
    assert_string_equal(d.edit.author, BOB);
    assert_string_equal(d.edit.keywords, "launch code");
    assert_int_equal(d.edit.match, ROOM_MATCH_EXACT);
    assert_true(d.edit.case_sensitive && d.edit.remove);
    assert_true(d.edit.from_us == -5 && d.edit.to_us == INT64_MAX && d.edit.seq == 77);
    assert_string_equal(d.req.text, "gone");
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_not_equal(pool_room_req_decode(b.data, cut, &a, &d), 0);
    pc_buf_reset(&b);
    pool_room_req_encode(&b, 2, &import);
    assert_int_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    assert_int_equal(d.req.n_msgs, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_msg_equal(&d.req.msgs[i], &msgs[i]);
        assert_int_equal(d.req.msgs[i].flags, msgs[i].flags);
    }
    pc_buf_reset(&b);
    pool_room_req_encode(&b, 3, &fetch);
    assert_int_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    assert_true(d.req.kind == ROOM_REQ_FILE_FETCH && d.req.file_no == 99 && d.req.chunk == 4);
    /* An edit without its filter, an import without messages: refused. */
    edit.edit = NULL;
    pc_buf_reset(&b);
    pool_room_req_encode(&b, 4, &edit);
    assert_int_not_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    import.n_msgs = 0;
    pc_buf_reset(&b);
    pool_room_req_encode(&b, 5, &import);
    assert_int_not_equal(pool_room_req_decode(b.data, b.len, &a, &d), 0);
    pc_arena_free(&a);
    pc_buf_free(&b);
}

static void check_room_res(uint64_t req_id, const struct room_res *r)
{
    struct pc_buf b = {0};
    struct pc_arena a = {0};
    struct pool_room_res d;
    pool_room_res_encode(&b, req_id, r);
    assert_int_equal(pool_room_res_decode(b.data, b.len, &a, &d), 0);
    assert_true(d.req_id == req_id);
    assert_int_equal(d.res.status, r->status);
    assert_true(d.res.seq == r->seq);
    assert_true(d.res.ts_us == r->ts_us);
    assert_int_equal(d.res.n_msgs, r->n_msgs);
    for (size_t i = 0; i < r->n_msgs; i++)
        assert_msg_equal(&d.res.msgs[i], &r->msgs[i]);
    if (r->n_msgs == 0)
        assert_null(d.res.msgs);
    assert_int_equal(d.res.n_present, r->n_present);
    for (size_t i = 0; i < r->n_present; i++) {
        assert_string_equal(d.res.present[i].user, r->present[i].user);
        assert_int_equal(d.res.present[i].sessions, r->present[i].sessions);
    }
    if (r->n_present == 0)
        assert_null(d.res.present);
    pc_arena_free(&a);
    pc_buf_free(&b);
}

static void roomRes_roundTrips(void **state)
{
    (void)state;
    struct room_res empty = {0};
    check_room_res(0, &empty);
    struct room_res full = {PC_EUNAVAIL, UINT64_MAX, INT64_MIN, sample_msgs, 3, sample_present, 3};
    check_room_res(UINT64_MAX, &full);
    struct room_res lowest = {INT_MIN, 0, INT64_MAX, NULL, 0, NULL, 0};
    check_room_res(1, &lowest);

    /* The longest lists accepted. */
    struct room_msg *msgs = pc_calloc(POOL_MSG_MAX_LIST, sizeof *msgs);
    struct room_presence *present = pc_calloc(POOL_MSG_MAX_LIST, sizeof *present);
    char (*names)[32] = pc_calloc(POOL_MSG_MAX_LIST, sizeof *names);
    for (size_t i = 0; i < POOL_MSG_MAX_LIST; i++) {
        snprintf(names[i], sizeof names[i], "sip:u%zu@example.test", i);
        msgs[i] = (struct room_msg){9, i + 1, (int64_t)i * 1000, names[i], i % 2 ? UTF8 : ""};
        present[i] = (struct room_presence){names[i], (unsigned)i};
    }
    struct room_res big = {0, POOL_MSG_MAX_LIST, 0, msgs, POOL_MSG_MAX_LIST, present,
                           POOL_MSG_MAX_LIST};
    check_room_res(2, &big);
    pc_free(names);
    pc_free(present);
    pc_free(msgs);
}

static void roomEvent_roundTrips(void **state)
{
    (void)state;
    struct room_event evs[] = {
        {ROOM_EV_MESSAGE, 5, &sample_msgs[0], NULL},
        {ROOM_EV_MESSAGE, UINT64_MAX, &sample_msgs[1], NULL},
        {ROOM_EV_MESSAGE, 0, &sample_msgs[2], NULL},
        {ROOM_EV_ENTERED, 0, NULL, ALICE},
        {ROOM_EV_LEFT, UINT64_MAX, NULL, ""},
        {ROOM_EV_LEFT, 3, NULL, UTF8},
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        struct pc_buf b = {0};
        struct pc_arena a = {0};
        struct room_event d;
        pool_room_event_encode(&b, &evs[i]);
        assert_int_equal(pool_room_event_decode(b.data, b.len, &a, &d), 0);
        assert_int_equal(d.kind, evs[i].kind);
        assert_true(d.room_no == evs[i].room_no);
        if (evs[i].kind == ROOM_EV_MESSAGE) {
            assert_non_null(d.msg);
            assert_null(d.user);
            assert_msg_equal(d.msg, evs[i].msg);
        } else {
            assert_null(d.msg);
            assert_string_equal(d.user, evs[i].user);
        }
        pc_arena_free(&a);
        pc_buf_free(&b);
    }
}

static void metaReq_roundTrips(void **state)
{
    (void)state;
    struct meta_op ops[2];
    room_put_op(&ops[0]);
    memset(&ops[1], 0, sizeof ops[1]);
    ops[1].kind = META_OP_FOLLOW;
    snprintf(ops[1].actor, sizeof ops[1].actor, "%s", UTF8);
    ops[1].room_no = UINT64_MAX;
    snprintf(ops[1].target_user, sizeof ops[1].target_user, "%s", BOB);
    ops[1].flag = true;
    uint64_t ids[] = {UINT64_MAX, 0};
    for (size_t i = 0; i < 2; i++) {
        struct pc_buf b = {0}, want = {0}, got = {0};
        struct pool_meta_req d;
        pool_meta_req_encode(&b, ids[i], &ops[i]);
        assert_int_equal(pool_meta_req_decode(b.data, b.len, &d), 0);
        assert_true(d.req_id == ids[i]);
        assert_int_equal(d.op.kind, ops[i].kind);
        assert_string_equal(d.op.actor, ops[i].actor);
        /* The op codec has its own tests: equal encodings = equal ops. */
        meta_op_encode(&ops[i], &want);
        meta_op_encode(&d.op, &got);
        assert_int_equal(got.len, want.len);
        assert_memory_equal(got.data, want.data, want.len);
        if (i == 0) {
            assert_string_equal(d.op.room.name, UTF8);
            assert_true(d.op.room.no == UINT64_MAX);
            assert_int_equal(d.op.room.members.n, 2);
        }
        meta_op_clear(&d.op);
        pc_buf_free(&b);
        pc_buf_free(&want);
        pc_buf_free(&got);
        meta_op_clear(&ops[i]);
    }
}

static void metaRes_roundTrips(void **state)
{
    (void)state;
    struct meta_result rs[3] = {
        {0, "", 17},
        {PC_EEXIST, "a room named \"" UTF8 "\" exists", 0},
        {INT_MIN, "", UINT64_MAX},
    };
    memset(rs[2].errmsg, 'x', sizeof rs[2].errmsg - 1); /* the longest text */
    uint64_t idx[] = {0, 1, UINT64_MAX};
    for (size_t i = 0; i < 3; i++) {
        struct pc_buf b = {0};
        struct pc_arena a = {0};
        struct pool_meta_res d;
        pool_meta_res_encode(&b, idx[i] ^ 1, &rs[i], idx[i]);
        assert_int_equal(pool_meta_res_decode(b.data, b.len, &a, &d), 0);
        assert_true(d.req_id == (idx[i] ^ 1));
        assert_int_equal(d.res.status, rs[i].status);
        assert_string_equal(d.res.errmsg, rs[i].errmsg);
        assert_true(d.res.no == rs[i].no);
        assert_true(d.applied_index == idx[i]);
        assert_int_equal(pool_meta_res_decode(b.data, b.len, NULL, &d), 0);
        pc_arena_free(&a);
        pc_buf_free(&b);
    }
    /* An errmsg without its NUL is cut to what the field holds. */
    struct meta_result full;
    memset(&full, 'y', sizeof full);
    full.status = PC_EINVAL;
    full.no = 1;
    struct pc_buf b = {0};
    struct pool_meta_res d;
    pool_meta_res_encode(&b, 1, &full, 2);
    assert_int_equal(pool_meta_res_decode(b.data, b.len, NULL, &d), 0);
    assert_int_equal(strlen(d.res.errmsg), sizeof d.res.errmsg - 1);
    pc_buf_free(&b);
}

static void check_subscribe(const struct pool_subscribe *s)
{
    struct pc_buf b = {0};
    struct pc_arena a = {0};
    struct pool_subscribe d;
    pool_subscribe_encode(&b, s);
    assert_int_equal(pool_subscribe_decode(b.data, b.len, &a, &d), 0);
    assert_true(d.room_no == s->room_no);
    assert_true(d.last_delivered == s->last_delivered);
    assert_int_equal(d.n_sessions, s->n_sessions);
    assert_true(d.req_id == s->req_id);
    if (s->n_sessions == 0)
        assert_null(d.sessions);
    for (size_t i = 0; i < s->n_sessions; i++) {
        assert_true(d.sessions[i].session == s->sessions[i].session);
        assert_string_equal(d.sessions[i].user, s->sessions[i].user);
    }
    pc_arena_free(&a);
    pc_buf_free(&b);
}

static void subscribe_roundTrips(void **state)
{
    (void)state;
    check_subscribe(&(struct pool_subscribe){0, 0, NULL, 0});
    check_subscribe(&(struct pool_subscribe){UINT64_MAX, UINT64_MAX, sample_sessions, 3, UINT64_MAX});
    struct pool_sub_session *many = pc_calloc(POOL_MSG_MAX_LIST, sizeof *many);
    for (size_t i = 0; i < POOL_MSG_MAX_LIST; i++)
        many[i] = (struct pool_sub_session){UINT64_MAX - i, i % 3 ? ALICE : ""};
    check_subscribe(&(struct pool_subscribe){12, 34, many, POOL_MSG_MAX_LIST});
    pc_free(many);
}

static void typeName_namesEveryType(void **state)
{
    (void)state;
    assert_string_equal(pool_msg_type_name(POOL_MSG_ROOM_REQ), "ROOM_REQ");
    assert_string_equal(pool_msg_type_name(POOL_MSG_ROOM_RES), "ROOM_RES");
    assert_string_equal(pool_msg_type_name(POOL_MSG_ROOM_EVENT), "ROOM_EVENT");
    assert_string_equal(pool_msg_type_name(POOL_MSG_META_REQ), "META_REQ");
    assert_string_equal(pool_msg_type_name(POOL_MSG_META_RES), "META_RES");
    assert_string_equal(pool_msg_type_name(POOL_MSG_SUBSCRIBE), "SUBSCRIBE");
    assert_string_equal(pool_msg_type_name(0), "UNKNOWN");
    assert_string_equal(pool_msg_type_name(POOL_MSG_RESYNC), "RESYNC");
    assert_string_equal(pool_msg_type_name(POOL_MSG_META_SYNC), "META_SYNC");
    assert_string_equal(pool_msg_type_name(POOL_MSG_NODE_STATE), "NODE_STATE");
    assert_string_equal(pool_msg_type_name(10), "UNKNOWN");
    struct pc_buf b = {0};
    pool_resync_encode(&b);
    assert_int_equal(pool_resync_decode(b.data, b.len), 0);
    pc_bin_put_u8(&b, 0);
    assert_int_equal(pool_resync_decode(b.data, b.len), PC_EPROTO);
    assert_int_equal(pool_resync_decode(b.data, 0), PC_EPROTO);
    pc_buf_free(&b);
    uint64_t id = 0;
    pool_meta_sync_encode(&b, UINT64_MAX);
    assert_int_equal(pool_meta_sync_decode(b.data, b.len, &id), 0);
    assert_true(id == UINT64_MAX);
    assert_int_equal(pool_meta_sync_decode(b.data, b.len - 1, &id), PC_EPROTO);
    pc_bin_put_u8(&b, 0);
    assert_int_equal(pool_meta_sync_decode(b.data, b.len, &id), PC_EPROTO);
    pc_buf_free(&b);
    unsigned flags = 0;
    pool_node_state_encode(&b, POOL_NODE_DISK_FULL);
    assert_int_equal(pool_node_state_decode(b.data, b.len, &flags), 0);
    assert_int_equal(flags, POOL_NODE_DISK_FULL);
    assert_int_equal(pool_node_state_decode(b.data, b.len - 1, &flags), PC_EPROTO);
    assert_int_equal(flags, 0);
    pc_bin_put_u8(&b, 0);
    assert_int_equal(pool_node_state_decode(b.data, b.len, &flags), PC_EPROTO);
    pc_buf_free(&b);
    assert_string_equal(pool_msg_type_name(255), "UNKNOWN");
}

/* ---- damaged input ---------------------------------------------------------------------- */

/* Every strict prefix and the encoding plus one trailing byte fail with PC_EPROTO; each
 * prefix is copied into an exact-size heap block so that ASan sees any over-read. */
static void everyType_rejectsTruncationAndTrailingBytes(void **state)
{
    (void)state;
    size_t base = pc_alloc_used();
    for (uint8_t type = 1; type <= 6; type++) {
        struct pc_buf bufs[4] = {{0}};
        size_t n = samples(type, bufs);
        for (size_t s = 0; s < n; s++) {
            struct pc_arena a = {0};
            assert_int_equal(decode_any(type, bufs[s].data, bufs[s].len, &a), 0);
            for (size_t len = 0; len < bufs[s].len; len++) {
                void *copy = pc_malloc(len > 0 ? len : 1);
                memcpy(copy, bufs[s].data, len);
                int rc = decode_any(type, copy, len, &a);
                if (rc != PC_EPROTO)
                    fail_msg("%s sample %zu: prefix %zu of %zu gave %d",
                             pool_msg_type_name(type), s, len, bufs[s].len, rc);
                pc_free(copy);
            }
            pc_buf_putc(&bufs[s], 0);
            assert_int_equal(decode_any(type, bufs[s].data, bufs[s].len, &a), PC_EPROTO);
            pc_arena_free(&a);
        }
        free_bufs(bufs, n);
    }
    assert_int_equal(pc_alloc_used(), base);
}

static uint64_t rng_state;
static uint64_t rng(void)
{
    /* xorshift64*: seeded, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Thousands of random inputs (half with a valid version byte, so that they reach the
 * fields) and random mutations of valid encodings: decoders return 0 or PC_EPROTO. */
static void everyType_survivesRandomAndMutatedBytes(void **state)
{
    (void)state;
    size_t base = pc_alloc_used();
    rng_state = 0x9e3779b97f4a7c15ull;
    uint8_t buf[96];
    for (uint8_t type = 1; type <= 6; type++) {
        struct pc_arena a = {0};
        for (int i = 0; i < 3000; i++) {
            size_t len = rng() % sizeof buf;
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)rng();
            if (len > 0 && i % 2 == 0)
                buf[0] = POOL_MSG_V1;
            uint8_t *copy = pc_malloc(len > 0 ? len : 1);
            memcpy(copy, buf, len);
            int rc = decode_any(type, copy, len, &a);
            assert_true(rc == 0 || rc == PC_EPROTO);
            pc_free(copy);
            if (i % 64 == 0)
                pc_arena_free(&a);
        }
        struct pc_buf bufs[4] = {{0}};
        size_t n = samples(type, bufs);
        int ok = 0;
        for (int i = 0; i < 3000; i++) {
            struct pc_buf *b = &bufs[(size_t)i % n];
            uint8_t *copy = pc_memdup(b->data, b->len);
            int flips = 1 + (int)(rng() % 3);
            for (int f = 0; f < flips; f++) {
                size_t at = rng() % b->len;
                copy[at] = (rng() % 4 == 0) ? (uint8_t)rng() : (uint8_t)(copy[at] ^ (1u << (rng() % 8)));
            }
            int rc = decode_any(type, copy, b->len, &a);
            assert_true(rc == 0 || rc == PC_EPROTO);
            ok += rc == 0;
            pc_free(copy);
            if (i % 64 == 0)
                pc_arena_free(&a);
        }
        assert_true(ok > 0); /* the mutations also reach the success paths */
        free_bufs(bufs, n);
        pc_arena_free(&a);
    }
    assert_int_equal(pc_alloc_used(), base);
}

/* A header for hand-made payloads. */
static void put_res_head(struct pc_buf *b)
{
    pc_bin_put_u8(b, POOL_MSG_V1);
    pc_bin_put_uv(b, 1); /* req_id */
    pc_bin_put_sv(b, 0); /* status */
    pc_bin_put_uv(b, 0); /* seq */
    pc_bin_put_uv(b, 0); /* floor */
    pc_bin_put_sv(b, 0); /* ts_us */
}

static void lists_rejectOversizeCountsWithoutAllocating(void **state)
{
    (void)state;
    uint64_t counts[] = {POOL_MSG_MAX_LIST + 1, UINT64_MAX, 5000, 2};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        struct pc_arena a = {0};
        struct pc_buf b = {0};
        struct pool_room_res r;
        /* msgs[] count with (far) too few bytes behind it */
        put_res_head(&b);
        pc_bin_put_uv(&b, counts[i]);
        pc_bin_put_uv(&b, 0);
        pc_bin_put_uv(&b, 0);
        pc_bin_put_uv(&b, 0);
        assert_int_equal(pool_room_res_decode(b.data, b.len, &a, &r), PC_EPROTO);
        assert_int_equal(a.used_bytes, 0);
        assert_null(r.res.msgs);
        assert_int_equal(r.res.n_msgs, 0);

        /* present[] */
        pc_buf_reset(&b);
        put_res_head(&b);
        pc_bin_put_uv(&b, 0);
        pc_bin_put_uv(&b, counts[i]);
        pc_bin_put_uv(&b, 0);
        assert_int_equal(pool_room_res_decode(b.data, b.len, &a, &r), PC_EPROTO);
        assert_int_equal(a.used_bytes, 0);

        /* sessions[] */
        struct pool_subscribe s;
        pc_buf_reset(&b);
        pc_bin_put_u8(&b, POOL_MSG_V1);
        pc_bin_put_uv(&b, 1);
        pc_bin_put_uv(&b, 2);
        pc_bin_put_uv(&b, counts[i]);
        pc_bin_put_uv(&b, 0);
        assert_int_equal(pool_subscribe_decode(b.data, b.len, &a, &s), PC_EPROTO);
        assert_int_equal(a.used_bytes, 0);
        pc_buf_free(&b);
    }

    /* A count just over the limit is refused even with enough bytes behind it. */
    struct pc_arena a = {0};
    struct pc_buf b = {0};
    struct pool_subscribe s;
    pc_bin_put_u8(&b, POOL_MSG_V1);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_uv(&b, 2);
    pc_bin_put_uv(&b, POOL_MSG_MAX_LIST + 1);
    for (size_t i = 0; i < POOL_MSG_MAX_LIST + 1; i++) {
        pc_bin_put_uv(&b, i);
        pc_bin_put_str(&b, "");
    }
    assert_int_equal(pool_subscribe_decode(b.data, b.len, &a, &s), PC_EPROTO);
    assert_int_equal(a.used_bytes, 0);
    pc_buf_free(&b);
}

/* One ROOM_REQ with the given user, text, kind, count and record_read byte. */
static int decode_req(const char *user, size_t user_len, const char *text, size_t text_len,
                      uint64_t kind, uint64_t count, uint8_t rr, struct pc_arena *a)
{
    struct pc_buf b = {0};
    struct pool_room_req q;
    pc_bin_put_u8(&b, POOL_MSG_V1);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_uv(&b, kind);
    pc_bin_put_uv(&b, 2);
    pc_bin_put_bytes(&b, user, user_len);
    pc_bin_put_uv(&b, 3);
    pc_bin_put_bytes(&b, text, text_len);
    pc_bin_put_uv(&b, count);
    pc_bin_put_uv(&b, 0);
    pc_bin_put_uv(&b, 0);
    pc_bin_put_u8(&b, rr);
    int rc = pool_room_req_decode(b.data, b.len, a, &q);
    pc_buf_free(&b);
    return rc;
}

static void fields_rejectOutOfRangeValues(void **state)
{
    (void)state;
    struct pc_arena a = {0};
    char *big = pc_malloc(POOL_MSG_MAX_TEXT + 1);
    memset(big, 'a', POOL_MSG_MAX_TEXT + 1);

    assert_int_equal(decode_req(ALICE, strlen(ALICE), big, POOL_MSG_MAX_TEXT, 1, 0, 0, &a), 0);
    assert_int_equal(decode_req(ALICE, strlen(ALICE), big, POOL_MSG_MAX_TEXT + 1, 1, 0, 0, &a),
                     PC_EPROTO);
    assert_int_equal(decode_req(big, POOL_MSG_MAX_USER, "", 0, 1, 0, 0, &a), 0);
    assert_int_equal(decode_req(big, POOL_MSG_MAX_USER + 1, "", 0, 1, 0, 0, &a), PC_EPROTO);
    assert_int_equal(decode_req("a\0b", 3, "", 0, 1, 0, 0, &a), PC_EPROTO);  /* NUL in a string */
    assert_int_equal(decode_req(ALICE, 5, "x\0", 2, 1, 0, 0, &a), PC_EPROTO);
    assert_int_equal(decode_req(ALICE, 5, "", 0, 0, 0, 0, &a), PC_EPROTO);   /* kinds */
    assert_int_equal(decode_req(ALICE, 5, "", 0, 5, 0, 0, &a), PC_EPROTO);
    assert_int_equal(decode_req(ALICE, 5, "", 0, UINT64_MAX, 0, 0, &a), PC_EPROTO);
    assert_int_equal(decode_req(ALICE, 5, "", 0, 4, UINT32_MAX, 1, &a), 0);
    assert_int_equal(decode_req(ALICE, 5, "", 0, 4, (uint64_t)UINT32_MAX + 1, 0, &a), PC_EPROTO);
    assert_int_equal(decode_req(ALICE, 5, "", 0, 4, 0, 4, &a), PC_EPROTO);  /* flag bits */
    pc_arena_free(&a);

    /* Event: unknown kind, over-long text in a message. */
    struct pc_buf b = {0};
    struct room_event ev;
    pc_bin_put_u8(&b, POOL_MSG_V1);
    pc_bin_put_uv(&b, 4);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_str(&b, ALICE);
    assert_int_equal(pool_room_event_decode(b.data, b.len, &a, &ev), PC_EPROTO);
    pc_buf_reset(&b);
    pc_bin_put_u8(&b, POOL_MSG_V1);
    pc_bin_put_uv(&b, ROOM_EV_MESSAGE);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_sv(&b, 1);
    pc_bin_put_str(&b, ALICE);
    pc_bin_put_bytes(&b, big, POOL_MSG_MAX_TEXT + 1);
    assert_int_equal(pool_room_event_decode(b.data, b.len, &a, &ev), PC_EPROTO);
    assert_null(ev.msg);
    pc_arena_free(&a);

    /* Statuses: positive, below INT_MIN. */
    int64_t bad_status[] = {1, INT64_MAX, (int64_t)INT_MIN - 1, INT64_MIN};
    for (size_t i = 0; i < 4; i++) {
        struct pool_room_res r;
        struct pool_meta_res m;
        pc_buf_reset(&b);
        pc_bin_put_u8(&b, POOL_MSG_V1);
        pc_bin_put_uv(&b, 1);
        pc_bin_put_sv(&b, bad_status[i]);
        pc_bin_put_uv(&b, 0);
        pc_bin_put_sv(&b, 0);
        pc_bin_put_uv(&b, 0);
        pc_bin_put_uv(&b, 0);
        assert_int_equal(pool_room_res_decode(b.data, b.len, &a, &r), PC_EPROTO);
        pc_buf_reset(&b);
        pc_bin_put_u8(&b, POOL_MSG_V1);
        pc_bin_put_uv(&b, 1);
        pc_bin_put_sv(&b, bad_status[i]);
        pc_bin_put_str(&b, "");
        pc_bin_put_uv(&b, 0);
        pc_bin_put_uv(&b, 0);
        assert_int_equal(pool_meta_res_decode(b.data, b.len, &a, &m), PC_EPROTO);
    }

    /* META_RES errmsg longer than the field; META_REQ with a corrupt op inside. */
    struct pool_meta_res m;
    pc_buf_reset(&b);
    pc_bin_put_u8(&b, POOL_MSG_V1);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_sv(&b, PC_EINVAL);
    pc_bin_put_bytes(&b, big, sizeof m.res.errmsg);
    pc_bin_put_uv(&b, 0);
    pc_bin_put_uv(&b, 0);
    assert_int_equal(pool_meta_res_decode(b.data, b.len, &a, &m), PC_EPROTO);
    struct pool_meta_req q;
    pc_buf_reset(&b);
    pc_bin_put_u8(&b, POOL_MSG_V1);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_bytes(&b, "\x01\x63", 2);
    assert_int_equal(pool_meta_req_decode(b.data, b.len, &q), PC_EPROTO);

    /* Presence sessions over UINT_MAX. */
    struct pool_room_res r;
    pc_buf_reset(&b);
    put_res_head(&b);
    pc_bin_put_uv(&b, 0);
    pc_bin_put_uv(&b, 1);
    pc_bin_put_str(&b, ALICE);
    pc_bin_put_uv(&b, (uint64_t)UINT_MAX + 1);
    assert_int_equal(pool_room_res_decode(b.data, b.len, &a, &r), PC_EPROTO);

    /* Wrong version on every type. */
    for (uint8_t type = 1; type <= 6; type++) {
        struct pc_buf bufs[4] = {{0}};
        size_t n = samples(type, bufs);
        bufs[0].data[0] = POOL_MSG_V1 + 1;
        assert_int_equal(decode_any(type, bufs[0].data, bufs[0].len, &a), PC_EPROTO);
        free_bufs(bufs, n);
    }
    pc_arena_free(&a);
    pc_buf_free(&b);
    pc_free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roomReq_roundTrips),
        cmocka_unit_test(roomReq_carriesEditsImportsAndFetches),
        cmocka_unit_test(roomReq_carriesFileChunksAndRecords),
        cmocka_unit_test(roomRes_roundTrips),
        cmocka_unit_test(roomEvent_roundTrips),
        cmocka_unit_test(metaReq_roundTrips),
        cmocka_unit_test(metaRes_roundTrips),
        cmocka_unit_test(subscribe_roundTrips),
        cmocka_unit_test(typeName_namesEveryType),
        cmocka_unit_test(everyType_rejectsTruncationAndTrailingBytes),
        cmocka_unit_test(everyType_survivesRandomAndMutatedBytes),
        cmocka_unit_test(lists_rejectOversizeCountsWithoutAllocating),
        cmocka_unit_test(fields_rejectOutOfRangeValues),
    };
    return cmocka_run_group_tests_name("pool_msg", tests, NULL, NULL);
}
