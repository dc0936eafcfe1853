/* Unit tests for cluster/meta and meta_codec: the replicated metadata state machine applied
 * into a real store, its validation, reload from the store, and the operation codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/meta.h"
#include "cluster/meta_int.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_rand.h"
#include "compliance/compl_event.h"
#include "storage/store.h"
#include "storage/store_keys.h"

#define ALICE "sip:alice@example.test"
#define BOB "sip:bob@example.test"
#define SHARDS 4

struct fixture {
    char dir[64];
    struct store *st;
    struct store_batch *b;
    struct meta m;
    uint64_t index; /* raft index of the last applied op */
};

static void rm_rf(const char *path)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

/* "0000000N-0000-4000-8000-00000000000N": a valid, distinct GUID per n. */
static void guid_n(char *buf, unsigned n)
{
    snprintf(buf, PC_GUID_LEN, "%08x-0000-4000-8000-%012x", n, n);
}

/* ---- op builders (the op owns its strings; meta_op_clear frees them) -------------------- */

static void op_base(struct meta_op *op, enum meta_op_kind kind)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->ts_us = 1700000000000000 + kind;
    snprintf(op->actor, sizeof op->actor, "%s", ALICE);
    snprintf(op->node, sizeof op->node, "n1");
}

static void op_init(struct meta_op *op, const char *domain, uint32_t shards)
{
    op_base(op, META_OP_INIT);
    snprintf(op->domain, sizeof op->domain, "%s", domain);
    op->shard_count = shards;
}

static void op_category(struct meta_op *op, uint64_t no, unsigned guid, const char *name)
{
    op_base(op, META_OP_CATEGORY_PUT);
    op->cat.no = no;
    guid_n(op->cat.guid, guid);
    op->cat.name = pc_strdup(name);
    op->cat.description = pc_strdup("about");
    meta_principals_add(&op->cat.allowed, "*@example.test");
    meta_principals_add(&op->cat.denied, "sip:mallory@example.test");
    meta_principals_add(&op->cat.creators, ALICE);
    op->cat.chat_history = true;
    op->cat.invitations = true;
}

static void op_room(struct meta_op *op, uint64_t no, unsigned guid, const char *name,
                    uint64_t cat)
{
    op_base(op, META_OP_ROOM_PUT);
    op->room.no = no;
    guid_n(op->room.guid, guid);
    op->room.name = pc_strdup(name);
    op->room.description = pc_strdup("a room");
    op->room.category_no = cat;
    op->room.privacy = META_CLOSED;
    op->room.type = META_AUDITORIUM;
    op->room.invitations = true;
    meta_principals_add(&op->room.managers, ALICE);
    meta_principals_add(&op->room.members, BOB);
    meta_principals_add(&op->room.members, "*@partner.test");
    meta_principals_add(&op->room.presenters, ALICE);
}

static void op_user(struct meta_op *op, const char *uri, const char *display)
{
    op_base(op, META_OP_USER_PUT);
    op->user.uri = pc_strdup(uri);
    op->user.display_name = pc_strdup(display);
    op->user.chat_enabled = true;
    op->user.password_hash = pc_strdup("$argon2id$v=19$stub");
}

static void op_follow(struct meta_op *op, enum meta_op_kind kind, const char *user, uint64_t room,
                      bool flag)
{
    op_base(op, kind);
    snprintf(op->target_user, sizeof op->target_user, "%s", user);
    op->room_no = room;
    op->flag = flag;
}

/* ---- fixture ------------------------------------------------------------------------------ */

static struct store *open_store(const char *dir)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/db", dir);
    struct store_options opt = {.create_if_missing = true, .block_cache_mb = 1};
    struct store *st = NULL;
    if (store_open(path, &opt, &st, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    return st;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pchat-meta-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    fx->st = open_store(fx->dir);
    fx->b = store_batch_new(fx->st);
    if (meta_load(&fx->m, fx->st) != 0) /* an empty store is an empty state */
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    meta_free(&fx->m);
    store_batch_free(fx->b);
    store_close(fx->st);
    rm_rf(fx->dir);
    free(fx);
    return 0;
}

/* Applies op at the next index, writes the batch like the raft apply loop does, frees op. */
static struct meta_result apply(struct fixture *fx, struct meta_op *op)
{
    struct meta_result res;
    store_batch_clear(fx->b);
    meta_apply(&fx->m, ++fx->index, op, fx->b, &res);
    assert_int_equal(store_write(fx->st, fx->b, false), 0);
    meta_op_clear(op);
    return res;
}

static uint64_t apply_ok(struct fixture *fx, struct meta_op *op)
{
    struct meta_result res = apply(fx, op);
    if (res.status != 0)
        fail_msg("apply failed: %s: %s", pc_errname(res.status), res.errmsg);
    return res.no;
}

/* Applies an op that must be rejected with status, changing nothing but the applied index. */
static void apply_rejected(struct fixture *fx, struct meta_op *op, int status, const char *msg_part)
{
    size_t rooms = meta_room_count(&fx->m);
    uint64_t next_room = fx->m.next_room_no, next_cat = fx->m.next_category_no;
    struct meta_result res;
    store_batch_clear(fx->b);
    meta_apply(&fx->m, ++fx->index, op, fx->b, &res);
    meta_op_clear(op);
    if (res.status != status || strstr(res.errmsg, msg_part) == NULL)
        fail_msg("expected %s '%s', got %s '%s'", pc_errname(status), msg_part,
                 pc_errname(res.status), res.errmsg);
    assert_int_equal(store_batch_count(fx->b), 1); /* the applied index only */
    assert_int_equal(meta_room_count(&fx->m), rooms);
    assert_true(fx->m.next_room_no == next_room && fx->m.next_category_no == next_cat);
    assert_true(fx->m.applied_index == fx->index);
    assert_int_equal(store_write(fx->st, fx->b, false), 0);
}

/* INIT, category "General" (no 1) and room "Lobby" (no 1). */
static void seed(struct fixture *fx)
{
    struct meta_op op;
    op_init(&op, "example.test", SHARDS);
    apply_ok(fx, &op);
    op_category(&op, 0, 100, "General");
    assert_int_equal(apply_ok(fx, &op), 1);
    op_room(&op, 0, 1, "Lobby", 1);
    assert_int_equal(apply_ok(fx, &op), 1);
}

/* ---- comparisons --------------------------------------------------------------------------- */

static void assert_principals_equal(const struct meta_principals *a, const struct meta_principals *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        assert_string_equal(a->items[i], b->items[i]);
}

static void assert_rooms_equal(const struct meta_room *a, const struct meta_room *b)
{
    assert_true(a->no == b->no);
    assert_string_equal(a->guid, b->guid);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->description, b->description);
    assert_true(a->category_no == b->category_no);
    assert_int_equal(a->privacy, b->privacy);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->disabled, b->disabled);
    assert_int_equal(a->invitations, b->invitations);
    assert_principals_equal(&a->managers, &b->managers);
    assert_principals_equal(&a->members, &b->members);
    assert_principals_equal(&a->presenters, &b->presenters);
    assert_string_equal(a->creator, b->creator);
    assert_true(a->created_us == b->created_us);
    assert_int_equal(a->shard, b->shard);
}

static void assert_categories_equal(const struct meta_category *a, const struct meta_category *b)
{
    assert_true(a->no == b->no);
    assert_string_equal(a->guid, b->guid);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->description, b->description);
    assert_principals_equal(&a->allowed, &b->allowed);
    assert_principals_equal(&a->denied, &b->denied);
    assert_principals_equal(&a->creators, &b->creators);
    assert_int_equal(a->file_upload, b->file_upload);
    assert_int_equal(a->chat_history, b->chat_history);
    assert_int_equal(a->invitations, b->invitations);
}

static void assert_users_equal(const struct meta_user *a, const struct meta_user *b)
{
    assert_string_equal(a->uri, b->uri);
    assert_string_equal(a->display_name, b->display_name);
    assert_int_equal(a->disabled, b->disabled);
    assert_int_equal(a->chat_enabled, b->chat_enabled);
    assert_int_equal(a->admin, b->admin);
    if (a->password_hash == NULL || b->password_hash == NULL)
        assert_ptr_equal(a->password_hash, b->password_hash);
    else
        assert_string_equal(a->password_hash, b->password_hash);
}

/* Everything meta holds, compared through its own indexes. */
static void assert_states_equal(const struct meta *a, const struct meta *b)
{
    assert_string_equal(a->domain, b->domain);
    assert_int_equal(a->shard_count, b->shard_count);
    assert_true(a->next_room_no == b->next_room_no);
    assert_true(a->next_category_no == b->next_category_no);
    assert_true(a->applied_index == b->applied_index);
    assert_int_equal(meta_room_count(a), meta_room_count(b));
    for (const struct meta_room *r = a->rooms_by_no; r != NULL; r = r->hh_no.next) {
        const struct meta_room *o = meta_room_by_no(b, r->no);
        assert_non_null(o);
        assert_rooms_equal(r, o);
        assert_ptr_equal(meta_room_by_guid(b, r->guid), o);
        assert_ptr_equal(meta_room_by_name(b, r->name), o);
    }
    assert_int_equal(HASH_CNT(hh_no, a->cats_by_no), HASH_CNT(hh_no, b->cats_by_no));
    for (const struct meta_category *c = a->cats_by_no; c != NULL; c = c->hh_no.next) {
        const struct meta_category *o = meta_category_by_no(b, c->no);
        assert_non_null(o);
        assert_categories_equal(c, o);
        assert_ptr_equal(meta_category_by_guid(b, c->guid), o);
    }
    assert_int_equal(HASH_COUNT(a->users), HASH_COUNT(b->users));
    for (const struct meta_user *u = a->users; u != NULL; u = u->hh.next) {
        const struct meta_user *o = meta_user(b, u->uri);
        assert_non_null(o);
        assert_users_equal(u, o);
    }
    for (const struct meta_user_extra *x = a->extras; x != NULL; x = x->hh.next) {
        const struct meta_user_extra *o = NULL;
        HASH_FIND_STR(b->extras, x->uri, o);
        if (x->n_follows == 0 && x->n_invites == 0 && o == NULL)
            continue; /* an empty entry has nothing to persist */
        assert_non_null(o);
        assert_int_equal(x->n_follows, o->n_follows);
        for (size_t i = 0; i < x->n_follows; i++)
            assert_true(x->follows[i] == o->follows[i]);
        assert_int_equal(x->n_invites, o->n_invites);
        for (size_t i = 0; i < x->n_invites; i++) {
            assert_true(x->invites[i].id == o->invites[i].id);
            assert_true(x->invites[i].room_no == o->invites[i].room_no);
            assert_string_equal(x->invites[i].inviter, o->invites[i].inviter);
            assert_true(x->invites[i].ts_us == o->invites[i].ts_us);
        }
        assert_true(x->next_invite_id == o->next_invite_id);
    }
}

/* ---- apply ------------------------------------------------------------------------------- */

static void init_setsDomainAndShardsOnce(void **state)
{
    struct fixture *fx = *state;
    struct meta_op op;
    op_init(&op, "example.test", SHARDS);
    apply_ok(fx, &op);
    assert_string_equal(fx->m.domain, "example.test");
    assert_int_equal(fx->m.shard_count, SHARDS);
    /* Repeating the same INIT (a restarted bootstrap) is harmless... */
    op_init(&op, "EXAMPLE.test", SHARDS);
    apply_ok(fx, &op);
    /* ...but a different pool identity is refused. */
    op_init(&op, "other.test", SHARDS);
    apply_rejected(fx, &op, PC_EEXIST, "already initialised for domain example.test");
    op_init(&op, "example.test", SHARDS * 2);
    apply_rejected(fx, &op, PC_EEXIST, "already initialised");
    assert_int_equal(fx->m.shard_count, SHARDS);
}

static void op_nodes(struct meta_op *op, const char *prev, const char *nodes)
{
    memset(op, 0, sizeof *op);
    op->kind = META_OP_NODES;
    snprintf(op->prev_nodes, sizeof op->prev_nodes, "%s", prev);
    snprintf(op->nodes, sizeof op->nodes, "%s", nodes);
}

/* Membership changes are compare-and-set: a change based on a stale view is refused. */
static void nodes_changeOnlyFromTheCurrentMembership(void **state)
{
    struct fixture *fx = *state;
    struct meta_op op;
    op_nodes(&op, "", "1=10.0.0.1:7600,2=10.0.0.2:7600,3=10.0.0.3:7600,4=10.0.0.4:7600");
    apply_ok(fx, &op);
    assert_string_equal(fx->m.nodes, "1=10.0.0.1:7600,2=10.0.0.2:7600,3=10.0.0.3:7600,4=10.0.0.4:7600");
    op_nodes(&op, "", "1=10.0.0.1:7600");
    apply_rejected(fx, &op, PC_EBUSY, "membership changed meanwhile");
    op_nodes(&op, fx->m.nodes, "");
    apply_rejected(fx, &op, PC_EINVAL, "at least one node");
    op_nodes(&op, fx->m.nodes, "2=10.0.0.2:7600,3=10.0.0.3:7600,4=10.0.0.4:7600");
    apply_ok(fx, &op);
    /* It survives a restart (loaded from the store). */
    struct meta m2 = {0};
    assert_int_equal(meta_load(&m2, fx->st), 0);
    assert_string_equal(m2.nodes, "2=10.0.0.2:7600,3=10.0.0.3:7600,4=10.0.0.4:7600");
    meta_free(&m2);
}

static size_t compl_count(struct fixture *fx, uint32_t group)
{
    uint8_t lo[STORE_COMPL_KEY_LEN], hi[STORE_COMPL_KEY_LEN];
    store_key_compl(lo, group, 0, 0);
    store_key_compl(hi, group + 1, 0, 0);
    struct store_iter *it = store_iter_new(fx->st, STORE_CF_COMPL, lo, sizeof lo, hi, sizeof hi);
    size_t n = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it))
        n++;
    store_iter_free(it);
    return n;
}

static void op_cursor(struct meta_op *op, const char *adapter, uint32_t group, uint64_t index,
                      uint32_t n)
{
    memset(op, 0, sizeof *op);
    op->kind = META_OP_COMPL_CURSOR;
    snprintf(op->adapter, sizeof op->adapter, "%s", adapter);
    op->positions = pc_calloc(1, sizeof *op->positions);
    op->positions[0] = (struct meta_compl_pos){group, index, n};
    op->n_positions = 1;
}

/* Events are deleted once every registered adapter has taken them, on apply, in the same
 * batch as the cursor; cursors never move back; forgetting an adapter releases its hold. */
static void complCursor_deletesWhatEveryAdapterTook(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    /* Events of shard group 2 at indexes 10..14, two per entry. */
    store_batch_clear(fx->b);
    for (uint64_t i = 10; i < 15; i++)
        for (uint32_t k = 0; k < 2; k++) {
            uint8_t key[STORE_COMPL_KEY_LEN];
            store_key_compl(key, 2, i, k);
            store_batch_put(fx->b, STORE_CF_COMPL, key, sizeof key, "e", 1);
        }
    assert_int_equal(store_write(fx->st, fx->b, false), 0);
    assert_int_equal(compl_count(fx, 2), 10);

    struct meta_op op;
    op_cursor(&op, "xml", 2, 11, 1); /* xml took 10/0 .. 11/1 */
    apply_ok(fx, &op);
    assert_int_equal(compl_count(fx, 2), 6);
    op_cursor(&op, "exec", 2, 12, 0); /* a second adapter: nothing more is deleted... */
    apply_ok(fx, &op);
    assert_int_equal(compl_count(fx, 2), 6);
    op_cursor(&op, "xml", 2, 13, 1);  /* ...until both took it */
    apply_ok(fx, &op);
    assert_int_equal(compl_count(fx, 2), 5);
    struct meta_compl_pos t = meta_compl_taken(&fx->m, 2);
    assert_true(t.index == 12 && t.n == 0);
    op_cursor(&op, "xml", 2, 10, 0); /* backwards: ignored */
    apply_ok(fx, &op);
    assert_true(meta_compl_adapter(&fx->m, "xml")->pos[2].index == 13);
    /* Reloaded from the store as applied. */
    struct meta m2 = {0};
    assert_int_equal(meta_load(&m2, fx->st), 0);
    assert_int_equal(m2.n_adapters, 2);
    assert_true(meta_compl_taken(&m2, 2).index == 12);
    meta_free(&m2);
    /* Forgetting exec leaves xml's cursor in charge. */
    memset(&op, 0, sizeof op);
    op.kind = META_OP_COMPL_FORGET;
    snprintf(op.adapter, sizeof op.adapter, "exec");
    apply_ok(fx, &op);
    assert_int_equal(compl_count(fx, 2), 2);
    op.kind = META_OP_COMPL_FORGET;
    snprintf(op.adapter, sizeof op.adapter, "exec");
    apply_rejected(fx, &op, PC_ENOTFOUND, "no compliance adapter");
}

static void put_events(struct fixture *fx, uint32_t group, uint64_t from, uint64_t to)
{
    store_batch_clear(fx->b);
    for (uint64_t i = from; i <= to; i++)
        for (uint32_t k = 0; k < 2; k++) {
            uint8_t key[STORE_COMPL_KEY_LEN];
            store_key_compl(key, group, i, k);
            store_batch_put(fx->b, STORE_CF_COMPL, key, sizeof key, "e", 1);
        }
    assert_int_equal(store_write(fx->st, fx->b, false), 0);
}

/* A replica whose shard group lags its metadata group applies the shard's entries after
 * the cursor that covers them: their events are written after the apply that deleted
 * what the adapters took. The sweep deletes them, and only them. */
static void complSweep_deletesEventsWrittenBelowTheCursorLater(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    put_events(fx, 2, 10, 11);
    assert_int_equal(meta_compl_sweep(&fx->m, fx->st), 0); /* no adapter: nothing is taken */
    struct meta_op op;
    op_cursor(&op, "xml", 2, 13, 1); /* xml took up to 13/1 of group 2 */
    apply_ok(fx, &op);
    assert_int_equal(compl_count(fx, 2), 0);
    /* The lagging shard replica now applies entries 12..15 (two events each), and group 3
     * has events but no cursor. */
    put_events(fx, 2, 12, 15);
    put_events(fx, 3, 1, 2);
    assert_int_equal(compl_count(fx, 2), 8);
    assert_int_equal(meta_compl_sweep(&fx->m, fx->st), 1);
    assert_int_equal(compl_count(fx, 2), 4); /* 14/0 .. 15/1: not taken yet */
    assert_int_equal(compl_count(fx, 3), 4);
    assert_int_equal(meta_compl_sweep(&fx->m, fx->st), 0); /* nothing left: no write */
    assert_int_equal(compl_count(fx, 2), 4);
}

static void apply_createsCategoryAndRoomWithNumbers(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    const struct meta_category *c = meta_category_by_name(&fx->m, "general"); /* any case */
    assert_non_null(c);
    assert_true(c->no == 1);
    assert_ptr_equal(meta_category_by_no(&fx->m, 1), c);
    assert_true(meta_principals_match(&c->allowed, "sip:zed@example.test"));
    assert_true(c->chat_history && c->invitations && !c->file_upload);

    struct meta_room *r = meta_room_by_name(&fx->m, "LOBBY");
    assert_non_null(r);
    assert_true(r->no == 1 && r->category_no == 1);
    assert_string_equal(r->name, "Lobby");
    assert_string_equal(r->creator, ALICE); /* the actor of the op, not a field of it */
    assert_true(r->created_us == 1700000000000000 + META_OP_ROOM_PUT);
    assert_int_equal(r->shard, meta_shard_of(r->guid, SHARDS));
    assert_true(r->privacy == META_CLOSED && r->type == META_AUDITORIUM);
    assert_ptr_equal(meta_room_by_guid(&fx->m, "00000001-0000-4000-8000-000000000001"), r);

    /* Numbers keep counting; GUIDs are stored lower-case and found in any case. */
    struct meta_op op;
    op_room(&op, 0, 2, "Second", 1);
    memcpy(op.room.guid, "ABCDEF01-0000-4000-8000-0000000000AA", PC_GUID_LEN);
    assert_int_equal(apply_ok(fx, &op), 2);
    r = meta_room_by_no(&fx->m, 2);
    assert_string_equal(r->guid, "abcdef01-0000-4000-8000-0000000000aa");
    assert_ptr_equal(meta_room_by_guid(&fx->m, "ABCDEF01-0000-4000-8000-0000000000AA"), r);
    op_category(&op, 0, 101, "Second category");
    assert_int_equal(apply_ok(fx, &op), 2);
    assert_int_equal(meta_room_count(&fx->m), 2);
    assert_true(fx->m.next_room_no == 2 && fx->m.next_category_no == 2);
}

/* An update replaces the record but never its identity, origin or placement. */
static void apply_updateKeepsIdentityAndOrigin(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    struct meta_room orig;
    meta_room_copy(&orig, meta_room_by_no(&fx->m, 1));

    struct meta_op op;
    op_room(&op, 1, 99, "Great Hall", 1);
    snprintf(op.actor, sizeof op.actor, "%s", BOB);
    op.ts_us += 1000;
    op.room.shard = orig.shard + 1;
    op.room.privacy = META_SECRET;
    op.room.disabled = true;
    assert_int_equal(apply_ok(fx, &op), 1);

    const struct meta_room *r = meta_room_by_no(&fx->m, 1);
    assert_string_equal(r->name, "Great Hall");
    assert_true(r->privacy == META_SECRET && r->disabled);
    assert_string_equal(r->guid, orig.guid);
    assert_string_equal(r->creator, orig.creator);
    assert_true(r->created_us == orig.created_us);
    assert_int_equal(r->shard, orig.shard);
    assert_null(meta_room_by_name(&fx->m, "Lobby")); /* old name released */
    assert_ptr_equal(meta_room_by_name(&fx->m, "great hall"), r);
    assert_null(meta_room_by_guid(&fx->m, "00000063-0000-4000-8000-000000000063"));
    assert_int_equal(meta_room_count(&fx->m), 1);
    assert_true(fx->m.next_room_no == 1);

    /* Renaming to the same name in another case is not a clash with itself. */
    op_room(&op, 1, 1, "GREAT HALL", 1);
    apply_ok(fx, &op);
    assert_string_equal(meta_room_by_no(&fx->m, 1)->name, "GREAT HALL");
    meta_room_clear(&orig);
}

static void apply_rejectsDuplicatesAndUnknownNames(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    struct meta_op op;
    /* Names are unique across rooms and categories, case-insensitively. */
    op_category(&op, 0, 200, "GENERAL");
    apply_rejected(fx, &op, PC_EEXIST, "'GENERAL' is already used");
    op_category(&op, 0, 200, "lobby");
    apply_rejected(fx, &op, PC_EEXIST, "already used");
    op_room(&op, 0, 2, "lobby", 1);
    apply_rejected(fx, &op, PC_EEXIST, "already used");
    op_room(&op, 0, 2, "General", 1);
    apply_rejected(fx, &op, PC_EEXIST, "already used");
    /* References to things that do not exist. */
    op_room(&op, 0, 2, "Elsewhere", 42);
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such category");
    op_room(&op, 42, 2, "Elsewhere", 1);
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such room");
    op_category(&op, 42, 200, "Elsewhere");
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such category");
    op_base(&op, META_OP_ROOM_DEL);
    op.room.no = 42;
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such room");
    op_base(&op, META_OP_CATEGORY_DEL);
    op.cat.no = 42;
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such category");
    op_base(&op, META_OP_USER_DEL);
    op.user.uri = pc_strdup("sip:nobody@example.test");
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such user");
    op_follow(&op, META_OP_FOLLOW, ALICE, 42, true);
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such room");
    op_follow(&op, META_OP_INVITE, ALICE, 42, false);
    apply_rejected(fx, &op, PC_ENOTFOUND, "no such room");
    /* New records need fresh identities. */
    op_room(&op, 0, 1, "Clone", 1); /* Lobby's GUID */
    apply_rejected(fx, &op, PC_EINVAL, "fresh GUID");
    op_room(&op, 0, 2, "Short guid", 1);
    op.room.guid[10] = '\0';
    apply_rejected(fx, &op, PC_EINVAL, "fresh GUID");
    op_category(&op, 0, 100, "Clone");
    apply_rejected(fx, &op, PC_EINVAL, "fresh GUID");
    /* Malformed records. */
    op_room(&op, 0, 2, "", 1);
    apply_rejected(fx, &op, PC_EINVAL, "room name must be 1 to 256 characters");
    op_room(&op, 0, 2, "tab\there", 1);
    apply_rejected(fx, &op, PC_EINVAL, "control characters");
    op_category(&op, 0, 200, "bad \xff utf8");
    apply_rejected(fx, &op, PC_EINVAL, "category name");
    op_room(&op, 0, 2, "Long description", 1);
    pc_free(op.room.description);
    op.room.description = pc_malloc(4098);
    memset(op.room.description, 'd', 4097);
    op.room.description[4097] = '\0';
    apply_rejected(fx, &op, PC_EINVAL, "description");
    op_user(&op, "alice@example.test", "no scheme");
    apply_rejected(fx, &op, PC_EINVAL, "not a valid user URI");
    op_user(&op, "sip:a@b@c", "two hosts");
    apply_rejected(fx, &op, PC_EINVAL, "not a valid user URI");
    op_user(&op, "sip:a b@example.test", "space");
    apply_rejected(fx, &op, PC_EINVAL, "not a valid user URI");
    op_base(&op, (enum meta_op_kind)77);
    apply_rejected(fx, &op, PC_EINVAL, "unknown metadata operation");
    /* A category that still holds rooms cannot go. */
    op_base(&op, META_OP_CATEGORY_DEL);
    op.cat.no = 1;
    apply_rejected(fx, &op, PC_EBUSY, "'Lobby'");
    assert_non_null(meta_category_by_no(&fx->m, 1));

    /* Once the room is gone, it can. */
    op_base(&op, META_OP_ROOM_DEL);
    op.room.no = 1;
    assert_int_equal(apply_ok(fx, &op), 1);
    assert_null(meta_room_by_name(&fx->m, "Lobby"));
    op_base(&op, META_OP_CATEGORY_DEL);
    op.cat.no = 1;
    apply_ok(fx, &op);
    assert_null(meta_category_by_no(&fx->m, 1));
    assert_null(meta_category_by_name(&fx->m, "General"));
}

static void apply_managesUsersFollowsAndInvites(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    struct meta_op op;
    op_user(&op, "sip:Alice@Example.TEST", "Alice");
    apply_ok(fx, &op);
    struct meta_user *u = meta_user(&fx->m, ALICE);
    assert_non_null(u);
    assert_string_equal(u->uri, ALICE); /* stored lower-case */
    assert_ptr_equal(meta_user(&fx->m, "SIP:ALICE@EXAMPLE.TEST"), u);
    assert_string_equal(u->password_hash, "$argon2id$v=19$stub");
    /* A PUT replaces the whole record. */
    op_user(&op, ALICE, "Alice A.");
    op.user.admin = true;
    pc_free(op.user.password_hash);
    op.user.password_hash = NULL;
    apply_ok(fx, &op);
    u = meta_user(&fx->m, ALICE);
    assert_string_equal(u->display_name, "Alice A.");
    assert_true(u->admin);
    assert_null(u->password_hash);
    assert_int_equal(HASH_COUNT(fx->m.users), 1);

    /* Follows: a sorted set; following twice or unfollowing a stranger changes nothing. */
    op_room(&op, 0, 2, "Room two", 1);
    apply_ok(fx, &op);
    op_room(&op, 0, 3, "Room three", 1);
    apply_ok(fx, &op);
    const uint64_t order[] = {3, 1, 2, 1};
    for (size_t i = 0; i < 4; i++) {
        op_follow(&op, META_OP_FOLLOW, ALICE, order[i], true);
        apply_ok(fx, &op);
    }
    assert_true(meta_follows(&fx->m, ALICE, 1) && meta_follows(&fx->m, ALICE, 2) &&
                meta_follows(&fx->m, ALICE, 3));
    assert_false(meta_follows(&fx->m, BOB, 1));
    op_follow(&op, META_OP_FOLLOW, ALICE, 2, false);
    apply_ok(fx, &op);
    op_follow(&op, META_OP_FOLLOW, ALICE, 2, false);
    apply_ok(fx, &op);
    assert_false(meta_follows(&fx->m, ALICE, 2));
    assert_true(meta_follows(&fx->m, ALICE, 1) && meta_follows(&fx->m, ALICE, 3));

    /* Invitations get increasing per-user ids; the inviter is the op's actor. */
    for (uint64_t room = 1; room <= 3; room++) {
        op_follow(&op, META_OP_INVITE, BOB, room, false);
        op.ts_us = (int64_t)room * 10;
        assert_int_equal(apply_ok(fx, &op), room);
    }
    const struct meta_invite *inv[8];
    assert_int_equal(meta_invites(&fx->m, BOB, 0, inv, 8), 3);
    assert_true(inv[0]->id == 1 && inv[0]->room_no == 1 && inv[0]->ts_us == 10);
    assert_string_equal(inv[0]->inviter, ALICE);
    assert_int_equal(meta_invites(&fx->m, BOB, 1, inv, 8), 2);
    assert_true(inv[0]->id == 2 && inv[1]->id == 3);
    assert_int_equal(meta_invites(&fx->m, BOB, 0, inv, 1), 1);
    assert_int_equal(meta_invites(&fx->m, BOB, 3, inv, 8), 0);
    assert_int_equal(meta_invites(&fx->m, ALICE, 0, inv, 8), 0);

    op_base(&op, META_OP_USER_DEL);
    op.user.uri = pc_strdup("SIP:alice@example.test");
    apply_ok(fx, &op);
    assert_null(meta_user(&fx->m, ALICE));
}

/* The applied index goes into the same batch as the change, so that after a crash the
 * store never claims an index whose change it lacks, or the reverse. */
static void apply_writesAppliedIndexInSameBatch(void **state)
{
    struct fixture *fx = *state;
    uint8_t k[STORE_KEY_MAX];
    size_t klen = store_key_applied(k, 0);
    struct pc_buf v = {0};
    assert_int_equal(store_get(fx->st, STORE_CF_STATE, k, klen, &v), PC_ENOTFOUND);

    struct meta_op op;
    op_init(&op, "example.test", SHARDS);
    struct meta_result res;
    meta_apply(&fx->m, 42, &op, fx->b, &res);
    assert_int_equal(res.status, 0);
    assert_true(fx->m.applied_index == 42);
    /* Not yet in the store: only the batch holds it. */
    assert_int_equal(store_get(fx->st, STORE_CF_STATE, k, klen, &v), PC_ENOTFOUND);
    assert_int_equal(store_write(fx->st, fx->b, false), 0);
    assert_int_equal(store_get(fx->st, STORE_CF_STATE, k, klen, &v), 0);
    assert_int_equal(v.len, 8);
    assert_true(pc_be64_read((const uint8_t *)v.data) == 42);
    uint8_t dk[STORE_KEY_MAX];
    assert_int_equal(store_get(fx->st, STORE_CF_META, dk, store_key_global(dk, "domain"), &v), 0);
    assert_string_equal(v.data, "example.test");

    /* A rejected op still advances the index (it was applied, as a no-op). */
    store_batch_clear(fx->b);
    op_category(&op, 7, 1, "Nope");
    meta_apply(&fx->m, 43, &op, fx->b, &res);
    meta_op_clear(&op);
    assert_int_equal(res.status, PC_ENOTFOUND);
    assert_int_equal(store_batch_count(fx->b), 1);
    assert_int_equal(store_write(fx->st, fx->b, false), 0);
    assert_int_equal(store_get(fx->st, STORE_CF_STATE, k, klen, &v), 0);
    assert_true(pc_be64_read((const uint8_t *)v.data) == 43);
    pc_buf_free(&v);
}

/* Room changes are compliance events in the same batch, keyed by (group 0, index, n). */
static void apply_recordsRoomChangesForCompliance(void **state)
{
    struct fixture *fx = *state;
    fx->m.compl_mask = COMPL_CLASSES_ALL;
    seed(fx);
    uint64_t created_at = fx->index;
    uint8_t k[STORE_COMPL_KEY_LEN];
    struct pc_buf v = {0};
    struct pc_arena arena = {0};
    struct compl_event ev;
    store_key_compl(k, 0, created_at, 0);
    assert_int_equal(store_get(fx->st, STORE_CF_COMPL, k, sizeof k, &v), 0);
    assert_int_equal(compl_event_decode(v.data, v.len, &ev, &arena), 0);
    assert_int_equal(ev.type, COMPL_ROOM_CREATED);
    assert_string_equal(ev.room_name, "Lobby");
    assert_string_equal(ev.user, ALICE);
    assert_string_equal(ev.content, "closed");

    /* Changing the member list: a MEMBERSHIP event, then ROOM_CHANGED. */
    struct meta_op op;
    op_room(&op, 1, 1, "Lobby", 1);
    meta_principals_add(&op.room.members, "sip:carol@example.test");
    apply_ok(fx, &op);
    store_key_compl(k, 0, fx->index, 0);
    assert_int_equal(store_get(fx->st, STORE_CF_COMPL, k, sizeof k, &v), 0);
    assert_int_equal(compl_event_decode(v.data, v.len, &ev, &arena), 0);
    assert_int_equal(ev.type, COMPL_MEMBERSHIP);
    store_key_compl(k, 0, fx->index, 1);
    assert_int_equal(store_get(fx->st, STORE_CF_COMPL, k, sizeof k, &v), 0);
    assert_int_equal(compl_event_decode(v.data, v.len, &ev, &arena), 0);
    assert_int_equal(ev.type, COMPL_ROOM_CHANGED);

    /* With the class off, nothing is recorded. */
    fx->m.compl_mask = 0;
    op_room(&op, 0, 5, "Quiet", 1);
    apply_ok(fx, &op);
    store_key_compl(k, 0, fx->index, 0);
    assert_int_equal(store_get(fx->st, STORE_CF_COMPL, k, sizeof k, &v), PC_ENOTFOUND);
    pc_arena_free(&arena);
    pc_buf_free(&v);
}

/* A node restarting from its store must hold exactly the state it had. */
static void load_restoresEverythingApplied(void **state)
{
    struct fixture *fx = *state;
    seed(fx);
    struct meta_op op;
    op_category(&op, 0, 101, "Empty category");
    op.cat.file_upload = true;
    apply_ok(fx, &op);
    op_room(&op, 0, 2, "Secret", 2);
    op.room.privacy = META_SECRET;
    op.room.type = META_NORMAL;
    op.room.disabled = true;
    apply_ok(fx, &op);
    op_room(&op, 0, 3, "Doomed", 1);
    apply_ok(fx, &op);
    op_base(&op, META_OP_ROOM_DEL);
    op.room.no = 3;
    apply_ok(fx, &op);
    op_user(&op, ALICE, "Alice");
    apply_ok(fx, &op);
    op_user(&op, BOB, "Bob");
    pc_free(op.user.password_hash);
    op.user.password_hash = NULL;
    op.user.disabled = true;
    apply_ok(fx, &op);
    const uint64_t follows[] = {2, 1};
    for (size_t i = 0; i < 2; i++) {
        op_follow(&op, META_OP_FOLLOW, ALICE, follows[i], true);
        apply_ok(fx, &op);
    }
    for (int i = 0; i < 3; i++) {
        op_follow(&op, META_OP_INVITE, BOB, 1 + (uint64_t)(i % 2), false);
        apply_ok(fx, &op);
    }

    struct meta loaded;
    assert_int_equal(meta_load(&loaded, fx->st), 0);
    assert_states_equal(&fx->m, &loaded);
    assert_states_equal(&loaded, &fx->m);
    assert_null(meta_room_by_no(&loaded, 3));
    assert_true(loaded.next_room_no == 3); /* numbers of deleted rooms are not reused */

    /* Numbering continues after a reload: swap in the loaded state and apply more. */
    meta_free(&fx->m);
    fx->m = loaded;
    op_room(&op, 0, 4, "After restart", 1);
    assert_int_equal(apply_ok(fx, &op), 4);
    op_follow(&op, META_OP_INVITE, BOB, 1, false);
    assert_int_equal(apply_ok(fx, &op), 4);
}

/* ---- codec ------------------------------------------------------------------------------ */

/* One fully populated op of every kind; returns how many were written (max 16). */
static size_t every_op(struct meta_op *ops)
{
    size_t n = 0;
    op_init(&ops[n++], "example.test", 16);
    op_category(&ops[n++], 0, 100, "Général");
    ops[n - 1].cat.file_upload = true;
    op_category(&ops[n], 3, 101, "Del");
    ops[n++].kind = META_OP_CATEGORY_DEL;
    op_room(&ops[n], 9, 1, "Lobby \xe2\x98\x95", 1);
    ops[n].room.creator = pc_strdup(BOB);
    ops[n].room.created_us = -5;
    ops[n].room.shard = 0xfffffffeu;
    ops[n].room.disabled = true;
    ops[n++].room.privacy = META_SECRET;
    op_room(&ops[n], 4, 2, "Del", 1);
    ops[n++].kind = META_OP_ROOM_DEL;
    op_user(&ops[n], ALICE, "Alice");
    ops[n].user.admin = ops[n].user.disabled = true;
    n++;
    op_user(&ops[n], BOB, "");
    pc_free(ops[n].user.password_hash);
    ops[n].user.password_hash = NULL;
    ops[n++].kind = META_OP_USER_DEL;
    op_follow(&ops[n++], META_OP_FOLLOW, BOB, UINT64_MAX, true);
    op_follow(&ops[n++], META_OP_INVITE, BOB, 12, false);
    ops[n - 1].ts_us = INT64_MIN;
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].kind = META_OP_NODES;
    snprintf(ops[n].nodes, sizeof ops[n].nodes, "1=127.0.0.1:7600,4=127.0.0.1:7630");
    snprintf(ops[n++].prev_nodes, sizeof ops[0].prev_nodes, "1=127.0.0.1:7600");
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].kind = META_OP_COMPL_CURSOR;
    snprintf(ops[n].adapter, sizeof ops[n].adapter, "xml");
    ops[n].positions = pc_calloc(2, sizeof *ops[n].positions);
    ops[n].positions[0] = (struct meta_compl_pos){0, 7, 1};
    ops[n].positions[1] = (struct meta_compl_pos){UINT32_MAX, UINT64_MAX, UINT32_MAX};
    ops[n++].n_positions = 2;
    memset(&ops[n], 0, sizeof ops[n]);
    ops[n].kind = META_OP_SETTINGS;
    ops[n].settings = (struct meta_settings){30, 75, 20000, "Removed \xe2\x98\x95"};
    n++;
    return n;
}

static void assert_ops_equal(const struct meta_op *a, const struct meta_op *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_true(a->ts_us == b->ts_us);
    assert_string_equal(a->actor, b->actor);
    assert_string_equal(a->node, b->node);
    switch (a->kind) {
    case META_OP_CATEGORY_PUT:
    case META_OP_CATEGORY_DEL:
        assert_categories_equal(&a->cat, &b->cat);
        break;
    case META_OP_ROOM_PUT:
    case META_OP_ROOM_DEL:
        assert_true(b->room.creator != NULL);
        assert_string_equal(a->room.creator != NULL ? a->room.creator : "", b->room.creator);
        {
            struct meta_room ra = a->room;
            ra.creator = b->room.creator; /* NULL encodes as "" */
            assert_rooms_equal(&ra, &b->room);
        }
        break;
    case META_OP_USER_PUT:
    case META_OP_USER_DEL:
        assert_users_equal(&a->user, &b->user);
        break;
    case META_OP_FOLLOW:
    case META_OP_INVITE:
        assert_true(a->room_no == b->room_no);
        assert_string_equal(a->target_user, b->target_user);
        assert_int_equal(a->flag, b->flag);
        break;
    case META_OP_INIT:
        assert_int_equal(a->shard_count, b->shard_count);
        assert_string_equal(a->domain, b->domain);
        break;
    case META_OP_NODES:
        assert_string_equal(a->nodes, b->nodes);
        assert_string_equal(a->prev_nodes, b->prev_nodes);
        break;
    case META_OP_COMPL_CURSOR:
    case META_OP_COMPL_FORGET:
        assert_string_equal(a->adapter, b->adapter);
        assert_int_equal(a->n_positions, b->n_positions);
        for (size_t i = 0; i < a->n_positions; i++) {
            assert_int_equal(a->positions[i].group, b->positions[i].group);
            assert_true(a->positions[i].index == b->positions[i].index);
            assert_int_equal(a->positions[i].n, b->positions[i].n);
        }
        break;
    case META_OP_SETTINGS:
        assert_memory_equal(&a->settings, &b->settings, sizeof a->settings);
        break;
    }
}

/* Raft replicas decode the proposer's bytes: decode must give back the op, and re-encoding
 * must give back the same bytes (so that every replica logs identical entries). */
static void codec_roundTripsEveryOp(void **state)
{
    (void)state;
    struct meta_op ops[16];
    size_t n = every_op(ops);
    int kinds_seen = 0;
    for (size_t i = 0; i < n; i++) {
        struct pc_buf a = {0}, b = {0};
        meta_op_encode(&ops[i], &a);
        struct meta_op back;
        int rc = meta_op_decode(a.data, a.len, &back);
        if (rc != 0)
            fail_msg("op %zu (kind %d) did not decode: %s", i, ops[i].kind, pc_errname(rc));
        assert_ops_equal(&ops[i], &back);
        meta_op_encode(&back, &b);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        kinds_seen |= 1 << ops[i].kind;
        meta_op_clear(&back);
        meta_op_clear(&ops[i]);
        pc_buf_free(&a);
        pc_buf_free(&b);
    }
    for (int k = META_OP_CATEGORY_PUT; k <= META_OP_INIT; k++)
        assert_true(kinds_seen & (1 << k));
}

/* Entries come from peers: every defect is PC_ECORRUPT, with nothing leaked. */
static void codec_rejectsDamagedInput(void **state)
{
    (void)state;
    struct meta_op ops[16], back;
    size_t n = every_op(ops);
    for (size_t i = 0; i < n; i++) {
        struct pc_buf a = {0};
        meta_op_encode(&ops[i], &a);
        for (size_t len = 0; len < a.len; len++)
            if (meta_op_decode(a.data, len, &back) != PC_ECORRUPT)
                fail_msg("op %zu: prefix of %zu/%zu bytes accepted", i, len, a.len);
        pc_buf_putc(&a, 0); /* trailing junk */
        assert_int_equal(meta_op_decode(a.data, a.len, &back), PC_ECORRUPT);
        a.data[0] = 2; /* unknown format version */
        assert_int_equal(meta_op_decode(a.data, a.len - 1, &back), PC_ECORRUPT);
        a.data[0] = 1;
        a.data[1] = 99; /* unknown kind */
        assert_int_equal(meta_op_decode(a.data, a.len - 1, &back), PC_ECORRUPT);
        meta_op_clear(&ops[i]);
        pc_buf_free(&a);
    }
    /* Values out of range for their field. */
    struct meta_op op;
    struct pc_buf a = {0};
    op_init(&op, "example.test", 0);
    meta_op_encode(&op, &a);
    assert_int_equal(meta_op_decode(a.data, a.len, &back), PC_ECORRUPT);
    pc_buf_reset(&a);
    op_room(&op, 1, 1, "x", 1);
    op.room.privacy = (enum meta_privacy)3;
    meta_op_encode(&op, &a);
    meta_op_clear(&op);
    assert_int_equal(meta_op_decode(a.data, a.len, &back), PC_ECORRUPT);
    pc_buf_free(&a);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void principals_parseNormaliseAndMatch(void **state)
{
    (void)state;
    struct meta_principals p = {0};
    char err[128] = "";
    assert_true(meta_principals_parse(&p, " Alice@Example.test, sip:BOB@example.test;*@Partner.test "
                                          "alice@example.test", err, sizeof err));
    assert_int_equal(p.n, 3); /* duplicates collapse */
    assert_string_equal(p.items[0], "sip:alice@example.test");
    assert_string_equal(p.items[1], "sip:bob@example.test");
    assert_string_equal(p.items[2], "*@partner.test");
    assert_true(meta_principals_match(&p, "SIP:Alice@example.TEST"));
    assert_true(meta_principals_match(&p, "sip:anyone@PARTNER.test"));
    assert_false(meta_principals_match(&p, "sip:carol@example.test"));
    assert_false(meta_principals_match(&p, "sip:x@sub.partner.test"));

    const char *bad[] = {"nohost", "a@", "a@b@c", "<sip:a@b>", "sip:a\"@b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (meta_principals_parse(&p, bad[i], err, sizeof err) || strstr(err, "is not a user") == NULL)
            fail_msg("'%s' accepted or unexplained: '%s'", bad[i], err);
    }
    struct meta_principals everyone = {0};
    assert_true(meta_principals_parse(&everyone, "*", err, sizeof err));
    assert_true(meta_principals_match(&everyone, "sip:anybody@anywhere.test"));
    meta_principals_copy(&everyone, &p); /* replaces */
    assert_principals_equal(&everyone, &p);
    meta_principals_clear(&everyone);
    meta_principals_clear(&p);
    assert_int_equal(p.n, 0);
    assert_false(meta_principals_match(&p, "sip:alice@example.test"));
}

/* The shard of a room is a pure, case-insensitive function of its GUID that spreads rooms. */
static void shard_isStableAndSpread(void **state)
{
    (void)state;
    const char *g = "8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b";
    assert_int_equal(meta_shard_of(g, 16), meta_shard_of("8E1D0C3A-5F6B-4B7E-9A21-1C2D3E4F5A6B", 16));
    assert_int_equal(meta_shard_of(g, 1), 0);
    assert_int_equal(meta_shard_of(g, 0), 0);
    /* Random GUIDs, as rooms get them. (Patterned ones like guid_n's spread badly over a
     * power-of-two count: FNV-1a's low bits see only the low bits of each character.) */
    unsigned hits[16] = {0};
    for (unsigned i = 0; i < 1600; i++) {
        char guid[PC_GUID_LEN];
        pc_guid(guid);
        uint32_t s = meta_shard_of(guid, 16);
        assert_true(s < 16);
        hits[s]++;
    }
    for (int s = 0; s < 16; s++)
        assert_true(hits[s] > 40); /* 100 expected each */

    enum meta_privacy p;
    assert_true(meta_privacy_parse("Secret", &p) && p == META_SECRET);
    assert_false(meta_privacy_parse("public", &p));
    assert_string_equal(meta_privacy_name(META_CLOSED), "closed");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(init_setsDomainAndShardsOnce),
        T(nodes_changeOnlyFromTheCurrentMembership),
        T(complCursor_deletesWhatEveryAdapterTook),
        T(complSweep_deletesEventsWrittenBelowTheCursorLater),
        T(apply_createsCategoryAndRoomWithNumbers),
        T(apply_updateKeepsIdentityAndOrigin),
        T(apply_rejectsDuplicatesAndUnknownNames),
        T(apply_managesUsersFollowsAndInvites),
        T(apply_writesAppliedIndexInSameBatch),
        T(apply_recordsRoomChangesForCompliance),
        T(load_restoresEverythingApplied),
        cmocka_unit_test(codec_roundTripsEveryOp),
        cmocka_unit_test(codec_rejectsDamagedInput),
        cmocka_unit_test(principals_parseNormaliseAndMatch),
        cmocka_unit_test(shard_isStableAndSpread),
    };
#undef T
    return cmocka_run_group_tests_name("meta", tests, NULL, NULL);
}
