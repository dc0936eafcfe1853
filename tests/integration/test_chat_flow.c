/* The XCCOS chat flow against a real pchatd: sign-in, search, join, history, post, fan-out,
 * order, notices, invitations, and every authorisation rule, with several clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/pc_alloc.h"
#include "tests/lib/tl.h"

static struct tl_node node;
static char lobby[256];

static int setup(void **state)
{
    (void)state;
    tl_node_init(&node, tl_port_base() + 1, "[compliance]\ncapture = all\n");
    tl_node_start(&node);
    char out[4096];
    /* Rooms for the authorisation tests, made the way an operator would. */
    assert_int_equal(tl_pchatctl(&node, out, sizeof out,
                                 "room new Secretroom --category General --privacy secret "
                                 "--members alice@example.test --managers alice@example.test"), 0);
    assert_int_equal(tl_pchatctl(&node, out, sizeof out,
                                 "room new Closedroom --category General --privacy closed "
                                 "--members alice@example.test,carol@example.test"), 0);
    assert_int_equal(tl_pchatctl(&node, out, sizeof out,
                                 "room new Stage --category General --type auditorium "
                                 "--presenters alice@example.test"), 0);
    assert_int_equal(tl_pchatctl(&node, out, sizeof out,
                                 "room new Attic --category General --disabled yes"), 0);
    struct tl_client *c = tl_client_new(node.sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    tl_client_close(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_node_stop(&node);
    tl_node_cleanup(&node);
    return 0;
}

static void signin_reachesReadyWithProvisionedChatUri(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "alice@example.test");
    assert_string_equal(pcc_chat_uri(c->pcc), "sip:pchat@example.test");
    tl_client_close(c);
}

static void signin_refusesOtherDomain(void **state)
{
    (void)state;
    char why[256];
    struct tl_client *c = tl_client_try(node.sip_port, "mallory@evil.test", why, sizeof why);
    assert_null(c);
    assert_non_null(strstr(why, "403"));
}

static void search_listsVisibleRoomsWithTheirProperties(void **state)
{
    (void)state;
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    struct pcc_event *ev = tl_search(bob, "");
    bool lobby_seen = false, closed_seen = false, secret_seen = false;
    for (size_t i = 0; i < ev->msg.n_rooms; i++) {
        const struct xccos_room *r = &ev->msg.rooms[i];
        if (strcmp(r->name, "Lobby") == 0) {
            lobby_seen = true;
            assert_false(r->is_private);
            assert_true(r->logged);
            assert_non_null(strstr(r->uri, "ma-chan://example.test/"));
        }
        closed_seen |= strcmp(r->name, "Closedroom") == 0 && r->is_private;
        secret_seen |= strcmp(r->name, "Secretroom") == 0;
    }
    assert_true(lobby_seen);
    assert_true(closed_seen);   /* closed rooms are visible, only not enterable */
    assert_false(secret_seen);  /* secret rooms exist only for their members */
    pcc_event_free(ev);
    /* A member sees the secret room. */
    struct tl_client *alice = tl_client_new(node.sip_port, "alice@example.test");
    char uri[256];
    assert_non_null(tl_room_uri(alice, "Secretroom", uri, sizeof uri));
    /* Search by words in the name. */
    ev = tl_search(bob, "lob");
    assert_int_equal(ev->msg.n_rooms, 1);
    assert_string_equal(ev->msg.rooms[0].name, "Lobby");
    pcc_event_free(ev);
    tl_client_close(alice);
    tl_client_close(bob);
}

static void join_answersRosterWithSelfAndNotifiesOthersOnly(void **state)
{
    (void)state;
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    struct pcc_event *ev = tl_join(bob, lobby);
    assert_int_equal(ev->msg.resp_code, 200);
    assert_int_equal(ev->msg.n_rooms, 1);
    assert_string_equal(ev->msg.rooms[0].name, "Lobby");
    assert_string_equal(ev->msg.rooms[0].uri, lobby);
    bool self = false;
    for (size_t i = 0; i < ev->msg.n_users; i++)
        self |= strcmp(ev->msg.users[i].uri, "sip:bob@example.test") == 0;
    assert_true(self);
    pcc_event_free(ev);

    struct tl_client *carol = tl_client_new(node.sip_port, "carol@example.test");
    ev = tl_join(carol, lobby);
    assert_int_equal(ev->msg.resp_code, 200);
    /* Carol's roster lists bob and herself. */
    size_t listed = 0;
    for (size_t i = 0; i < ev->msg.n_users; i++)
        listed += !strcmp(ev->msg.users[i].uri, "sip:bob@example.test") ||
                  !strcmp(ev->msg.users[i].uri, "sip:carol@example.test");
    assert_int_equal(listed, 2);
    pcc_event_free(ev);
    ev = tl_wait_notice(bob, true, "sip:carol@example.test", 3000);
    assert_non_null(ev);
    assert_string_equal(ev->msg.presence.chan_uri, lobby);
    pcc_event_free(ev);
    assert_null(tl_wait_notice(carol, true, "sip:carol@example.test", 300));

    char envid[24];
    assert_true(pcc_part(carol->pcc, lobby, envid) > 0);
    ev = tl_wait_reply(carol, envid, 3000);
    assert_int_equal(ev->msg.resp_code, 200);
    pcc_event_free(ev);
    ev = tl_wait_notice(bob, false, "sip:carol@example.test", 3000);
    assert_non_null(ev);
    pcc_event_free(ev);
    tl_client_close(carol);
    tl_client_close(bob);
}

static void post_isCommittedEchoedAndDeliveredToEveryone(void **state)
{
    (void)state;
    struct tl_client *alice = tl_client_new(node.sip_port, "alice@example.test");
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    pcc_event_free(tl_join(alice, lobby));
    pcc_event_free(tl_join(bob, lobby));
    tl_drain(alice);
    tl_drain(bob);
    assert_int_equal(tl_post(alice, lobby, "fresh bread & <tea> \"today\""), 200);
    struct pcc_event *echo = tl_wait_chat(alice, lobby, "fresh bread & <tea> \"today\"", 3000);
    struct pcc_event *got = tl_wait_chat(bob, lobby, "fresh bread & <tea> \"today\"", 3000);
    assert_non_null(echo);
    assert_non_null(got);
    /* The author is the signed-in user (never what the client claimed) in lower case. */
    assert_string_equal(got->msg.chat.author, "sip:alice@example.test");
    assert_true(got->msg.chat.msg_id > 0);
    assert_int_equal(got->msg.chat.msg_id, echo->msg.chat.msg_id);
    assert_true(got->msg.chat.ts_us > 0);
    pcc_event_free(echo);
    pcc_event_free(got);
    tl_client_close(alice);
    tl_client_close(bob);
}

static void post_keepsOneOrderForEveryoneAndHistoryAgrees(void **state)
{
    (void)state;
    enum { N = 40 };
    struct tl_client *a = tl_client_new(node.sip_port, "alice@example.test");
    struct tl_client *b = tl_client_new(node.sip_port, "bob@example.test");
    struct tl_client *w = tl_client_new(node.sip_port, "carol@example.test");
    pcc_event_free(tl_join(a, lobby));
    pcc_event_free(tl_join(b, lobby));
    pcc_event_free(tl_join(w, lobby));
    /* What a client reads right after joining ends where its live delivery starts. */
    struct pcc_event *backfill = tl_history(w, lobby, 500, 0);
    size_t before_join = backfill->msg.rooms[0].n_msgs;
    uint64_t join_point = before_join ? backfill->msg.rooms[0].msgs[before_join - 1].msg_id : 0;
    pcc_event_free(backfill);
    tl_drain(a);
    tl_drain(b);
    tl_drain(w);
    /* Two writers post concurrently without waiting for each other. */
    uint32_t cs[2 * N];
    for (int i = 0; i < N; i++) {
        char t[64];
        snprintf(t, sizeof t, "order a%02d", i);
        cs[2 * i] = pcc_post(a->pcc, lobby, t);
        snprintf(t, sizeof t, "order b%02d", i);
        cs[2 * i + 1] = pcc_post(b->pcc, lobby, t);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(tl_wait_sip(a, cs[2 * i], 10000, NULL, 0), 200);
        assert_int_equal(tl_wait_sip(b, cs[2 * i + 1], 10000, NULL, 0), 200);
    }
    /* Every client sees the same sequence, ids increasing by one. */
    uint64_t ids[3][2 * N];
    char texts[3][2 * N][32];
    struct tl_client *cl[3] = {a, b, w};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 2 * N; i++) {
            struct pcc_event *ev = tl_wait_chat(cl[k], lobby, NULL, 5000);
            assert_non_null(ev);
            ids[k][i] = ev->msg.chat.msg_id;
            snprintf(texts[k][i], sizeof texts[k][i], "%s", ev->msg.chat.text);
            pcc_event_free(ev);
        }
    /* Live delivery continues exactly where the joiner's history ended. */
    assert_int_equal(ids[2][0], join_point + 1);
    for (int i = 0; i < 2 * N; i++) {
        if (i > 0)
            assert_int_equal(ids[0][i], ids[0][i - 1] + 1);
        assert_int_equal(ids[1][i], ids[0][i]);
        assert_int_equal(ids[2][i], ids[0][i]);
        assert_string_equal(texts[1][i], texts[0][i]);
        assert_string_equal(texts[2][i], texts[0][i]);
    }
    /* Each writer's own posts keep their order. */
    int next_a = 0, next_b = 0;
    for (int i = 0; i < 2 * N; i++) {
        char want[32];
        if (texts[0][i][6] == 'a') {
            snprintf(want, sizeof want, "order a%02d", next_a++);
        } else {
            snprintf(want, sizeof want, "order b%02d", next_b++);
        }
        assert_string_equal(texts[0][i], want);
    }
    /* History shows the same messages in the same order. */
    struct pcc_event *h = tl_history(w, lobby, 2 * N, 0);
    assert_int_equal(h->msg.resp_code, 200);
    assert_int_equal(h->msg.rooms[0].n_msgs, 2 * N);
    for (int i = 0; i < 2 * N; i++) {
        assert_int_equal(h->msg.rooms[0].msgs[i].msg_id, ids[0][i]);
        assert_string_equal(h->msg.rooms[0].msgs[i].text, texts[0][i]);
    }
    pcc_event_free(h);
    tl_client_close(a);
    tl_client_close(b);
    tl_client_close(w);
}

static void history_pagesBackwardsByMessageId(void **state)
{
    (void)state;
    char out[4096], uri[256];
    assert_int_equal(tl_pchatctl(&node, out, sizeof out, "room new Archive --category General"), 0);
    struct tl_client *a = tl_client_new(node.sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(a, "Archive", uri, sizeof uri));
    pcc_event_free(tl_join(a, uri));
    for (int i = 1; i <= 60; i++) {
        char t[32];
        snprintf(t, sizeof t, "page %d", i);
        pcc_post(a->pcc, uri, t);
    }
    tl_spin(50);
    struct pcc_event *last = NULL;
    for (int i = 0; i < 60; i++) {
        pcc_event_free(last);
        last = tl_wait_chat(a, uri, NULL, 5000);
        assert_non_null(last);
    }
    pcc_event_free(last);
    struct pcc_event *h = tl_history(a, uri, 25, 0);
    assert_int_equal(h->msg.rooms[0].n_msgs, 25);
    assert_string_equal(h->msg.rooms[0].msgs[0].text, "page 36");
    assert_string_equal(h->msg.rooms[0].msgs[24].text, "page 60");
    uint64_t oldest = h->msg.rooms[0].msgs[0].msg_id;
    pcc_event_free(h);
    h = tl_history(a, uri, 25, oldest);
    assert_int_equal(h->msg.rooms[0].n_msgs, 25);
    assert_string_equal(h->msg.rooms[0].msgs[0].text, "page 11");
    assert_string_equal(h->msg.rooms[0].msgs[24].text, "page 35");
    oldest = h->msg.rooms[0].msgs[0].msg_id;
    pcc_event_free(h);
    h = tl_history(a, uri, 25, oldest);
    assert_int_equal(h->msg.rooms[0].n_msgs, 10);
    assert_string_equal(h->msg.rooms[0].msgs[0].text, "page 1");
    pcc_event_free(h);
    tl_client_close(a);
}

static void closedRoom_admitsMembersOnly(void **state)
{
    (void)state;
    struct tl_client *alice = tl_client_new(node.sip_port, "alice@example.test");
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    char uri[256];
    assert_non_null(tl_room_uri(bob, "Closedroom", uri, sizeof uri));
    struct pcc_event *ev = tl_join(bob, uri);
    assert_int_equal(ev->msg.resp_code, 403);
    assert_non_null(strstr(ev->msg.resp_text, "ERR_PERMISSION"));
    pcc_event_free(ev);
    char reason[200];
    uint32_t cs = pcc_post(bob->pcc, uri, "let me in");
    assert_int_equal(tl_wait_sip(bob, cs, 3000, reason, sizeof reason), 403);
    ev = tl_history(bob, uri, 10, 0);
    assert_int_equal(ev->msg.resp_code, 403);
    pcc_event_free(ev);
    ev = tl_join(alice, uri);
    assert_int_equal(ev->msg.resp_code, 200);
    pcc_event_free(ev);
    assert_int_equal(tl_post(alice, uri, "members only"), 200);
    tl_client_close(alice);
    tl_client_close(bob);
}

static void secretRoom_looksMissingToNonMembers(void **state)
{
    (void)state;
    struct tl_client *alice = tl_client_new(node.sip_port, "alice@example.test");
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    char uri[256];
    assert_non_null(tl_room_uri(alice, "Secretroom", uri, sizeof uri));
    /* Bob learns nothing: the answer is exactly the one for a room that does not exist. */
    struct pcc_event *secret = tl_join(bob, uri);
    const char *missing_uri = "ma-chan://example.test/00000000-1111-2222-3333-444444444444";
    struct pcc_event *missing = tl_join(bob, missing_uri);
    assert_int_equal(secret->msg.resp_code, 404);
    assert_int_equal(missing->msg.resp_code, 404);
    assert_string_equal(secret->msg.resp_text, missing->msg.resp_text);
    pcc_event_free(secret);
    pcc_event_free(missing);
    /* Nor do a post, a history request, a bjoin, a search by its exact name or the rooms he
     * is associated with tell it apart from a missing one. */
    char reason[200], reason_missing[200];
    assert_int_equal(tl_wait_sip(bob, pcc_post(bob->pcc, uri, "hello?"), 3000, reason, sizeof reason), 404);
    assert_int_equal(tl_wait_sip(bob, pcc_post(bob->pcc, missing_uri, "hello?"), 3000,
                                 reason_missing, sizeof reason_missing), 404);
    assert_string_equal(reason, reason_missing);
    secret = tl_history(bob, uri, 10, 0);
    missing = tl_history(bob, missing_uri, 10, 0);
    assert_int_equal(secret->msg.resp_code, 404);
    assert_int_equal(secret->msg.resp_code, missing->msg.resp_code);
    assert_string_equal(secret->msg.resp_text, missing->msg.resp_text);
    pcc_event_free(secret);
    pcc_event_free(missing);
    const char *both[2] = {uri, missing_uri};
    char env[24];
    pcc_join(bob->pcc, both, 2, env);
    struct pcc_event *b = tl_wait_reply(bob, env, 5000);
    assert_int_equal(b->msg.resp_code, 200);
    assert_int_equal(b->msg.n_rooms, 0);
    assert_int_equal(b->msg.n_failed, 2);
    assert_string_equal(b->msg.failed[0].reason, b->msg.failed[1].reason);
    assert_string_equal(b->msg.failed[0].value, strrchr(uri, '/') + 1); /* only what he sent */
    pcc_event_free(b);
    secret = tl_search(bob, "Secretroom");
    assert_int_equal(secret->msg.n_rooms, 0);
    pcc_event_free(secret);
    pcc_simple(bob->pcc, XCCOS_OP_GETASSOCIATIONS, env);
    b = tl_wait_reply(bob, env, 5000);
    for (size_t i = 0; i < b->msg.n_rooms; i++)
        assert_string_not_equal(b->msg.rooms[i].uri, uri);
    pcc_event_free(b);
    tl_client_close(alice);
    tl_client_close(bob);
}

static void auditorium_letsOnlyPresentersPost(void **state)
{
    (void)state;
    struct tl_client *alice = tl_client_new(node.sip_port, "alice@example.test");
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    char uri[256], reason[200];
    assert_non_null(tl_room_uri(bob, "Stage", uri, sizeof uri));
    pcc_event_free(tl_join(alice, uri));
    pcc_event_free(tl_join(bob, uri));
    assert_int_equal(tl_post(alice, uri, "keynote"), 200);
    struct pcc_event *ev = tl_wait_chat(bob, uri, "keynote", 3000);
    assert_non_null(ev);
    pcc_event_free(ev);
    uint32_t cs = pcc_post(bob->pcc, uri, "heckle");
    assert_int_equal(tl_wait_sip(bob, cs, 3000, reason, sizeof reason), 403);
    assert_non_null(strstr(reason, "presenters"));
    tl_client_close(alice);
    tl_client_close(bob);
}

static void disabledRoom_refusesJoin(void **state)
{
    (void)state;
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    char uri[256];
    assert_non_null(tl_room_uri(bob, "Attic", uri, sizeof uri));
    struct pcc_event *ev = tl_join(bob, uri);
    assert_int_equal(ev->msg.resp_code, 403);
    assert_non_null(strstr(ev->msg.resp_text, "ERR_ROOM_DISABLED"));
    pcc_event_free(ev);
    tl_client_close(bob);
}

static void post_refusedUntilJoinedAndWhenTooLong(void **state)
{
    (void)state;
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    char reason[200];
    assert_int_equal(tl_wait_sip(bob, pcc_post(bob->pcc, lobby, "not joined"), 3000, reason, sizeof reason), 403);
    pcc_event_free(tl_join(bob, lobby));
    static char big[9000];
    memset(big, 'x', sizeof big - 1);
    assert_int_equal(tl_wait_sip(bob, pcc_post(bob->pcc, lobby, big), 3000, reason, sizeof reason), 413);
    assert_non_null(strstr(reason, "8000"));
    tl_client_close(bob);
}

static void bjoin_reportsFailedRoomsBesideJoinedOnes(void **state)
{
    (void)state;
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    const char *uris[2] = {lobby, "ma-chan://example.test/00000000-1111-2222-3333-555555555555"};
    char envid[24];
    assert_true(pcc_join(bob->pcc, uris, 2, envid) > 0);
    struct pcc_event *ev = tl_wait_reply(bob, envid, 5000);
    assert_int_equal(ev->msg.op, XCCOS_OP_BJOIN);
    assert_int_equal(ev->msg.resp_code, 200);
    assert_int_equal(ev->msg.n_rooms, 1);
    assert_string_equal(ev->msg.rooms[0].uri, lobby);
    assert_int_equal(ev->msg.n_failed, 1);
    assert_string_equal(ev->msg.failed[0].value, "00000000-1111-2222-3333-555555555555");
    pcc_event_free(ev);
    tl_client_close(bob);
}

static void invitation_isListedByGetinv(void **state)
{
    (void)state;
    char out[4096];
    assert_int_equal(tl_pchatctl(&node, out, sizeof out, "room invite Lobby --user carol@example.test"), 0);
    struct tl_client *carol = tl_client_new(node.sip_port, "carol@example.test");
    char envid[24];
    assert_true(pcc_simple(carol->pcc, XCCOS_OP_GETINV, envid) > 0);
    struct pcc_event *ev = tl_wait_reply(carol, envid, 3000);
    assert_int_equal(ev->msg.resp_code, 200);
    assert_int_equal(ev->msg.n_invites, 1);
    assert_string_equal(ev->msg.invites[0].chan_uri, lobby);
    assert_string_equal(ev->msg.invites[0].name, "Lobby");
    pcc_event_free(ev);
    tl_client_close(carol);
}

static void getserverinfo_announcesLimits(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "bob@example.test");
    char envid[24];
    assert_true(pcc_simple(c->pcc, XCCOS_OP_GETSERVERINFO, envid) > 0);
    struct pcc_event *ev = tl_wait_reply(c, envid, 3000);
    assert_int_equal(ev->msg.resp_code, 200);
    assert_int_equal(ev->msg.server.message_size_limit, 8000);
    assert_non_null(ev->msg.server.root_uri);
    pcc_event_free(ev);
    tl_client_close(c);
}

static void disconnect_partsUserFromRooms(void **state)
{
    (void)state;
    struct tl_client *bob = tl_client_new(node.sip_port, "bob@example.test");
    struct tl_client *carol = tl_client_new(node.sip_port, "carol@example.test");
    pcc_event_free(tl_join(bob, lobby));
    pcc_event_free(tl_join(carol, lobby));
    tl_drain(bob);
    tl_client_close(carol); /* connection dropped without BYE or part */
    struct pcc_event *ev = tl_wait_notice(bob, false, "sip:carol@example.test", 3000);
    assert_non_null(ev);
    pcc_event_free(ev);
    tl_client_close(bob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(signin_reachesReadyWithProvisionedChatUri),
        cmocka_unit_test(signin_refusesOtherDomain),
        cmocka_unit_test(search_listsVisibleRoomsWithTheirProperties),
        cmocka_unit_test(join_answersRosterWithSelfAndNotifiesOthersOnly),
        cmocka_unit_test(post_isCommittedEchoedAndDeliveredToEveryone),
        cmocka_unit_test(post_keepsOneOrderForEveryoneAndHistoryAgrees),
        cmocka_unit_test(history_pagesBackwardsByMessageId),
        cmocka_unit_test(closedRoom_admitsMembersOnly),
        cmocka_unit_test(secretRoom_looksMissingToNonMembers),
        cmocka_unit_test(auditorium_letsOnlyPresentersPost),
        cmocka_unit_test(disabledRoom_refusesJoin),
        cmocka_unit_test(post_refusedUntilJoinedAndWhenTooLong),
        cmocka_unit_test(bjoin_reportsFailedRoomsBesideJoinedOnes),
        cmocka_unit_test(invitation_isListedByGetinv),
        cmocka_unit_test(getserverinfo_announcesLimits),
        cmocka_unit_test(disconnect_partsUserFromRooms),
    };
    return cmocka_run_group_tests_name("chat_flow", tests, setup, teardown);
}
