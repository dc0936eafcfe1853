/* A 3-node pool on loopback: any node serves any room, and SIGKILL of a room's owner or of
 * the metadata leader loses no acknowledged post, duplicates none and keeps one order for
 * every client and in every node's history (DESIGN.md §3 guarantees 1 and 2), proven by
 * tests/checker over the clients' logs. Prints the measured outage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include <ftw.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/pc_time.h"
#include "tests/lib/tl.h"
#include "tests/lib/tl_load.h"

#define NODES 3
#define PER_NODE 2
#define POSTERS (NODES * PER_NODE)
#define ELECTION_MS 1000

static const char *pool_conf = "[cluster]\nshards = 4\nelection_timeout_ms = 1000\n"
                               "heartbeat_ms = 100\nsegment_size = 256k\nsnapshot_entries = 256\n";

/* Reads one integer field of a pchatctl JSON answer ("owner" of a room, …). */
static long long json_int_at(const char *text, const char *path1, const char *path2, int index)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    json_t *v = json_object_get(j, path1);
    if (index >= 0)
        v = json_array_get(v, (size_t)index);
    if (path2 != NULL)
        v = json_object_get(v, path2);
    long long r = json_is_integer(v) ? json_integer_value(v) : -1;
    json_decref(j);
    return r;
}

static int room_owner(struct tl_node *n, const char *room)
{
    char out[8192], args[128];
    snprintf(args, sizeof args, "--json room get %s", room);
    assert_int_equal(tl_pchatctl(n, out, sizeof out, args), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    long long owner = json_integer_value(json_object_get(json_object_get(j, "room"), "owner"));
    json_decref(j);
    return (int)owner;
}

static int meta_leader(struct tl_node *n)
{
    char out[16384];
    assert_int_equal(tl_pchatctl(n, out, sizeof out, "--json pool status"), 0);
    return (int)json_int_at(out, "groups", "leader", 0);
}

/* Waits until node n (index) knows an owner for the room; returns it (1-based). */
static int wait_owner(struct tl_node *n, const char *room, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    int owner = 0;
    while ((owner = room_owner(n, room)) == 0 && pc_mono_ms() < deadline)
        tl_spin(50);
    assert_true(owner >= 1 && owner <= NODES);
    return owner;
}

/* Hands Lobby's shard to node target (1-based) and waits until every node sees it there. */
static void move_lobby(struct tl_node *nodes, int target, void (*spin)(void *), void *arg)
{
    char out[8192], args[128];
    assert_int_equal(tl_pchatctl(&nodes[0], out, sizeof out, "--json room get Lobby"), 0);
    int shard = (int)json_int_at(out, "room", "shard", -1);
    uint64_t deadline = pc_mono_ms() + 10000;
    while (room_owner(&nodes[0], "Lobby") != target && pc_mono_ms() < deadline) {
        int owner = wait_owner(&nodes[0], "Lobby", 5000);
        snprintf(args, sizeof args, "shard transfer %d --node %d", shard + 1, target);
        tl_pchatctl(&nodes[owner - 1], out, sizeof out, args); /* may race an election: retried */
        for (int i = 0; i < 10 && room_owner(&nodes[0], "Lobby") != target; i++)
            spin(arg);
    }
    assert_int_equal(room_owner(&nodes[0], "Lobby"), target);
}

static uint64_t tree_bytes;

static int add_size(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        tree_bytes += (uint64_t)sb->st_size;
    return 0;
}

/* Bytes under a node's raft directories. */
static uint64_t raft_bytes(const struct tl_node *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/raft", n->dir);
    tree_bytes = 0;
    nftw(path, add_size, 16, FTW_PHYS);
    return tree_bytes;
}

struct pool_run {
    struct tl_node nodes[NODES];
    struct tl_poster *p[POSTERS];
    char logs[POSTERS + NODES][320];
    char lobby[256];
};

static void spin_posters(void *arg)
{
    struct pool_run *r = arg;
    tl_posters_run(r->p, POSTERS, 50, true);
}

static void pool_up(struct pool_run *r, int first_port)
{
    tl_pool_init(r->nodes, NODES, first_port, pool_conf);
    tl_pool_start(r->nodes, NODES);
    struct tl_client *probe = tl_client_new(r->nodes[1].sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(probe, "Lobby", r->lobby, sizeof r->lobby));
    tl_client_close(probe);
}

/* PER_NODE posters per node, each reconnecting to the next nodes when its own dies. */
static void posters_up(struct pool_run *r)
{
    static const char *users[] = {"alice@example.test", "bob@example.test", "carol@example.test"};
    for (int i = 0; i < POSTERS; i++) {
        int ports[NODES];
        for (int k = 0; k < NODES; k++)
            ports[k] = r->nodes[(i / PER_NODE + k) % NODES].sip_port;
        char name[16];
        snprintf(name, sizeof name, "p%d", i + 1);
        snprintf(r->logs[i], sizeof r->logs[i], "%s/%s.log", r->nodes[0].dir, name);
        r->p[i] = tl_poster_new(name, users[i % 3], ports, NODES, r->lobby, 8, r->logs[i]);
    }
}

/* Settles the posters, dumps the history through every running node of the pool (and
 * `extra`, when given) and runs the checker over it all. */
static void check_all_with(struct pool_run *r, struct tl_node *extra)
{
    assert_true(tl_posters_settle(r->p, POSTERS, 15000));
    tl_posters_run(r->p, POSTERS, 500, false); /* the last deliveries */
    uint64_t acked = 0, unknown = 0;
    for (int i = 0; i < POSTERS; i++) {
        struct tl_poster_stats st;
        tl_poster_stats(r->p[i], &st);
        acked += st.acked;
        unknown += st.unknown;
        tl_poster_free(r->p[i]);
    }
    struct tl_node *nodes[NODES + 1];
    int n = 0;
    for (int k = 0; k < NODES; k++)
        if (r->nodes[k].pid != 0)
            nodes[n++] = &r->nodes[k];
    if (extra != NULL)
        nodes[n++] = extra;
    char args[4096] = "";
    for (int i = 0; i < POSTERS; i++) {
        strcat(args, " ");
        strcat(args, r->logs[i]);
    }
    fprintf(stderr, "  %llu acknowledged, %llu unknown; history:", (unsigned long long)acked,
            (unsigned long long)unknown);
    for (int k = 0; k < n; k++) {
        char label[16], path[320];
        snprintf(label, sizeof label, "t%d", nodes[k]->sip_port);
        snprintf(path, sizeof path, "%s/history-%s.log", r->nodes[0].dir, label);
        size_t stored = tl_dump_history(nodes[k]->sip_port, label, r->lobby, path);
        fprintf(stderr, " %s %zu", label, stored);
        strcat(args, " ");
        strcat(args, path);
    }
    fprintf(stderr, "\n");
    assert_true(acked > 100);
    int rc = tl_check(args);
    if (rc != 0)
        for (int k = 0; k < n; k++)
            tl_node_dump_log(nodes[k]);
    assert_int_equal(rc, 0);
}

static void check_all(struct pool_run *r)
{
    check_all_with(r, NULL);
}

static void pool_down(struct pool_run *r)
{
    for (int k = 0; k < NODES; k++)
        tl_node_stop(&r->nodes[k]);
    for (int k = 0; k < NODES; k++)
        tl_node_cleanup(&r->nodes[k]);
}

static void anyNode_servesAnyRoom_withOneOrder(void **state)
{
    (void)state;
    static struct pool_run r;
    memset(&r, 0, sizeof r);
    pool_up(&r, tl_port_base() + 10);

    /* Read-your-writes: a room created through node 2 is there for node 2's next command... */
    char out[4096];
    assert_int_equal(tl_pchatctl(&r.nodes[1], out, sizeof out,
                                 "room new Fresh --category General --privacy open"), 0);
    struct tl_client *c2 = tl_client_new(r.nodes[1].sip_port, "bob@example.test");
    char fresh[256];
    assert_non_null(tl_room_uri(c2, "Fresh", fresh, sizeof fresh));

    /* ...and for a session that opens on node 3 right after (its metadata is synced with
     * the leader before the session's first command); then a post through node 3 reaches
     * a member on node 2, whoever owns the room. */
    struct tl_client *c3 = tl_client_new(r.nodes[2].sip_port, "carol@example.test");
    char seen[256];
    assert_non_null(tl_room_uri(c3, "Fresh", seen, sizeof seen));
    assert_string_equal(seen, fresh);
    pcc_event_free(tl_join(c2, fresh));
    pcc_event_free(tl_join(c3, fresh));
    assert_int_equal(tl_post(c3, fresh, "across the pool"), 200);
    struct pcc_event *ev = tl_wait_chat(c2, fresh, "across the pool", 5000);
    assert_non_null(ev);
    pcc_event_free(ev);
    tl_client_close(c2);
    tl_client_close(c3);

    posters_up(&r);
    tl_posters_run(r.p, POSTERS, 1000, true);

    /* An operator moves Lobby's shard to another node while the posters go on. */
    int owner = wait_owner(&r.nodes[0], "Lobby", 5000);
    int target = owner % NODES + 1;
    move_lobby(r.nodes, target, spin_posters, &r);
    fprintf(stderr, "  moved Lobby's shard from node %d to node %d under load\n", owner, target);
    tl_posters_run(r.p, POSTERS, 1000, true);
    check_all(&r);
    pool_down(&r);
}

/* Kills node `victim` (1-based) while every poster keeps posting and measures how long
 * the posters on the surviving nodes went without an acknowledgement. */
static void kill_and_measure(struct pool_run *r, int victim, const char *what)
{
    tl_posters_run(r->p, POSTERS, 1500, true);
    uint64_t before[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        struct tl_poster_stats st;
        tl_poster_stats(r->p[i], &st);
        before[i] = st.acked;
    }
    tl_posters_fire(r->p, POSTERS);
    uint64_t t0 = pc_mono_ms();
    tl_node_kill(&r->nodes[victim - 1]);
    /* Posting has resumed when every poster of a surviving node got a new acknowledgement. */
    uint64_t resumed = 0;
    while (resumed == 0 && pc_mono_ms() - t0 < 20000) {
        tl_posters_run(r->p, POSTERS, 20, true);
        bool all = true;
        for (int i = 0; i < POSTERS; i++) {
            if (i / PER_NODE == victim - 1)
                continue;
            struct tl_poster_stats st;
            tl_poster_stats(r->p[i], &st);
            all = all && st.acked > before[i] && st.last_ack_ms > t0;
        }
        if (all)
            resumed = pc_mono_ms() - t0;
    }
    fprintf(stderr, "  killed %s (node %d): posting resumed on the other nodes after %llu ms "
            "(election timeout %d ms)\n", what, victim, (unsigned long long)resumed, ELECTION_MS);
    assert_true(resumed > 0);
    /* Typically 1.5-2 s; an election that needs a second round (a pre-vote refused by a
     * node that heard the dead leader a moment ago, or a split vote) takes up to ~4.5 s. */
    assert_true(resumed < 6 * ELECTION_MS);
    tl_posters_run(r->p, POSTERS, 1500, true);
    /* The killed node restarts, catches up and serves again. */
    tl_node_spawn(&r->nodes[victim - 1]);
    tl_node_wait_ready(&r->nodes[victim - 1], 20000);
    tl_posters_run(r->p, POSTERS, 1500, true);
}

static void killOwner_thenMetaLeader_losesNothing(void **state)
{
    (void)state;
    static struct pool_run r;
    memset(&r, 0, sizeof r);
    pool_up(&r, tl_port_base() + 20);
    posters_up(&r);

    int owner = wait_owner(&r.nodes[0], "Lobby", 5000);
    kill_and_measure(&r, owner, "the owner of Lobby");

    int alive = owner % NODES; /* index of a node that is up */
    int leader = 0;
    uint64_t deadline = pc_mono_ms() + 5000;
    while ((leader = meta_leader(&r.nodes[alive])) == 0 && pc_mono_ms() < deadline)
        tl_posters_run(r.p, POSTERS, 50, true);
    assert_true(leader >= 1 && leader <= NODES);
    kill_and_measure(&r, leader, "the metadata leader");

    /* The restarted node caught up by snapshot and back-filled the history the snapshot
     * left out; make it the owner, so that every history below is read from its store. */
    if (tl_node_log_contains_since(&r.nodes[leader - 1], "to back-fill")) {
        uint64_t deadline2 = pc_mono_ms() + 10000;
        while (!tl_node_log_contains_since(&r.nodes[leader - 1], "back-filled") &&
               pc_mono_ms() < deadline2)
            tl_posters_run(r.p, POSTERS, 50, true);
        assert_true(tl_node_log_contains_since(&r.nodes[leader - 1], "back-filled"));
        fprintf(stderr, "  node %d back-filled history after a snapshot install\n", leader);
    }
    move_lobby(r.nodes, leader, spin_posters, &r);
    fprintf(stderr, "  Lobby now owned by the restarted node %d\n", leader);

    check_all(&r);
    /* Log compaction: tens of thousands of posts leave the raft logs small (snapshots every
     * 256 entries, 5 groups, 256 KiB segments). */
    for (int k = 0; k < NODES; k++) {
        uint64_t bytes = raft_bytes(&r.nodes[k]);
        fprintf(stderr, "  node %d: raft directories hold %llu KiB\n", k + 1,
                (unsigned long long)(bytes / 1024));
        assert_true(bytes < 16u * 1024 * 1024);
    }
    pool_down(&r);
}

/* Waits until node n sees every raft group with `voters` voters; returns the time taken. */
static uint64_t wait_voters(struct pool_run *r, struct tl_node *n, int voters, unsigned ms)
{
    uint64_t t0 = pc_mono_ms();
    for (;;) {
        char out[32768];
        assert_int_equal(tl_pchatctl(n, out, sizeof out, "--json pool status"), 0);
        json_t *j = json_loads(out, 0, NULL);
        json_t *groups = json_object_get(j, "groups");
        bool all = json_array_size(groups) > 0;
        for (size_t i = 0; i < json_array_size(groups); i++)
            all = all && json_integer_value(json_object_get(json_array_get(groups, i), "voters")) == voters;
        json_decref(j);
        if (all)
            return pc_mono_ms() - t0;
        if (pc_mono_ms() - t0 > ms)
            fail_msg("the raft groups did not reach %d voters within %u ms", voters, ms);
        tl_posters_run(r->p, POSTERS, 100, true);
    }
}

/* The same on every running node of the pool and on extra: a configuration that only a
 * group's leader has appended is lost with it, so before a node is killed the survivors
 * must hold the new one themselves. Returns the time taken. */
static uint64_t wait_voters_everywhere(struct pool_run *r, struct tl_node *extra, int voters,
                                       unsigned ms)
{
    uint64_t t0 = pc_mono_ms();
    for (int k = 0; k < NODES; k++)
        if (r->nodes[k].pid != 0)
            wait_voters(r, &r->nodes[k], voters, ms);
    if (extra != NULL)
        wait_voters(r, extra, voters, ms);
    return pc_mono_ms() - t0;
}

/* Membership online: a fourth node joins under load and becomes a voter of every group;
 * then node 1 dies and is removed, and node 2 dies too: the pool of {3, 4} is a majority
 * of the remaining three voters only because node 4 really votes. */
static void addNode_thenRemoveOne_keepsServing(void **state)
{
    (void)state;
    static struct pool_run r;
    memset(&r, 0, sizeof r);
    int base = tl_port_base() + 30;
    pool_up(&r, base);
    posters_up(&r);

    struct tl_node n4;
    char conf[1024], peers[512] = "";
    for (int i = 0; i < 4; i++) {
        char item[64];
        snprintf(item, sizeof item, "%s%d=127.0.0.1:%d", i ? "," : "", i + 1,
                 base + i + TL_CLUSTER_PORT_OFFSET);
        strcat(peers, item);
    }
    snprintf(conf, sizeof conf, "[node]\nid = 4\nname = n4\n[cluster]\npeers = %s\njoin = yes\n%s",
             peers, pool_conf);
    tl_node_init(&n4, base + 3, conf);
    tl_node_spawn(&n4);
    tl_posters_run(r.p, POSTERS, 500, true);

    char out[4096], args[128];
    snprintf(args, sizeof args, "node add 4 --address 127.0.0.1:%d", base + 3 + TL_CLUSTER_PORT_OFFSET);
    assert_int_equal(tl_pchatctl(&r.nodes[0], out, sizeof out, args), 0);
    uint64_t t0 = pc_mono_ms();
    wait_voters(&r, &r.nodes[0], 4, 30000);
    tl_node_wait_ready(&n4, 10000);
    wait_voters_everywhere(&r, &n4, 4, 10000);
    uint64_t took = pc_mono_ms() - t0;
    fprintf(stderr, "  node 4 joined: a voter of every group after %llu ms\n", (unsigned long long)took);

    tl_node_kill(&r.nodes[0]);
    assert_int_equal(tl_pchatctl(&r.nodes[1], out, sizeof out, "node remove 1"), 0);
    took = wait_voters_everywhere(&r, &n4, 3, 30000);
    fprintf(stderr, "  node 1 killed and removed: 3 voters everywhere after %llu ms\n",
            (unsigned long long)took);
    tl_node_kill(&r.nodes[1]);
    struct tl_poster_stats before, after;
    tl_poster_stats(r.p[4], &before); /* a poster of node 3 */
    tl_posters_run(r.p, POSTERS, 4000, true);
    tl_poster_stats(r.p[4], &after);
    fprintf(stderr, "  node 2 killed too: nodes 3 and 4 acknowledged %llu more posts of one poster\n",
            (unsigned long long)(after.acked - before.acked));
    assert_true(after.acked > before.acked + 10);

    check_all_with(&r, &n4);
    tl_node_stop(&n4);
    tl_node_cleanup(&n4);
    pool_down(&r);
}

/* A leadership transfer stops the shard's rooms until the target has taken over or raft
 * gave up after an election timeout, so no handover may go to a node that cannot take over
 * at once. Node `v` (not Lobby's owner) is stopped with SIGSTOP: its links still look up,
 * but it is silent; asked to hand Lobby's shard to it, the owner refuses at once and the
 * room goes on posting without a pause. Once v runs again and has caught up, the move
 * works. (Before: "transfer started", and Lobby stopped for the election timeout.) */
static void transferToStoppedNode_isRefused_roomKeepsPosting(void **state)
{
    (void)state;
    static struct pool_run r;
    memset(&r, 0, sizeof r);
    pool_up(&r, tl_port_base() + 40);
    posters_up(&r);
    tl_posters_run(r.p, POSTERS, 1000, true);
    int owner = wait_owner(&r.nodes[0], "Lobby", 5000), v = owner % NODES + 1;
    char out[8192], args[128];
    assert_int_equal(tl_pchatctl(&r.nodes[0], out, sizeof out, "--json room get Lobby"), 0);
    int shard = (int)json_int_at(out, "room", "shard", -1);
    assert_true(shard >= 0);

    assert_int_equal(kill(r.nodes[v - 1].pid, SIGSTOP), 0);
    tl_posters_run(r.p, POSTERS, 1500, true); /* silent for longer than POOL_SILENT_MS */
    snprintf(args, sizeof args, "shard transfer %d --node %d", shard + 1, v);
    int rc = tl_pchatctl(&r.nodes[owner - 1], out, sizeof out, args);
    fprintf(stderr, "  shard transfer to the stopped node %d: %s", v, out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "cannot take shard group"));
    assert_non_null(strstr(out, "not reachable"));
    /* Lobby keeps posting: every poster of a running node had an acknowledgement within
     * the last 800 ms, all along (a transfer would stop them for the election timeout, 1 s). */
    for (int round = 0; round < 6; round++) {
        tl_posters_run(r.p, POSTERS, 250, true);
        for (int i = 0; i < POSTERS; i++) {
            struct tl_poster_stats st;
            tl_poster_stats(r.p[i], &st);
            assert_true(i / PER_NODE == v - 1 || pc_mono_ms() - st.last_ack_ms < 800);
        }
    }
    assert_int_equal(kill(r.nodes[v - 1].pid, SIGCONT), 0);
    move_lobby(r.nodes, v, spin_posters, &r);
    fprintf(stderr, "  node %d running again: Lobby moved to it\n", v);
    tl_posters_run(r.p, POSTERS, 1000, true);
    check_all(&r);
    pool_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anyNode_servesAnyRoom_withOneOrder),
        cmocka_unit_test(killOwner_thenMetaLeader_losesNothing),
        cmocka_unit_test(addNode_thenRemoveOne_keepsServing),
        cmocka_unit_test(transferToStoppedNode_isRefused_roomKeepsPosting),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
