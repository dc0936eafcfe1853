/* Kill -9 during continuous posting, restart, and prove with tests/checker that every post
 * whose success reached its sender is in history exactly once, in one order that every
 * client saw (DESIGN.md §3 guarantees 1 and 2 on a single node). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "tests/lib/tl.h"
#include "tests/lib/tl_load.h"

#define POSTERS 4
#define ROUNDS 3

static void killDuringPosting_losesNoAcknowledgedPost(void **state)
{
    (void)state;
    struct tl_node node;
    tl_node_init(&node, tl_port_base() + 4, NULL);
    tl_node_start(&node);
    struct tl_client *probe = tl_client_new(node.sip_port, "alice@example.test");
    char lobby[256];
    assert_non_null(tl_room_uri(probe, "Lobby", lobby, sizeof lobby));
    tl_client_close(probe);

    static const char *users[POSTERS] = {"alice@example.test", "bob@example.test",
                                         "carol@example.test", "alice@example.test"};
    struct tl_poster *p[POSTERS];
    char logs[POSTERS + 1][320];
    for (int i = 0; i < POSTERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i + 1);
        snprintf(logs[i], sizeof logs[i], "%s/%s.log", node.dir, name);
        p[i] = tl_poster_new(name, users[i], &node.sip_port, 1, lobby, 8, logs[i]);
    }
    for (int round = 1; round <= ROUNDS; round++) {
        tl_posters_run(p, POSTERS, 1200, true);
        tl_posters_fire(p, POSTERS);
        tl_node_kill(&node); /* posts are in flight: some are mid-commit */
        tl_posters_run(p, POSTERS, 200, false);
        tl_node_start(&node);
        struct tl_poster_stats st;
        tl_poster_stats(p[0], &st);
        fprintf(stderr, "  round %d: killed and restarted; p1 sent %llu, acked %llu, unknown %llu\n",
                round, (unsigned long long)st.sent, (unsigned long long)st.acked,
                (unsigned long long)st.unknown);
    }
    tl_posters_run(p, POSTERS, 800, true); /* posting works after the last restart */
    assert_true(tl_posters_settle(p, POSTERS, 10000));
    uint64_t acked = 0;
    for (int i = 0; i < POSTERS; i++) {
        struct tl_poster_stats st;
        tl_poster_stats(p[i], &st);
        acked += st.acked;
        assert_true(st.reconnects >= ROUNDS);
        tl_poster_free(p[i]);
    }
    assert_true(acked > 100);

    snprintf(logs[POSTERS], sizeof logs[POSTERS], "%s/history.log", node.dir);
    size_t stored = tl_dump_history(node.sip_port, "n1", lobby, logs[POSTERS]);
    fprintf(stderr, "  %llu posts acknowledged, %zu stored\n", (unsigned long long)acked, stored);
    char args[2048] = "";
    for (int i = 0; i <= POSTERS; i++) {
        strcat(args, " ");
        strcat(args, logs[i]);
    }
    int rc = tl_check(args);
    if (rc != 0)
        tl_node_dump_log(&node);
    assert_int_equal(rc, 0);
    tl_node_stop(&node);
    tl_node_cleanup(&node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killDuringPosting_losesNoAcknowledgedPost),
    };
    return cmocka_run_group_tests_name("durability", tests, NULL, NULL);
}
