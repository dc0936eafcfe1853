/* Unit tests for the replicated state machines (cluster/meta_fsm, cluster/shard_fsm,
 * cluster/entry) on raft/fixture.h: a deterministic in-memory 3-server raft cluster whose
 * servers apply into real RocksDB stores in temp dirs. All raft calls are made from the test
 * body between fixture steps; callbacks only record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/entry.h"
#include "cluster/meta_fsm.h"
#include "cluster/roomlog.h"
#include "cluster/roomfile.h"
#include "cluster/shard_fsm.h"
#include "cluster/shard_op.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "compliance/compl_event.h"
#include "storage/store.h"
#include "storage/store_keys.h"

#define N 3
#define GROUP 7 /* the shard's raft group id */
#define MAX_REQS 256
#define MAX_SEEN 1024
#define STEP_MS 20000
#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"

enum mode { MODE_META, MODE_SHARD };

struct req {
    struct raft_apply req;
    struct world *w;
    unsigned server;
    int fired, status;
    bool had_result;
    struct meta_result res; /* meta: copy of what the FSM returned to the proposer */
};

struct seen_post {
    uint64_t index, tag, room, seq;
};

struct backfill_call {
    uint64_t room, from, to;
};

struct server {
    struct world *w;
    unsigned i;
    char dir[64];
    char db[96];
    struct store *st;
    struct meta_fsm *meta;
    struct shard_fsm *shard;
    unsigned changed;
    struct seen_post seen[MAX_SEEN];
    size_t n_seen;
    struct backfill_call bf[16];
    size_t n_bf;
};

/* One proposed entry, kept to replay it later as raft would after a restart. */
struct kept {
    uint64_t index;
    void *bytes;
    size_t len;
};

struct world {
    enum mode mode;
    struct raft_fixture f;
    struct server s[N];
    struct req reqs[MAX_REQS];
    unsigned n_reqs;
    struct kept kept[MAX_REQS];
    unsigned n_kept;
    uint64_t next_tag;
};

/* ---- stores -------------------------------------------------------------------------------- */

static void rm_rf(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

static struct store *open_store(const char *path)
{
    char err[256];
    struct store_options opt = {.create_if_missing = true, .block_cache_mb = 1};
    struct store *st = NULL;
    if (store_open(path, &opt, &st, err, sizeof err) != 0)
        fail_msg("store_open %s: %s", path, err);
    return st;
}

/* Every key and value of a column family, for comparing replicas byte for byte. Keys of
 * the state family with a tag in `skip` are left out. */
static void dump_cf(struct store *st, enum store_cf cf, const char *skip, struct pc_buf *out)
{
    pc_buf_reset(out);
    struct store_iter *it = store_iter_new(st, cf, NULL, 0, NULL, 0);
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it), v = store_iter_value(it);
        if (skip != NULL && k.len > 0 && strchr(skip, k.p[0]) != NULL)
            continue;
        pc_bin_put_bytes(out, k.p, k.len);
        pc_bin_put_bytes(out, v.p, v.len);
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_free(it);
}

static size_t count_cf(struct store *st, enum store_cf cf)
{
    size_t n = 0;
    struct store_iter *it = store_iter_new(st, cf, NULL, 0, NULL, 0);
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it))
        n++;
    store_iter_free(it);
    return n;
}

static void assert_cf_equal(struct world *w, enum store_cf cf, const char *skip, unsigned a,
                            unsigned b)
{
    struct pc_buf x = {0}, y = {0};
    dump_cf(w->s[a].st, cf, skip, &x);
    dump_cf(w->s[b].st, cf, skip, &y);
    if (x.len != y.len || (x.len > 0 && memcmp(x.data, y.data, x.len) != 0))
        fail_msg("column family %s differs between servers %u and %u (%zu vs %zu bytes)",
                 store_cf_name(cf), a, b, x.len, y.len);
    pc_buf_free(&x);
    pc_buf_free(&y);
}

static void assert_replicas_equal(struct world *w, const char *state_skip)
{
    for (unsigned i = 1; i < N; i++) {
        assert_cf_equal(w, STORE_CF_META, NULL, 0, i);
        assert_cf_equal(w, STORE_CF_MSGS, NULL, 0, i);
        assert_cf_equal(w, STORE_CF_COMPL, NULL, 0, i);
        assert_cf_equal(w, STORE_CF_STATE, state_skip, 0, i);
    }
}

/* ---- FSM hooks ------------------------------------------------------------------------------ */

static void on_meta_changed(void *ctx, uint64_t index)
{
    (void)index;
    ((struct server *)ctx)->changed++;
}

static void on_applied(void *ctx, uint64_t index, const struct shard_op *ops, size_t n)
{
    struct server *s = ctx;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != SHARD_OP_POST)
            continue;
        assert_true(s->n_seen < MAX_SEEN);
        s->seen[s->n_seen++] = (struct seen_post){index, ops[i].tag, ops[i].room_no, ops[i].seq};
    }
}

static void on_backfill(void *ctx, uint64_t room, uint64_t from, uint64_t to)
{
    struct server *s = ctx;
    assert_true(s->n_bf < 16);
    s->bf[s->n_bf++] = (struct backfill_call){room, from, to};
}

static void make_fsm(struct server *s)
{
    if (s->w->mode == MODE_META) {
        struct meta_fsm_config c = {.st = s->st, .compl_mask = COMPL_CLASSES_ALL,
                                    .changed = on_meta_changed, .ctx = s};
        assert_int_equal(meta_fsm_create(&c, &s->meta), 0);
    } else {
        struct shard_fsm_config c = {.st = s->st, .group = GROUP, .compl_mask = COMPL_CLASSES_ALL,
                                     .applied = on_applied, .backfill_needed = on_backfill,
                                     .ctx = s};
        assert_int_equal(shard_fsm_create(&c, &s->shard), 0);
    }
}

static void free_fsm(struct server *s)
{
    meta_fsm_destroy(s->meta);
    shard_fsm_destroy(s->shard);
    s->meta = NULL;
    s->shard = NULL;
}

/* ---- the cluster ------------------------------------------------------------------------------ */

/* The fixture traces every step to stderr (thousands of lines); PCHAT_RAFT_TRACE=1 keeps it. */
static void quiet_emit(struct raft_tracer *t, int type, const void *info)
{
    (void)t;
    (void)type;
    (void)info;
}
static struct raft_tracer quiet_tracer = {.version = 2, .emit = quiet_emit};


static struct world *world_new(enum mode mode, unsigned snapshot_threshold)
{
    struct world *w = pc_calloc(1, sizeof *w);
    w->mode = mode;
    w->next_tag = 1000;
    assert_int_equal(raft_fixture_init(&w->f), 0);
    for (unsigned i = 0; i < N; i++) {
        struct server *s = &w->s[i];
        s->w = w;
        s->i = i;
        snprintf(s->dir, sizeof s->dir, "/tmp/pchat-fsm-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->db, sizeof s->db, "%s/db", s->dir);
        s->st = open_store(s->db);
        make_fsm(s);
        struct raft_fsm *rf = mode == MODE_META ? meta_fsm_raft(s->meta) : shard_fsm_raft(s->shard);
        assert_int_equal(raft_fixture_grow(&w->f, rf), 0);
        /* grow ran raft_init: the instance exists, raft_start has not run yet. */
        struct raft *r = raft_fixture_get(&w->f, i);
        const char *trace = getenv("PCHAT_RAFT_TRACE");
        if (trace == NULL || strcmp(trace, "1") != 0)
            r->tracer = &quiet_tracer;
        if (mode == MODE_META)
            meta_fsm_attach(s->meta, r);
        else
            shard_fsm_attach(s->shard, r);
    }
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    assert_int_equal(raft_fixture_configuration(&w->f, N, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&w->f, &conf), 0);
    raft_configuration_close(&conf);
    for (unsigned i = 0; i < N; i++) {
        struct raft *r = raft_fixture_get(&w->f, i);
        if (snapshot_threshold != 0) {
            raft_set_snapshot_threshold(r, snapshot_threshold);
            raft_set_snapshot_trailing(r, 2);
        }
    }
    assert_int_equal(raft_fixture_start(&w->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&w->f, STEP_MS));
    return w;
}

static void world_free(struct world *w)
{
    /* raft_close fails pending requests synchronously: the reqs must still exist. */
    raft_fixture_close(&w->f);
    for (unsigned i = 0; i < N; i++) {
        free_fsm(&w->s[i]);
        store_close(w->s[i].st);
        rm_rf(w->s[i].dir);
    }
    for (unsigned i = 0; i < w->n_kept; i++)
        pc_free(w->kept[i].bytes);
    pc_free(w);
}

/* The live leader of the highest term. Not raft_fixture_leader_index: that one also wants
 * the leader "stable", which an isolated candidate bumping its term prevents. */
static unsigned find_leader(struct raft_fixture *f)
{
    unsigned best = N;
    for (unsigned i = 0; i < N; i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (raft_fixture_alive(f, i) && raft_state(r) == RAFT_LEADER &&
            (best == N || raft_current_term(r) > raft_current_term(raft_fixture_get(f, best))))
            best = i;
    }
    return best;
}

static unsigned leader(struct world *w)
{
    unsigned l = find_leader(&w->f);
    assert_true(l < N);
    return l;
}

static bool leader_other_than(struct raft_fixture *f, void *arg)
{
    unsigned l = find_leader(f);
    return l < N && l != *(unsigned *)arg;
}

static void apply_cb(struct raft_apply *ar, int status, void *result)
{
    struct req *q = ar->data;
    q->fired++;
    q->status = status;
    if (result != NULL) {
        q->had_result = true;
        q->res = *(struct meta_result *)result;
        meta_fsm_result_release(q->w->s[q->server].meta, result);
    }
}

/* Proposes a framed entry on server i; returns the request (rv in status when refused). */
static struct req *propose_on(struct world *w, unsigned i, struct raft_buffer buf)
{
    assert_true(w->n_reqs < MAX_REQS);
    struct req *q = &w->reqs[w->n_reqs++];
    memset(q, 0, sizeof *q);
    q->w = w;
    q->server = i;
    q->req.data = q;
    /* Kept for the replay test: raft owns buf from here on. */
    void *copy = pc_memdup(buf.base, buf.len);
    int rv = raft_apply(raft_fixture_get(&w->f, i), &q->req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base); /* refused before it was appended: still ours */
        pc_free(copy);
        q->fired = 1;
        q->status = rv;
        return q;
    }
    w->kept[w->n_kept++] = (struct kept){q->req.index, copy, buf.len};
    return q;
}

static void wait_applied(struct world *w, uint64_t index)
{
    for (unsigned i = 0; i < N; i++)
        if (raft_fixture_alive(&w->f, i))
            assert_true(raft_fixture_step_until_applied(&w->f, i, index, STEP_MS));
}

static bool req_fired(struct raft_fixture *f, void *arg)
{
    (void)f;
    return ((struct req *)arg)->fired != 0;
}

static void wait_fired(struct world *w, struct req *q)
{
    assert_true(raft_fixture_step_until(&w->f, req_fired, q, STEP_MS));
}

/* ---- metadata ops ------------------------------------------------------------------------------ */

static void op_base(struct meta_op *op, enum meta_op_kind kind)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->ts_us = 1700000000000000;
    snprintf(op->actor, sizeof op->actor, "%s", ALICE);
    snprintf(op->node, sizeof op->node, "n1");
}

static struct req *propose_meta(struct world *w, struct meta_op *op)
{
    struct raft_buffer buf;
    assert_int_equal(meta_fsm_entry(op, &buf), 0);
    assert_int_equal(buf.len % 8, 0);
    meta_op_clear(op);
    return propose_on(w, leader(w), buf);
}

static struct req *meta_init(struct world *w)
{
    struct meta_op op;
    op_base(&op, META_OP_INIT);
    snprintf(op.domain, sizeof op.domain, "example.test");
    op.shard_count = 16;
    return propose_meta(w, &op);
}

static struct req *meta_category_put(struct world *w, const char *name)
{
    struct meta_op op;
    op_base(&op, META_OP_CATEGORY_PUT);
    snprintf(op.cat.guid, sizeof op.cat.guid, "c0000000-0000-4000-8000-%012u", (unsigned)strlen(name));
    op.cat.name = pc_strdup(name);
    op.cat.description = pc_strdup("about");
    meta_principals_add(&op.cat.allowed, "*@example.test");
    meta_principals_add(&op.cat.creators, ALICE);
    op.cat.chat_history = true;
    return propose_meta(w, &op);
}

static struct req *meta_room_put(struct world *w, unsigned guid, const char *name, uint64_t cat)
{
    struct meta_op op;
    op_base(&op, META_OP_ROOM_PUT);
    snprintf(op.room.guid, sizeof op.room.guid, "a0000000-0000-4000-8000-%012u", guid);
    op.room.name = pc_strdup(name);
    op.room.description = pc_strdup("a room");
    op.room.category_no = cat;
    op.room.privacy = META_CLOSED;
    op.room.creator = pc_strdup(ALICE);
    meta_principals_add(&op.room.managers, ALICE);
    meta_principals_add(&op.room.members, BOB);
    return propose_meta(w, &op);
}

static struct req *meta_user_put(struct world *w, const char *uri)
{
    struct meta_op op;
    op_base(&op, META_OP_USER_PUT);
    op.user.uri = pc_strdup(uri);
    op.user.display_name = pc_strdup("A user");
    op.user.chat_enabled = true;
    return propose_meta(w, &op);
}

/* ---- shard ops ----------------------------------------------------------------------------------- */

static struct shard_op post(struct world *w, uint64_t room, const char *text)
{
    struct shard_op op = {.kind = SHARD_OP_POST, .tag = w->next_tag++, .room_no = room,
                          .ts_us = 1700000000000000 + (int64_t)w->next_tag, .author = ALICE,
                          .text = text, .room_guid = "a0000000-0000-4000-8000-000000000001",
                          .room_name = "Room"};
    return op;
}

static struct req *propose_ops(struct world *w, unsigned i, const struct shard_op *ops, size_t n)
{
    struct raft_buffer buf;
    assert_int_equal(shard_fsm_entry("n1", ops, n, &buf), 0);
    assert_int_equal(buf.len % 8, 0);
    return propose_on(w, i, buf);
}

/* Posts n messages to room in one entry through the leader; texts "<prefix> k". */
static struct req *post_batch(struct world *w, uint64_t room, const char *prefix, unsigned n)
{
    struct shard_op ops[16];
    char texts[16][48];
    assert_true(n <= 16);
    for (unsigned k = 0; k < n; k++) {
        snprintf(texts[k], sizeof texts[k], "%s %u", prefix, k);
        ops[k] = post(w, room, texts[k]);
    }
    return propose_ops(w, leader(w), ops, n);
}

/* The room's messages on server i must be seq 1..last, with no gap and no duplicate text. */
static uint64_t check_room_log(struct world *w, unsigned i, uint64_t room)
{
    struct pc_arena a = {0};
    struct room_msg *msgs;
    size_t n;
    assert_int_equal(roomlog_read(w->s[i].st, room, 0, 0, 10000, &a, &msgs, &n), 0);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(msgs[k].seq, k + 1);
        for (size_t j = 0; j < k; j++)
            assert_string_not_equal(msgs[j].text, msgs[k].text);
    }
    pc_arena_free(&a);
    assert_int_equal(shard_fsm_room_last(w->s[i].shard, room), n);
    return n;
}

/* ---- tests: metadata group ---------------------------------------------------------------------- */

static void meta_opsReplicateToEveryReplicaWithResults(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_META, 0);
    struct req *q = meta_init(w);
    wait_fired(w, q);
    assert_int_equal(q->status, 0);
    assert_true(q->had_result);
    assert_int_equal(q->res.status, 0);

    q = meta_category_put(w, "Engineering");
    wait_fired(w, q);
    assert_int_equal(q->res.status, 0);
    uint64_t cat = q->res.no;
    assert_true(cat != 0);
    q = meta_room_put(w, 1, "Design", cat);
    wait_fired(w, q);
    assert_int_equal(q->res.status, 0);
    uint64_t room = q->res.no;
    assert_true(room != 0);
    meta_user_put(w, ALICE);
    meta_room_put(w, 2, "Ops", cat);
    /* A refused op travels back to the proposer as a result too. */
    q = meta_room_put(w, 3, "design", cat);
    wait_applied(w, q->req.index);
    wait_fired(w, q);
    assert_int_equal(q->status, 0);
    assert_int_equal(q->res.status, PC_EEXIST);

    for (unsigned i = 0; i < N; i++) {
        const struct meta *m = meta_fsm_meta(w->s[i].meta);
        assert_int_equal(meta_room_count(m), 2);
        assert_non_null(meta_room_by_name(m, "Design"));
        assert_int_equal(meta_room_by_name(m, "Design")->no, room);
        assert_non_null(meta_user(m, ALICE));
        assert_string_equal(m->domain, "example.test");
        assert_int_equal(m->applied_index, q->req.index);
        assert_int_equal(w->s[i].changed, 5); /* every successful op, not the refused one */
    }
    assert_replicas_equal(w, NULL);
    /* The room creations left compliance events, the same ids everywhere. */
    assert_true(count_cf(w->s[0].st, STORE_CF_COMPL) >= 2);
    world_free(w);
}

static void meta_snapshotInstallOnLaggingReplicaAndRestartReplay(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_META, 4);
    struct req *q = meta_init(w);
    wait_fired(w, q);
    q = meta_category_put(w, "General");
    wait_fired(w, q);
    uint64_t cat = q->res.no;
    q = meta_room_put(w, 9, "Doomed", cat);
    wait_applied(w, q->req.index);
    wait_fired(w, q);
    uint64_t doomed = q->res.no;
    unsigned lag = (leader(w) + 1) % N;
    raft_fixture_kill(&w->f, lag);
    /* While it is away the room it knows goes, twelve it doesn't know come. */
    struct meta_op del;
    op_base(&del, META_OP_ROOM_DEL);
    del.room.no = doomed;
    propose_meta(w, &del);
    for (unsigned k = 0; k < 12; k++) {
        char name[32];
        snprintf(name, sizeof name, "Room %u", k);
        q = meta_room_put(w, 10 + k, name, cat);
    }
    wait_applied(w, q->req.index);
    raft_fixture_revive(&w->f, lag);
    assert_true(raft_fixture_step_until_applied(&w->f, lag, q->req.index, STEP_MS));
    const struct meta *lm = meta_fsm_meta(w->s[lag].meta);
    assert_int_equal(meta_room_count(lm), 12);
    assert_null(meta_room_by_name(lm, "Doomed"));
    assert_replicas_equal(w, NULL);
    /* It got there by a snapshot (one reload), not by applying the 13 ops one by one. */
    assert_true(w->s[lag].changed < 3 + 13);

    /* Restart: reopen the store, load a new FSM, replay every entry: all skipped. */
    struct server *s = &w->s[(lag + 1) % N];
    struct pc_buf before = {0}, after = {0};
    dump_cf(s->st, STORE_CF_META, NULL, &before);
    struct meta_fsm *old = s->meta;
    store_close(s->st);
    s->st = open_store(s->db);
    s->meta = NULL;
    make_fsm(s);
    for (unsigned k = 0; k < w->n_kept; k++) {
        struct meta_result res;
        assert_int_equal(meta_fsm_apply_entry(s->meta, w->kept[k].index, w->kept[k].bytes,
                                              w->kept[k].len, &res), 1);
    }
    dump_cf(s->st, STORE_CF_META, NULL, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    assert_int_equal(meta_room_count(meta_fsm_meta(s->meta)), 12);
    pc_buf_free(&before);
    pc_buf_free(&after);
    /* The old FSM still belongs to raft in the fixture: swap back before closing it. */
    struct meta_fsm *fresh = s->meta;
    s->meta = old;
    meta_fsm_destroy(fresh);
    store_close(s->st);
    s->st = open_store(s->db);
    world_free(w);
}

/* ---- tests: shard groups ------------------------------------------------------------------------- */

static void shard_postsGetOneOrderOnEveryReplica(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_SHARD, 0);
    struct req *q = NULL;
    for (unsigned k = 0; k < 5; k++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "a%u", k);
        post_batch(w, 1, prefix, 3);
        snprintf(prefix, sizeof prefix, "b%u", k);
        q = post_batch(w, 2, prefix, 2);
    }
    /* A join event and a post in the same entry. */
    struct compl_event ev = {.type = COMPL_JOIN, .ts_us = 1700000000000001, .node = "n2",
                             .user = BOB, .room_no = 2, .room_guid = "g", .room_name = "Room",
                             .content = ""};
    struct pc_buf enc = {0};
    compl_event_encode(&ev, &enc);
    struct shard_op ops[2] = {{.kind = SHARD_OP_EVENT, .tag = 1, .event = enc.data,
                               .event_len = enc.len},
                              post(w, 2, "after the join")};
    q = propose_ops(w, leader(w), ops, 2);
    pc_buf_free(&enc);
    wait_applied(w, q->req.index);
    wait_fired(w, q);
    assert_int_equal(q->status, 0);

    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(check_room_log(w, i, 1), 15);
        assert_int_equal(check_room_log(w, i, 2), 11);
        assert_int_equal(shard_fsm_applied_index(w->s[i].shard), q->req.index);
        /* Every replica reported every post with the same seq. */
        assert_int_equal(w->s[i].n_seen, 26);
        for (size_t k = 0; k < w->s[i].n_seen; k++) {
            assert_int_equal(w->s[i].seen[k].seq, w->s[0].seen[k].seq);
            assert_int_equal(w->s[i].seen[k].tag, w->s[0].seen[k].tag);
        }
    }
    /* 26 chat events + 1 join, keyed (group, index, n) identically everywhere. */
    assert_int_equal(count_cf(w->s[0].st, STORE_CF_COMPL), 27);
    uint8_t k[STORE_COMPL_KEY_LEN];
    struct pc_buf v = {0};
    store_key_compl(k, GROUP, q->req.index, 0);
    assert_int_equal(store_get(w->s[1].st, STORE_CF_COMPL, k, sizeof k, &v), 0);
    struct pc_arena a = {0};
    struct compl_event got;
    assert_int_equal(compl_event_decode(v.data, v.len, &got, &a), 0);
    assert_int_equal(got.type, COMPL_JOIN);
    assert_string_equal(got.user, BOB);
    pc_arena_free(&a);
    pc_buf_free(&v);
    assert_replicas_equal(w, NULL);
    world_free(w);
}

static void shard_leaderCrashAndPartitionKeepOneOrder(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_SHARD, 0);
    struct req *q = post_batch(w, 1, "first", 4);
    wait_applied(w, q->req.index);

    /* The leader dies with entries in flight. */
    unsigned old = leader(w);
    post_batch(w, 1, "maybe-a", 2);
    post_batch(w, 1, "maybe-b", 2);
    raft_fixture_kill(&w->f, old);
    /* A dead leader still says "leader" (its clock stopped): wait for another one. */
    assert_true(raft_fixture_step_until(&w->f, leader_other_than, &old, STEP_MS));
    unsigned nl = leader(w);
    assert_true(nl != old);
    q = post_batch(w, 1, "second", 3);
    wait_applied(w, q->req.index);
    raft_fixture_revive(&w->f, old);

    /* Now a partition: the leader is cut off from both followers and gets deposed. */
    unsigned l2 = leader(w);
    post_batch(w, 1, "cut-off", 2);
    for (unsigned i = 0; i < N; i++)
        if (i != l2) {
            raft_fixture_disconnect(&w->f, l2, i);
            raft_fixture_disconnect(&w->f, i, l2);
        }
    assert_true(raft_fixture_step_until(&w->f, leader_other_than, &l2, STEP_MS));
    q = post_batch(w, 1, "third", 3);
    for (unsigned i = 0; i < N; i++)
        if (i != l2) {
            raft_fixture_reconnect(&w->f, l2, i);
            raft_fixture_reconnect(&w->f, i, l2);
        }
    q = post_batch(w, 1, "last", 1);
    wait_applied(w, q->req.index);
    wait_fired(w, q);
    assert_int_equal(q->status, 0);

    uint64_t n = check_room_log(w, 0, 1);
    /* first, second, third and last always; the in-flight ones at most once each. */
    assert_true(n >= 11 && n <= 17);
    for (unsigned i = 1; i < N; i++)
        assert_int_equal(check_room_log(w, i, 1), n);
    assert_replicas_equal(w, NULL);
    /* Proposals that failed with LEADERSHIPLOST are "unknown", not "lost": whatever the
     * outcome, no seq was given twice (check_room_log) and every replica agrees. */
    world_free(w);
}

static void shard_restartReplaySkipsWhatIsStored(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_SHARD, 0);
    struct req *q = NULL;
    for (unsigned k = 0; k < 6; k++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "r%u", k);
        q = post_batch(w, 1 + k % 2, prefix, 3);
    }
    wait_applied(w, q->req.index);

    /* Reopen server 1's store with a new FSM and replay the whole log into it. */
    struct server *s = &w->s[1];
    struct pc_buf m0 = {0}, m1 = {0}, c0 = {0}, c1 = {0};
    dump_cf(s->st, STORE_CF_MSGS, NULL, &m0);
    dump_cf(s->st, STORE_CF_COMPL, NULL, &c0);
    struct shard_fsm *live = s->shard;
    store_close(s->st);
    s->st = open_store(s->db);
    s->shard = NULL;
    make_fsm(s);
    size_t seen_before = s->n_seen;
    for (unsigned k = 0; k < w->n_kept; k++)
        assert_int_equal(shard_fsm_apply_entry(s->shard, w->kept[k].index, w->kept[k].bytes,
                                               w->kept[k].len), 1);
    assert_int_equal(s->n_seen, seen_before); /* nothing re-reported, nothing re-stored */
    dump_cf(s->st, STORE_CF_MSGS, NULL, &m1);
    dump_cf(s->st, STORE_CF_COMPL, NULL, &c1);
    assert_int_equal(m0.len, m1.len);
    assert_memory_equal(m0.data, m1.data, m0.len);
    assert_int_equal(c0.len, c1.len);
    assert_memory_equal(c0.data, c1.data, c0.len);
    assert_int_equal(shard_fsm_room_last(s->shard, 1), 9);

    /* A store that crashed half-way (only the first entries stored) replays the rest once:
     * same bytes as the replicas that never crashed. */
    char dir[64], db[96];
    snprintf(dir, sizeof dir, "/tmp/pchat-fsm-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/db", dir);
    struct store *st = open_store(db);
    struct shard_fsm_config c = {.st = st, .group = GROUP, .compl_mask = COMPL_CLASSES_ALL};
    struct shard_fsm *f;
    assert_int_equal(shard_fsm_create(&c, &f), 0);
    for (unsigned k = 0; k < w->n_kept / 2; k++)
        assert_int_equal(shard_fsm_apply_entry(f, w->kept[k].index, w->kept[k].bytes,
                                               w->kept[k].len), 0);
    shard_fsm_destroy(f);
    store_close(st);
    st = open_store(db);
    c.st = st;
    assert_int_equal(shard_fsm_create(&c, &f), 0);
    for (unsigned k = 0; k < w->n_kept; k++)
        assert_int_equal(shard_fsm_apply_entry(f, w->kept[k].index, w->kept[k].bytes,
                                               w->kept[k].len), k < w->n_kept / 2 ? 1 : 0);
    dump_cf(st, STORE_CF_MSGS, NULL, &m1);
    assert_int_equal(m0.len, m1.len);
    assert_memory_equal(m0.data, m1.data, m0.len);
    dump_cf(st, STORE_CF_COMPL, NULL, &c1);
    assert_int_equal(c0.len, c1.len);
    assert_memory_equal(c0.data, c1.data, c0.len);
    shard_fsm_destroy(f);
    store_close(st);
    rm_rf(dir);

    pc_buf_free(&m0);
    pc_buf_free(&m1);
    pc_buf_free(&c0);
    pc_buf_free(&c1);
    struct shard_fsm *fresh = s->shard;
    s->shard = live;
    shard_fsm_destroy(fresh);
    world_free(w);
}

static void shard_snapshotOnLaggingReplicaLeadsToBackfill(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_SHARD, 4);
    struct req *q = post_batch(w, 1, "early", 3);
    wait_applied(w, q->req.index);
    unsigned lag = (leader(w) + 1) % N;
    raft_fixture_kill(&w->f, lag);
    for (unsigned k = 0; k < 10; k++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "late%u", k);
        q = post_batch(w, 1 + k % 2, prefix, 2); /* room 1: 10 more, room 2: 10 new */
    }
    wait_applied(w, q->req.index);
    raft_fixture_revive(&w->f, lag);
    assert_true(raft_fixture_step_until_applied(&w->f, lag, q->req.index, STEP_MS));

    struct server *s = &w->s[lag];
    assert_int_equal(s->n_bf, 2);
    for (size_t k = 0; k < s->n_bf; k++) {
        if (s->bf[k].room == 1) {
            assert_int_equal(s->bf[k].from, 4);
            assert_int_equal(s->bf[k].to, 13);
        } else {
            assert_int_equal(s->bf[k].room, 2);
            assert_int_equal(s->bf[k].from, 1);
            assert_int_equal(s->bf[k].to, 10);
        }
    }
    /* Counters continue from the snapshot: new posts get the same seqs everywhere. */
    q = post_batch(w, 1, "after", 2);
    wait_applied(w, q->req.index);
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(shard_fsm_room_last(w->s[i].shard, 1), 15);
        assert_int_equal(shard_fsm_room_last(w->s[i].shard, 2), 10);
    }
    /* Compliance events came with the snapshot; messages did not (yet). */
    assert_cf_equal(w, STORE_CF_COMPL, NULL, leader(w), lag);
    assert_int_equal(shard_fsm_backfill_list(s->shard, on_backfill, s), 2); /* re-announce */
    s->n_bf = 0;

    /* Back-fill from a peer: room 1 in two parts, out of order, with a duplicate. */
    unsigned peer = leader(w);
    struct pc_arena a = {0};
    struct room_msg *msgs;
    size_t n;
    assert_int_equal(roomlog_read(w->s[peer].st, 1, 0, 13, 100, &a, &msgs, &n), 0);
    assert_int_equal(n, 13);
    assert_int_equal(shard_fsm_backfill_store(s->shard, 1, msgs + 8, 5), 1); /* 9..13 */
    assert_int_equal(shard_fsm_backfill_list(s->shard, on_backfill, s), 2);
    assert_int_equal(s->n_bf, 2);
    s->n_bf = 0;
    assert_int_equal(shard_fsm_backfill_store(s->shard, 1, msgs, 9), 0); /* 1..9 */
    assert_int_equal(shard_fsm_backfill_store(s->shard, 1, msgs, 13), 0); /* again: no-op */
    assert_int_equal(shard_fsm_backfill_store(s->shard, 2, msgs, 1), PC_EINVAL);
    assert_int_equal(roomlog_read(w->s[peer].st, 2, 0, 0, 100, &a, &msgs, &n), 0);
    assert_int_equal(n, 10);
    assert_int_equal(shard_fsm_backfill_store(s->shard, 2, msgs, n), 0);
    pc_arena_free(&a);
    assert_int_equal(shard_fsm_backfill_list(s->shard, on_backfill, s), 0);

    /* Now the replica is whole: byte-identical to the others. */
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(check_room_log(w, i, 1), 15);
        assert_int_equal(check_room_log(w, i, 2), 10);
    }
    assert_replicas_equal(w, NULL);
    world_free(w);
}

/* ---- tests: corrupt input ------------------------------------------------------------------------ */

static void entry_framingRejectsEveryDefect(void **state)
{
    (void)state;
    for (size_t len = 0; len < 40; len++) {
        uint8_t payload[40];
        memset(payload, 0xab, sizeof payload);
        struct raft_buffer b;
        assert_int_equal(entry_encode(ENTRY_SHARD_OPS, payload, len, &b), 0);
        assert_int_equal(b.len % 8, 0);
        assert_true(b.len >= ENTRY_HEADER_LEN + len && b.len < ENTRY_HEADER_LEN + len + 8);
        enum entry_kind kind;
        const void *p;
        size_t plen;
        assert_int_equal(entry_decode(b.base, b.len, &kind, &p, &plen), 0);
        assert_int_equal(kind, ENTRY_SHARD_OPS);
        assert_int_equal(plen, len);
        /* Every single-byte change in the header or padding is caught. */
        uint8_t *bytes = b.base;
        for (size_t i = 0; i < b.len; i++) {
            if (i >= ENTRY_HEADER_LEN && i < ENTRY_HEADER_LEN + len)
                continue; /* payload bytes are the decoder's business */
            bytes[i] ^= 0x10;
            assert_int_equal(entry_decode(b.base, b.len, &kind, &p, &plen), PC_ECORRUPT);
            bytes[i] ^= 0x10;
        }
        /* Every truncation is caught. */
        for (size_t cut = 0; cut < b.len; cut++)
            assert_int_equal(entry_decode(b.base, cut, &kind, &p, &plen), PC_ECORRUPT);
        raft_free(b.base);
    }
    enum entry_kind kind;
    const void *p;
    size_t plen;
    assert_int_equal(entry_decode(NULL, 0, &kind, &p, &plen), PC_ECORRUPT);
}

static void shard_opsDecodeRejectsTruncationAndJunk(void **state)
{
    (void)state;
    struct world w = {.next_tag = 1};
    struct compl_event ev = {.type = COMPL_PART, .ts_us = 5, .node = "n1", .user = BOB,
                             .room_no = 3, .room_guid = "", .room_name = "", .content = ""};
    struct pc_buf enc = {0}, b = {0};
    compl_event_encode(&ev, &enc);
    struct shard_op ops[3] = {post(&w, 3, "hello"), post(&w, 4, "world"),
                              {.kind = SHARD_OP_EVENT, .tag = 9, .event = enc.data,
                               .event_len = enc.len}};
    shard_ops_encode("n1", ops, 3, &b);
    struct pc_arena a = {0};
    const char *node;
    struct shard_op *got;
    size_t n;
    assert_int_equal(shard_ops_decode(b.data, b.len, &a, &node, &got, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(got[1].text, "world");
    assert_int_equal(got[2].room_no, 3);
    assert_int_equal(got[2].tag, 9);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(shard_ops_decode(b.data, cut, &a, &node, &got, &n), PC_ECORRUPT);
    /* Flipped bytes: an error or a different valid batch, never a crash (ASan watches). */
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (char)(1 << bit);
            (void)shard_ops_decode(b.data, b.len, &a, &node, &got, &n);
            b.data[i] ^= (char)(1 << bit);
        }
    }
    /* A huge op count in a tiny buffer is refused before anything is allocated for it. */
    uint8_t lie[] = {1, 0, 0xff, 0xff, 0x03};
    assert_int_equal(shard_ops_decode(lie, sizeof lie, &a, &node, &got, &n), PC_ECORRUPT);
    pc_arena_free(&a);
    pc_buf_free(&enc);
    pc_buf_free(&b);
}

static void count_file(void *ctx, uint64_t file_no)
{
    (void)file_no;
    (*(int *)ctx)++;
}

/* A file: its chunks, then the post that announces it and stores its record; what apply
 * stores is what the web service serves (cluster/roomfile.h). */
static void fileChunksAndAnnouncement_areStoredByApply(void **state)
{
    (void)state;
    char dir[64], db[96];
    snprintf(dir, sizeof dir, "/tmp/pchat-fsm-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db, sizeof db, "%s/db", dir);
    struct store *st = open_store(db);
    struct shard_fsm_config c = {.st = st, .group = GROUP, .compl_mask = COMPL_CLASSES_ALL};
    struct shard_fsm *f;
    assert_int_equal(shard_fsm_create(&c, &f), 0);
    static char big[SHARD_MAX_CHUNK];
    memset(big, 'x', sizeof big);
    struct shard_op chunks[2] = {
        {.kind = SHARD_OP_FILE_CHUNK, .tag = 1, .room_no = 5, .author = ALICE, .file_no = 77,
         .chunk = 0, .data = big, .data_len = sizeof big},
        {.kind = SHARD_OP_FILE_CHUNK, .tag = 2, .room_no = 5, .author = ALICE, .file_no = 77,
         .chunk = 1, .data = "tail", .data_len = 4},
    };
    struct raft_buffer e;
    assert_int_equal(shard_fsm_entry("n1", chunks, 2, &e), 0);
    assert_int_equal(shard_fsm_apply_entry(f, 1, e.base, e.len), 0);
    raft_free(e.base);
    struct shard_op ann = {.kind = SHARD_OP_POST, .tag = 3, .room_no = 5, .ts_us = 10,
                           .author = ALICE, .text = "alice shared a.bin", .room_guid = "g",
                           .room_name = "R", .has_file = true, .file_no = 77,
                           .file_name = "a.bin", .file_sha = "ab12", .file_size = sizeof big + 4,
                           .file_chunks = 2};
    assert_int_equal(shard_fsm_entry("n1", &ann, 1, &e), 0);
    assert_int_equal(shard_fsm_apply_entry(f, 2, e.base, e.len), 0);
    raft_free(e.base);

    struct pc_arena a = {0};
    struct room_file rf;
    assert_int_equal(roomfile_get(st, 5, 77, &rf, &a), 0);
    assert_string_equal(rf.name, "a.bin");
    assert_string_equal(rf.uploader, ALICE);
    assert_true(rf.size == sizeof big + 4 && rf.chunks == 2 && rf.seq == 1 && rf.ts_us == 10);
    assert_int_equal(roomfile_get(st, 5, 78, &rf, &a), PC_ENOTFOUND);
    struct pc_buf chunk = {0};
    assert_int_equal(roomfile_chunk(st, 5, 77, 1, &chunk), 0);
    assert_int_equal(chunk.len, 4);
    assert_memory_equal(chunk.data, "tail", 4);
    assert_int_equal(roomfile_chunk(st, 5, 77, 0, &chunk), 0);
    assert_int_equal(chunk.len, sizeof big);
    assert_int_equal(roomfile_chunk(st, 5, 77, 2, &chunk), PC_ENOTFOUND);
    /* The upload is a FILEUPLOAD compliance event naming the file, not a CHAT event. */
    struct pc_buf events = {0};
    dump_cf(st, STORE_CF_COMPL, NULL, &events);
    assert_non_null(memmem(events.data, events.len, "a.bin", 5));

    /* FILE_DROP deletes the chunks of a file nobody announced, never those of an announced
     * one, nor of one announced earlier in the same entry. */
    struct shard_op orphan[3] = {
        {.kind = SHARD_OP_FILE_CHUNK, .tag = 4, .room_no = 5, .author = ALICE, .file_no = 90,
         .chunk = 0, .data = "half", .data_len = 4},
        {.kind = SHARD_OP_FILE_CHUNK, .tag = 5, .room_no = 5, .author = ALICE, .file_no = 91,
         .chunk = 0, .data = "late", .data_len = 4},
        {.kind = SHARD_OP_FILE_CHUNK, .tag = 6, .room_no = 5, .author = ALICE, .file_no = 90,
         .chunk = 1, .data = "more", .data_len = 4},
    };
    assert_int_equal(shard_fsm_entry("n1", orphan, 3, &e), 0);
    assert_int_equal(shard_fsm_apply_entry(f, 3, e.base, e.len), 0);
    raft_free(e.base);
    struct shard_op late = ann;
    late.file_no = 91;
    late.file_size = 4;
    late.file_chunks = 1;
    struct shard_op drops[4] = {
        {.kind = SHARD_OP_FILE_DROP, .tag = 7, .room_no = 5, .file_no = 90},
        {.kind = SHARD_OP_FILE_DROP, .tag = 8, .room_no = 5, .file_no = 77},
        late,
        {.kind = SHARD_OP_FILE_DROP, .tag = 9, .room_no = 5, .file_no = 91},
    };
    assert_int_equal(shard_fsm_entry("n1", drops, 4, &e), 0);
    assert_int_equal(shard_fsm_apply_entry(f, 4, e.base, e.len), 0);
    raft_free(e.base);
    assert_int_equal(roomfile_chunk(st, 5, 90, 0, &chunk), PC_ENOTFOUND);
    assert_int_equal(roomfile_chunk(st, 5, 90, 1, &chunk), PC_ENOTFOUND);
    assert_int_equal(roomfile_chunk(st, 5, 77, 0, &chunk), 0);
    assert_int_equal(roomfile_chunk(st, 5, 91, 0, &chunk), 0);
    int unannounced = 0;
    assert_int_equal(roomfile_unannounced(st, 5, count_file, &unannounced), 0);
    assert_int_equal(unannounced, 0);

    /* Decode refuses a chunk over the limit and a record whose chunk count does not fit its size. */
    struct shard_op bad = chunks[1];
    bad.data_len = SHARD_MAX_CHUNK + 1;
    static char over[SHARD_MAX_CHUNK + 1];
    bad.data = over;
    struct pc_buf b = {0};
    const char *node;
    struct shard_op *got;
    size_t n;
    shard_ops_encode("n1", &bad, 1, &b);
    assert_int_equal(shard_ops_decode(b.data, b.len, &a, &node, &got, &n), PC_ECORRUPT);
    pc_buf_reset(&b);
    ann.file_chunks = 3;
    shard_ops_encode("n1", &ann, 1, &b);
    assert_int_equal(shard_ops_decode(b.data, b.len, &a, &node, &got, &n), PC_ECORRUPT);
    pc_buf_free(&b);
    pc_buf_free(&events);
    pc_buf_free(&chunk);
    pc_arena_free(&a);
    shard_fsm_destroy(f);
    store_close(st);
    rm_rf(dir);
}

static void corruptEntriesAreSkippedIdenticallyWithoutACrash(void **state)
{
    (void)state;
    struct world *w = world_new(MODE_SHARD, 0);
    struct req *q = post_batch(w, 1, "before", 2);
    wait_applied(w, q->req.index);
    /* Garbage that raft accepts (8-byte multiple), a meta op sent to a shard, and a valid
     * frame around a broken batch. */
    struct raft_buffer junk = {.base = raft_malloc(24), .len = 24};
    memset(junk.base, 0x5a, 24);
    struct req *q1 = propose_on(w, leader(w), junk);
    struct meta_op op;
    op_base(&op, META_OP_USER_PUT);
    op.user.uri = pc_strdup(ALICE);
    struct raft_buffer wrong;
    assert_int_equal(meta_fsm_entry(&op, &wrong), 0);
    meta_op_clear(&op);
    propose_on(w, leader(w), wrong);
    uint8_t broken[] = {1, 0, 2, 1, 7};
    struct raft_buffer framed;
    assert_int_equal(entry_encode(ENTRY_SHARD_OPS, broken, sizeof broken, &framed), 0);
    propose_on(w, leader(w), framed);
    q = post_batch(w, 1, "after", 2);
    wait_applied(w, q->req.index);
    wait_fired(w, q1);
    assert_int_equal(q1->status, 0); /* applied as "nothing", not stuck */
    for (unsigned i = 0; i < N; i++) {
        assert_int_equal(check_room_log(w, i, 1), 4);
        assert_int_equal(shard_fsm_applied_index(w->s[i].shard), q->req.index);
    }
    assert_replicas_equal(w, NULL);

    /* A corrupt snapshot is refused and changes nothing; raft frees the buffer then. */
    struct raft_fsm *rf = shard_fsm_raft(w->s[0].shard);
    struct raft_buffer snap = {.base = raft_malloc(16), .len = 16};
    memset(snap.base, 0, 16);
    assert_int_equal(rf->restore(rf, &snap), RAFT_CORRUPT);
    raft_free(snap.base);
    struct raft_buffer *bufs;
    unsigned nb;
    assert_int_equal(rf->snapshot(rf, &bufs, &nb), 0);
    assert_int_equal(nb, 1);
    /* A snapshot truncated anywhere is refused too. */
    for (size_t cut = 0; cut + 8 <= bufs[0].len; cut += 8) {
        struct raft_buffer t = {.base = raft_malloc(cut ? cut : 8), .len = cut};
        memcpy(t.base, bufs[0].base, cut);
        assert_int_not_equal(rf->restore(rf, &t), 0);
        raft_free(t.base);
    }
    raft_free(bufs[0].base);
    raft_free(bufs);
    assert_int_equal(check_room_log(w, 0, 1), 4);

    world_free(w);
}

static void meta_corruptEntryIsReportedAndSnapshotRoundTrips(void **state)
{
    (void)state;
    char dir[2][64], db[2][96];
    struct store *st[2];
    struct meta_fsm *mf[2];
    for (int i = 0; i < 2; i++) {
        snprintf(dir[i], sizeof dir[i], "/tmp/pchat-fsm-XXXXXX");
        assert_non_null(mkdtemp(dir[i]));
        snprintf(db[i], sizeof db[i], "%s/db", dir[i]);
        st[i] = open_store(db[i]);
        struct meta_fsm_config mc = {.st = st[i], .compl_mask = COMPL_CLASSES_ALL};
        assert_int_equal(meta_fsm_create(&mc, &mf[i]), 0);
    }
    struct meta_op op;
    struct raft_buffer b;
    struct meta_result res;
    op_base(&op, META_OP_INIT);
    snprintf(op.domain, sizeof op.domain, "example.test");
    op.shard_count = 4;
    assert_int_equal(meta_fsm_entry(&op, &b), 0);
    assert_int_equal(meta_fsm_apply_entry(mf[0], 1, b.base, b.len, &res), 0);
    assert_int_equal(res.status, 0);
    raft_free(b.base);
    uint8_t junk[32];
    memset(junk, 0x77, sizeof junk);
    assert_int_equal(meta_fsm_apply_entry(mf[0], 2, junk, sizeof junk, &res), 0);
    assert_int_equal(res.status, PC_ECORRUPT);
    struct shard_op so = {.kind = SHARD_OP_POST, .room_no = 1, .author = ALICE, .text = "x"};
    assert_int_equal(shard_fsm_entry("n1", &so, 1, &b), 0);
    assert_int_equal(meta_fsm_apply_entry(mf[0], 3, b.base, b.len, &res), 0);
    assert_int_equal(res.status, PC_ECORRUPT);
    raft_free(b.base);
    op_base(&op, META_OP_USER_PUT);
    op.user.uri = pc_strdup(ALICE);
    op.user.display_name = pc_strdup("Alice");
    assert_int_equal(meta_fsm_entry(&op, &b), 0);
    meta_op_clear(&op);
    assert_int_equal(meta_fsm_apply_entry(mf[0], 4, b.base, b.len, &res), 0);
    assert_int_equal(res.status, 0);
    assert_int_equal(meta_fsm_apply_entry(mf[0], 4, b.base, b.len, &res), 1); /* replay */
    raft_free(b.base);
    assert_int_equal(meta_fsm_meta(mf[0])->applied_index, 4);

    /* Snapshot of server 0 installed on the empty server 1: the same metadata. */
    struct raft_fsm *rf0 = meta_fsm_raft(mf[0]), *rf1 = meta_fsm_raft(mf[1]);
    struct raft_buffer *bufs;
    unsigned nb;
    assert_int_equal(rf0->snapshot(rf0, &bufs, &nb), 0);
    assert_int_equal(nb, 1);
    assert_int_equal(bufs[0].len % 8, 0);
    /* Damaged copies are refused (raft frees the buffer on failure) and change nothing. */
    for (size_t cut = 8; cut < bufs[0].len; cut += 8) {
        struct raft_buffer t = {.base = raft_malloc(cut), .len = cut};
        memcpy(t.base, bufs[0].base, cut);
        assert_int_not_equal(rf1->restore(rf1, &t), 0);
        raft_free(t.base);
    }
    assert_int_equal(count_cf(st[1], STORE_CF_META), 0);
    assert_int_equal(rf1->restore(rf1, &bufs[0]), 0); /* took bufs[0].base */
    raft_free(bufs);
    assert_non_null(meta_user(meta_fsm_meta(mf[1]), ALICE));
    assert_string_equal(meta_fsm_meta(mf[1])->domain, "example.test");
    assert_int_equal(meta_fsm_meta(mf[1])->applied_index, 4);
    struct pc_buf x = {0}, y = {0};
    for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
        dump_cf(st[0], (enum store_cf)cf, NULL, &x);
        dump_cf(st[1], (enum store_cf)cf, NULL, &y);
        assert_int_equal(x.len, y.len);
        if (x.len > 0)
            assert_memory_equal(x.data, y.data, x.len);
    }
    pc_buf_free(&x);
    pc_buf_free(&y);
    for (int i = 0; i < 2; i++) {
        meta_fsm_destroy(mf[i]);
        store_close(st[i]);
        rm_rf(dir[i]);
    }
}

int main(void)
{
    pc_log_init("test", PC_LOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(entry_framingRejectsEveryDefect),
        cmocka_unit_test(shard_opsDecodeRejectsTruncationAndJunk),
        cmocka_unit_test(fileChunksAndAnnouncement_areStoredByApply),
        cmocka_unit_test(meta_opsReplicateToEveryReplicaWithResults),
        cmocka_unit_test(meta_snapshotInstallOnLaggingReplicaAndRestartReplay),
        cmocka_unit_test(shard_postsGetOneOrderOnEveryReplica),
        cmocka_unit_test(shard_leaderCrashAndPartitionKeepOneOrder),
        cmocka_unit_test(shard_restartReplaySkipsWhatIsStored),
        cmocka_unit_test(shard_snapshotOnLaggingReplicaLeadsToBackfill),
        cmocka_unit_test(corruptEntriesAreSkippedIdenticallyWithoutACrash),
        cmocka_unit_test(meta_corruptEntryIsReportedAndSnapshotRoundTrips),
    };
    return cmocka_run_group_tests_name("fsm", tests, NULL, NULL);
}
