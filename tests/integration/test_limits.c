/* Per-user limits of a node (issue 9 item 3): the post rate (token bucket) and the number
 * of chat sessions a user may hold, each refused with a precise SIP answer and counted. */
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
                 "[chat]\npost_rate = 5\npost_burst = 3\nmax_sessions_per_user = 2\n");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posting_tooFast_isRefusedThenAllowedAgain),
        cmocka_unit_test(sessions_perUser_areBounded),
    };
    return cmocka_run_group_tests_name("limits", tests, setup, teardown);
}
