/* Per-user and per-request limits of a node (issue 9 item 3): the post rate (token bucket),
 * the number of chat sessions a user may hold, message and story sizes as getserverinfo
 * announces them, rooms per bjoin and users per list of a room change; each refused with
 * a precise answer, counted (pchat_posts_refused_total{reason=…}, …) and, for sizes,
 * logged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/tl.h"

static struct tl_node node;

static int setup(void **state)
{
    (void)state;
    tl_node_init(&node, tl_port_base() + 7,
                 "[chat]\npost_rate = 5\npost_burst = 3\nmax_sessions_per_user = 2\n"
                 "message_max_chars = 20\nstory_max_chars = 50\nmax_rooms_per_request = 3\n"
                 "max_members_per_request = 3\n");
    tl_node_start(&node);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tl_node_stop(&node);
    tl_node_cleanup(&node);
    return 0;
}

static long long stat_of(const char *name)
{
    char out[4096];
    assert_int_equal(tl_pchatctl(&node, out, sizeof out, "--json stats"), 0);
    json_t *j = json_loads(out, 0, NULL);
    long long v = json_integer_value(json_object_get(json_object_get(j, "stats"), name));
    json_decref(j);
    return v;
}

/* pchatctl stats says where a node's memory is and how long its loop's passes take. */
static void stats_showMemoryAndLoopPasses(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(tl_pchatctl(&node, out, sizeof out, "--json stats"), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    json_t *st = json_object_get(j, "stats");
    json_t *mem = json_object_get(st, "memory"), *loop = json_object_get(st, "loop");
    assert_true(json_integer_value(json_object_get(mem, "rss")) > 0);
    assert_true(json_integer_value(json_object_get(mem, "allocated")) > 0);
    long long passes = json_integer_value(json_object_get(loop, "passes"));
    assert_true(passes > 0);
    assert_true(json_real_value(json_object_get(loop, "busy_s")) > 0);
    json_t *over = json_object_get(loop, "passes_over");
    assert_int_equal(json_object_size(over), 8);
    long long over_1ms = json_integer_value(json_object_get(over, "1ms"));
    long long over_250ms = json_integer_value(json_object_get(over, "250ms"));
    assert_true(over_1ms <= passes && over_250ms <= over_1ms);
    json_decref(j);
}

static void posting_tooFast_isRefusedThenAllowedAgain(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "alice@example.test");
    char lobby[256];
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    pcc_event_free(tl_join(c, lobby));
    int ok = 0, refused = 0;
    char reason[200] = "";
    for (int i = 0; i < 10; i++) {
        char text[32];
        snprintf(text, sizeof text, "fast %d", i);
        uint32_t cseq = pcc_post(c->pcc, lobby, text);
        char why[200];
        int status = tl_wait_sip(c, cseq, 5000, why, sizeof why);
        if (status == 200)
            ok++;
        else if (status == 503) {
            refused++;
            snprintf(reason, sizeof reason, "%s", why);
        }
    }
    fprintf(stderr, "  10 posts at once: %d accepted, %d refused (%s)\n", ok, refused, reason);
    assert_true(ok >= 3 && refused >= 1);
    assert_non_null(strstr(reason, "Posting too fast"));
    assert_true(stat_of("posts_rate_limited") >= refused);
    assert_true(tl_metric(&node, "pchat_posts_refused_total{reason=\"rate_limit\"}") >= refused);
    usleep(1000 * 1000); /* the bucket refills at 5 per second */
    assert_int_equal(tl_post(c, lobby, "after a pause"), 200);
    tl_client_close(c);
}

static void sessions_perUser_areBounded(void **state)
{
    (void)state;
    struct tl_client *a = tl_client_new(node.sip_port, "bob@example.test");
    struct tl_client *b = tl_client_new(node.sip_port, "bob@example.test");
    char why[200];
    struct tl_client *c = tl_client_try(node.sip_port, "bob@example.test", why, sizeof why);
    assert_null(c);
    assert_non_null(strstr(why, "403"));
    assert_true(stat_of("sessions_refused") >= 1);
    /* Another user is not affected, and a freed slot can be used again. */
    struct tl_client *d = tl_client_new(node.sip_port, "carol@example.test");
    tl_client_close(a);
    tl_spin(300);
    c = tl_client_new(node.sip_port, "bob@example.test");
    tl_client_close(b);
    tl_client_close(c);
    tl_client_close(d);
}

/* The post's SIP verdict and its reason text. */
static int verdict(struct tl_client *c, uint32_t cseq, char *why, size_t cap)
{
    return tl_wait_sip(c, cseq, 5000, why, cap);
}

static void messagesAndStories_areBoundedAsAnnounced(void **state)
{
    (void)state;
    usleep(1000 * 1000); /* a full post_rate bucket after the previous test */
    struct tl_client *c = tl_client_new(node.sip_port, "carol@example.test");
    char lobby[256], why[200], env[24];
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    /* Posting before joining: refused, and counted under its own reason. */
    assert_int_equal(verdict(c, pcc_post(c->pcc, lobby, "too early"), why, sizeof why), 403);
    assert_true(tl_metric(&node, "pchat_posts_refused_total{reason=\"not_joined\"}") >= 1);
    pcc_event_free(tl_join(c, lobby));
    /* What getserverinfo announces is what is enforced. */
    pcc_simple(c->pcc, XCCOS_OP_GETSERVERINFO, env);
    struct pcc_event *info = tl_wait_reply(c, env, 5000);
    assert_int_equal(info->msg.server.message_size_limit, 20);
    assert_int_equal(info->msg.server.story_size_limit, 50);
    pcc_event_free(info);
    long long before = tl_metric(&node, "pchat_posts_refused_total{reason=\"too_large\"}");
    assert_int_equal(verdict(c, pcc_post(c->pcc, lobby, "twenty characters ok"), why, sizeof why),
                     200);
    assert_int_equal(verdict(c, pcc_post(c->pcc, lobby, "twenty-one characters"), why, sizeof why),
                     413);
    assert_string_equal(why, "Message too long: 21 characters, the limit is 20");
    /* A story may be longer than a message, up to its own limit (characters, not bytes). */
    const char *story = "A story of forty characters: \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                        "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
    int st = verdict(c, pcc_post_story(c->pcc, lobby, story), why, sizeof why);
    fprintf(stderr, "  story of 40 characters (story_max_chars = 50): %d %s\n", st, why);
    assert_int_equal(st, 200);
    char long_story[64];
    memset(long_story, 's', 51);
    long_story[51] = '\0';
    assert_int_equal(verdict(c, pcc_post_story(c->pcc, lobby, long_story), why, sizeof why), 413);
    assert_string_equal(why, "Story too long: 51 characters, the limit is 50");
    fprintf(stderr, "  story of 51 characters (story_max_chars = 50): 413 \"%s\"\n", why);
    assert_int_equal(tl_metric(&node, "pchat_posts_refused_total{reason=\"too_large\"}"),
                     before + 2);
    assert_true(tl_node_log_contains(&node, "Story too long: 51 characters, the limit is 50 "
                                            "([chat] story_max_chars)"));
    tl_client_close(c);
}

static void bjoin_overTheRoomLimit_isRefusedWhole(void **state)
{
    (void)state;
    struct tl_client *c = tl_client_new(node.sip_port, "carol@example.test");
    char lobby[256], env[24];
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    const char *uris[4] = {lobby, lobby, lobby, lobby};
    long long before = tl_metric(&node, "pchat_requests_too_long_total");
    pcc_join(c->pcc, uris, 4, env);
    struct pcc_event *r = tl_wait_reply(c, env, 5000);
    fprintf(stderr, "  bjoin of 4 rooms (max_rooms_per_request = 3): %d %s\n", r->msg.resp_code,
            r->msg.resp_text);
    assert_int_equal(r->msg.resp_code, 413);
    assert_non_null(strstr(r->msg.resp_text, "ERR_TOO_MANY_ROOMS: this bjoin names 4 rooms; one "
                                             "request may name at most 3"));
    assert_int_equal(r->msg.n_rooms, 0); /* nothing joined, nothing cut short */
    pcc_event_free(r);
    assert_int_equal(tl_metric(&node, "pchat_requests_too_long_total"), before + 1);
    /* At the limit it goes through. */
    pcc_join(c->pcc, uris, 3, env);
    r = tl_wait_reply(c, env, 5000);
    assert_int_equal(r->msg.resp_code, 200);
    pcc_event_free(r);
    tl_client_close(c);
}

static void roomMembers_overTheLimit_areRefusedWhole(void **state)
{
    (void)state;
    char out[4096];
    int rc = tl_pchatctl(&node, out, sizeof out,
                         "room new Crowded --category General --privacy closed --members "
                         "a@example.test,b@example.test,c@example.test,d@example.test");
    fprintf(stderr, "  room new with 4 members (max_members_per_request = 3): %s", out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "field 'members' names more than 3 users"));
    assert_non_null(strstr(out, "max_members_per_request"));
    assert_true(tl_metric(&node, "pchat_requests_too_long_total") >= 1);
    /* The same list within the limit, or as a group, is fine. */
    assert_int_equal(tl_pchatctl(&node, out, sizeof out,
                                 "room new Crowded --category General --privacy closed "
                                 "--members a@example.test,b@example.test,*@example.test"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_showMemoryAndLoopPasses),
        cmocka_unit_test(posting_tooFast_isRefusedThenAllowedAgain),
        cmocka_unit_test(sessions_perUser_areBounded),
        cmocka_unit_test(messagesAndStories_areBoundedAsAnnounced),
        cmocka_unit_test(bjoin_overTheRoomLimit_isRefusedWhole),
        cmocka_unit_test(roomMembers_overTheLimit_areRefusedWhole),
    };
    return cmocka_run_group_tests_name("limits", tests, setup, teardown);
}
