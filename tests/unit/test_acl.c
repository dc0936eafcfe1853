/* Unit tests for chat/chat_acl: the single authorisation decision, over a small world of
 * rooms of every kind built with meta_apply. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_acl.h"
#include "cluster/meta.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "storage/store.h"

#define ADMIN "sip:admin@example.test"
#define ROOT_ELSEWHERE "sip:root@other.test"  /* an admin outside the category's scope */
#define EX_ADMIN "sip:former@example.test"     /* admin flag, but disabled */
#define ALICE "sip:alice@example.test"         /* member of the closed and secret rooms */
#define BOB "sip:bob@example.test"             /* in scope, listed nowhere */
#define MANAGER "sip:manager@example.test"
#define PRESENTER "sip:presenter@example.test"
#define MALLORY "sip:mallory@example.test"     /* denied by the category */
#define OUTSIDER "sip:eve@other.test"          /* outside the category's scope */
#define GUEST "sip:guest@other.test"           /* outside it, but listed in a room */

/* The world: one category, rooms of every kind, some users. Built once for all tests. */
struct world {
    char dir[64];
    struct store *st;
    struct meta m;
};

static struct world W;

static void apply(struct meta_op *op)
{
    static uint64_t index;
    struct store_batch *b = store_batch_new(W.st); /* never written: ACLs read memory only */
    struct meta_result res;
    meta_apply(&W.m, ++index, op, b, &res);
    store_batch_free(b);
    if (res.status != 0)
        fail_msg("setup op failed: %s", res.errmsg);
    meta_op_clear(op);
}

static void add_user(const char *uri, bool admin, bool disabled)
{
    struct meta_op op = {.kind = META_OP_USER_PUT};
    op.user.uri = pc_strdup(uri);
    op.user.display_name = pc_strdup("");
    op.user.admin = admin;
    op.user.disabled = disabled;
    apply(&op);
}

static void add_principals(struct meta_principals *p, const char *list)
{
    char err[128];
    if (!meta_principals_parse(p, list, err, sizeof err))
        fail_msg("%s", err);
}

static void add_room(unsigned n, const char *name, enum meta_privacy privacy,
                     enum meta_room_type type, bool disabled, const char *members)
{
    struct meta_op op = {.kind = META_OP_ROOM_PUT};
    snprintf(op.room.guid, sizeof op.room.guid, "%08x-0000-4000-8000-000000000000", n);
    op.room.name = pc_strdup(name);
    op.room.category_no = 1;
    op.room.privacy = privacy;
    op.room.type = type;
    op.room.disabled = disabled;
    add_principals(&op.room.managers, MANAGER);
    add_principals(&op.room.presenters, PRESENTER);
    add_principals(&op.room.members, members);
    apply(&op);
}

static int setup(void **state)
{
    (void)state;
    snprintf(W.dir, sizeof W.dir, "/tmp/pchat-acl-XXXXXX");
    char path[128], err[256];
    if (mkdtemp(W.dir) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/db", W.dir);
    struct store_options opt = {.create_if_missing = true, .block_cache_mb = 1};
    if (store_open(path, &opt, &W.st, err, sizeof err) != 0)
        return -1;

    struct meta_op op = {.kind = META_OP_INIT, .shard_count = 1};
    snprintf(op.domain, sizeof op.domain, "example.test");
    apply(&op);
    struct meta_op cat = {.kind = META_OP_CATEGORY_PUT};
    snprintf(cat.cat.guid, sizeof cat.cat.guid, "cat-1");
    cat.cat.name = pc_strdup("General");
    add_principals(&cat.cat.allowed, "*@example.test");
    add_principals(&cat.cat.denied, MALLORY);
    add_principals(&cat.cat.creators, ALICE " " MALLORY);
    apply(&cat);

    add_user(ADMIN, true, false);
    add_user(ROOT_ELSEWHERE, true, false);
    add_user(EX_ADMIN, true, true);
    add_user(ALICE, false, false);

    add_room(1, "Open", META_OPEN, META_NORMAL, false, "");
    add_room(2, "Closed", META_CLOSED, META_NORMAL, false, ALICE);
    add_room(3, "Secret", META_SECRET, META_NORMAL, false, ALICE);
    add_room(4, "Stage", META_OPEN, META_AUDITORIUM, false, "");
    add_room(5, "Frozen", META_CLOSED, META_NORMAL, true, ALICE);
    add_room(6, "Partners", META_SECRET, META_NORMAL, false, GUEST);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    meta_free(&W.m);
    store_close(W.st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", W.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const struct meta_room *room(const char *name)
{
    const struct meta_room *r = meta_room_by_name(&W.m, name);
    if (r == NULL)
        fail_msg("no room %s", name);
    return r;
}

static const char *action_name(enum chat_action a)
{
    return a == CHAT_SEE ? "SEE" : a == CHAT_JOIN ? "JOIN" : a == CHAT_POST ? "POST" : "MANAGE";
}

/* Asserts the decision for (user, room, action), and that a refusal other than "not found"
 * comes with a reason to show while "not found" gives none (it must not leak existence). */
static void expect(const char *user, const char *room_name, enum chat_action a, int want)
{
    const char *why = "untouched";
    int rc = chat_acl_check(&W.m, room(room_name), user, a, &why);
    if (rc != want)
        fail_msg("%s %s %s: got %s, expected %s", user, action_name(a), room_name,
                 pc_errname(rc), pc_errname(want));
    if (rc == 0 || rc == PC_ENOTFOUND)
        assert_null(why);
    else
        assert_true(why != NULL && why[0] != '\0');
}

/* SEE, JOIN, POST, MANAGE in one line. */
static void expect4(const char *user, const char *room_name, int see, int join, int post, int manage)
{
    expect(user, room_name, CHAT_SEE, see);
    expect(user, room_name, CHAT_JOIN, join);
    expect(user, room_name, CHAT_POST, post);
    expect(user, room_name, CHAT_MANAGE, manage);
}

static void openRoom_admitsEveryoneInScope(void **state)
{
    (void)state;
    expect4(BOB, "Open", 0, 0, 0, PC_EDENIED);
    expect4("SIP:Bob@Example.TEST", "Open", 0, 0, 0, PC_EDENIED); /* URIs are case-blind */
    expect4(MANAGER, "Open", 0, 0, 0, 0);
    expect4(ADMIN, "Open", 0, 0, 0, 0);
    /* Out of the category's scope: the room does not exist for them. */
    expect4(OUTSIDER, "Open", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
    expect4(MALLORY, "Open", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
}

static void closedRoom_isVisibleButMembersOnly(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(chat_acl_check(&W.m, room("Closed"), BOB, CHAT_JOIN, &why), PC_EDENIED);
    assert_string_equal(why, "this room is for its members only");
    expect4(BOB, "Closed", 0, PC_EDENIED, PC_EDENIED, PC_EDENIED);
    expect4(ALICE, "Closed", 0, 0, 0, PC_EDENIED);
    expect4(MANAGER, "Closed", 0, 0, 0, 0);     /* managers are members */
    expect4(PRESENTER, "Closed", 0, 0, 0, PC_EDENIED); /* and so are presenters */
}

/* A secret room answers exactly like a missing one to anyone who is not a member. */
static void secretRoom_isNotFoundForNonMembers(void **state)
{
    (void)state;
    expect4(BOB, "Secret", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
    expect4(OUTSIDER, "Secret", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
    int missing = chat_acl_check(&W.m, NULL, BOB, CHAT_SEE, NULL);
    assert_int_equal(missing, PC_ENOTFOUND);
    assert_int_equal(chat_acl_check(&W.m, room("Secret"), BOB, CHAT_SEE, NULL), missing);
    expect4(ALICE, "Secret", 0, 0, 0, PC_EDENIED);
    expect4(MANAGER, "Secret", 0, 0, 0, 0);
}

/* Admins see and manage everything, but take part only like anyone else. */
static void admins_manageButPostOnlyAsMembers(void **state)
{
    (void)state;
    expect4(ADMIN, "Secret", 0, PC_EDENIED, PC_EDENIED, 0);
    expect4(ADMIN, "Closed", 0, PC_EDENIED, PC_EDENIED, 0);
    expect4(ROOT_ELSEWHERE, "Open", 0, PC_EDENIED, PC_EDENIED, 0);
    expect4(ROOT_ELSEWHERE, "Partners", 0, PC_EDENIED, PC_EDENIED, 0);
    /* A disabled admin is nobody special. */
    expect4(EX_ADMIN, "Secret", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
    expect4(EX_ADMIN, "Open", 0, 0, 0, PC_EDENIED);
}

static void auditorium_letsOnlyPresentersPost(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(chat_acl_check(&W.m, room("Stage"), BOB, CHAT_POST, &why), PC_EDENIED);
    assert_string_equal(why, "only presenters may post in this auditorium");
    expect4(BOB, "Stage", 0, 0, PC_EDENIED, PC_EDENIED);
    expect4(PRESENTER, "Stage", 0, 0, 0, PC_EDENIED);
    expect4(MANAGER, "Stage", 0, 0, PC_EDENIED, 0); /* managing is not presenting */
    expect4(ADMIN, "Stage", 0, 0, PC_EDENIED, 0);
}

/* A disabled room stays visible and manageable (so it can be re-enabled), but closed. */
static void disabledRoom_refusesJoinAndPost(void **state)
{
    (void)state;
    const char *why = NULL;
    assert_int_equal(chat_acl_check(&W.m, room("Frozen"), ALICE, CHAT_JOIN, &why), PC_EDISABLED);
    assert_string_equal(why, "this room is disabled");
    expect4(ALICE, "Frozen", 0, PC_EDISABLED, PC_EDISABLED, PC_EDENIED);
    expect4(MANAGER, "Frozen", 0, PC_EDISABLED, PC_EDISABLED, 0);
    expect4(BOB, "Frozen", 0, PC_EDISABLED, PC_EDISABLED, PC_EDENIED);
    expect4(OUTSIDER, "Frozen", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
}

/* Users listed in a room are in its scope even from outside the category's domain. */
static void listedOutsider_isInScope(void **state)
{
    (void)state;
    expect4(GUEST, "Partners", 0, 0, 0, PC_EDENIED);
    expect4(GUEST, "Open", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
    expect4(OUTSIDER, "Partners", PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND, PC_ENOTFOUND);
}

static void membership_andCreationRights(void **state)
{
    (void)state;
    const struct meta_room *closed = room("Closed");
    assert_true(chat_acl_is_member(closed, ALICE));
    assert_true(chat_acl_is_member(closed, MANAGER));
    assert_true(chat_acl_is_member(closed, PRESENTER));
    assert_false(chat_acl_is_member(closed, BOB));
    assert_true(chat_acl_is_manager(closed, "sip:MANAGER@example.test"));
    assert_false(chat_acl_is_manager(closed, ALICE));

    const struct meta_category *cat = meta_category_by_no(&W.m, 1);
    assert_true(chat_acl_may_create(&W.m, cat, ALICE));
    assert_false(chat_acl_may_create(&W.m, cat, BOB));
    assert_false(chat_acl_may_create(&W.m, cat, MALLORY)); /* a creator, but denied */
    assert_true(chat_acl_may_create(&W.m, cat, ADMIN));
    assert_false(chat_acl_may_create(&W.m, cat, EX_ADMIN));
    assert_false(chat_acl_may_create(&W.m, NULL, ALICE));
    assert_true(chat_acl_may_create(&W.m, NULL, ADMIN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(openRoom_admitsEveryoneInScope),
        cmocka_unit_test(closedRoom_isVisibleButMembersOnly),
        cmocka_unit_test(secretRoom_isNotFoundForNonMembers),
        cmocka_unit_test(admins_manageButPostOnlyAsMembers),
        cmocka_unit_test(auditorium_letsOnlyPresentersPost),
        cmocka_unit_test(disabledRoom_refusesJoinAndPost),
        cmocka_unit_test(listedOutsider_isInScope),
        cmocka_unit_test(membership_andCreationRights),
    };
    return cmocka_run_group_tests_name("acl", tests, setup, teardown);
}
