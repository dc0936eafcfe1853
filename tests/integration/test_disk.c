/* Disk trouble (issue 9 item 4a): a node whose data disk fills up. The node's data_dir is a
 * small filesystem of its own (a 64 MiB loop-mounted ext4, else a 64 MiB tmpfs; the test
 * is skipped, saying why, when neither can be mounted: it needs root). Posts go on until
 * the node refuses them; it must say "disk full" to the poster (SIP 503, which always has
 * Retry-After), in its log and in /metrics, and stay up; once a filler file is deleted it
 * must take posts again within seconds without a restart; every acknowledged post must be
 * in history, contiguous, before and after a restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/lib/tl.h"

#define MAX_POSTS 6000
#define MIN_FREE_MB 8

struct disk_fixture {
    int min_free_mb; /* [node] min_free_space; 0 = the guard off: raft and RocksDB hit ENOSPC */
    struct tl_node node;       /* the node whose data_dir is the small filesystem */
    struct tl_node others[2];  /* the pool test's other two nodes */
    bool pool;
    char mnt[300];
    char how[64];
    bool mounted;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* Mounts a 64 MiB filesystem on dir: ext4 on a loop device, else tmpfs. */
static bool mount_small(struct disk_fixture *f, const char *dir, char *why, size_t cap)
{
    mkdir(dir, 0750);
    if (geteuid() != 0) {
        snprintf(why, cap, "mounting a small filesystem needs root (euid %u)", (unsigned)geteuid());
        return false;
    }
    if (sh("truncate -s 64M %s/../disk.img && mkfs.ext4 -q -F %s/../disk.img >/dev/null 2>&1 && "
           "mount -o loop %s/../disk.img %s 2>/dev/null", dir, dir, dir, dir) == 0) {
        snprintf(f->how, sizeof f->how, "64 MiB ext4 on a loop device");
        return true;
    }
    if (sh("mount -t tmpfs -o size=64m pchat-test %s 2>/dev/null", dir) == 0) {
        snprintf(f->how, sizeof f->how, "64 MiB tmpfs (loop mount failed)");
        return true;
    }
    snprintf(why, cap, "neither a loop-mounted ext4 nor a tmpfs could be mounted on %s", dir);
    return false;
}

static uint64_t free_bytes(const char *dir)
{
    struct statvfs sv;
    assert_int_equal(statvfs(dir, &sv), 0);
    return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* Each post's fate as its author saw it, by number ("disk-<n> …"). */
enum { REFUSED = 0, ACKED = 1, UNKNOWN = 2 };

/* Checks the room's history: sequence numbers contiguous, posts in the order sent, none
 * twice, every acknowledged one present, no refused one present (an unknown one may be
 * either). Read in pages of 100 (a page of long posts is one SIP body). */
static void check_history(int port, const char *lobby, const char *fate, int sent,
                          const char *when)
{
    struct tl_client *c = tl_client_new(port, "carol@example.test");
    int *posts = calloc(MAX_POSTS + 64, sizeof *posts); /* newest first */
    uint64_t *seqs = calloc(MAX_POSTS + 64, sizeof *seqs);
    size_t n = 0;
    uint64_t before = 0;
    for (;;) {
        struct pcc_event *ev = tl_history(c, lobby, 100, before);
        assert_non_null(ev);
        size_t got = ev->msg.n_rooms == 1 ? ev->msg.rooms[0].n_msgs : 0;
        for (size_t i = got; i-- > 0 && n < MAX_POSTS + 64;) {
            const struct xccos_chat *m = &ev->msg.rooms[0].msgs[i];
            seqs[n] = m->msg_id;
            posts[n] = 0;
            sscanf(m->text, "disk-%d ", &posts[n]);
            n++;
        }
        before = got > 0 ? ev->msg.rooms[0].msgs[0].msg_id : 0;
        pcc_event_free(ev);
        if (got < 100 || before <= 1)
            break;
    }
    int last = 0, acked_seen = 0, acked = 0, unknown_seen = 0;
    for (int k = 1; k <= sent; k++)
        acked += fate[k] == ACKED;
    for (size_t i = n; i-- > 0;) {
        if (i + 1 < n && seqs[i] != seqs[i + 1] + 1) {
            fprintf(stderr, "%s: history jumps from seq %llu to %llu\n", when,
                    (unsigned long long)seqs[i + 1], (unsigned long long)seqs[i]);
            fail();
        }
        int k = posts[i];
        if (k == 0)
            continue;
        if (k <= last || k > sent || fate[k] == REFUSED) {
            fprintf(stderr, "%s: post disk-%d (%s) after disk-%d\n", when, k,
                    k > sent ? "never sent" : fate[k] == REFUSED ? "refused" : "repeated", last);
            fail();
        }
        acked_seen += fate[k] == ACKED;
        unknown_seen += fate[k] == UNKNOWN;
        last = k;
    }
    fprintf(stderr, "  %s: %zu messages, seqs contiguous; %d of %d acknowledged posts, %d of "
            "unknown outcome\n", when, n, acked_seen, acked, unknown_seen);
    assert_int_equal(acked_seen, acked);
    free(posts);
    free(seqs);
    tl_client_close(c);
}

/* Posts disk-<n> with n = *sent + 1; returns the SIP status (0: no answer in wait_ms). */
static int post_one(struct tl_client *c, const char *lobby, char *fate, int *sent, unsigned wait_ms,
                    char *reason, size_t cap)
{
    static char text[1700];
    int k = ++*sent;
    int len = snprintf(text, sizeof text, "disk-%d ", k);
    memset(text + len, 'a' + k % 26, 1500);
    text[len + 1500] = '\0';
    uint32_t cseq = pcc_post(c->pcc, lobby, text);
    reason[0] = '\0';
    int status = tl_wait_sip(c, cseq, wait_ms, reason, cap);
    /* 500 and no answer: maybe stored (guarantee 1 only covers 200); any other: not stored. */
    fate[k] = status == 200 ? ACKED : status == 0 || status == 500 ? UNKNOWN : REFUSED;
    return status;
}

/* Fills the node's disk with posts until it stops acknowledging them, checks how it says
 * so, frees space, and checks it takes posts again by itself and lost nothing. */
static void fill_then_free(struct disk_fixture *f)
{
    struct tl_node *node = &f->node;
    bool guarded = f->min_free_mb > 0;
    char lobby[256], filler[400], reason[256];
    char *fate = calloc(MAX_POSTS + 200, 1);
    int sent = 0, status = 0;
    struct tl_client *c = tl_client_new(node->sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    struct pcc_event *ev = tl_join(c, lobby);
    pcc_event_free(ev);

    /* Leave min_free_space + 3 MiB: the posts fill the rest. */
    snprintf(filler, sizeof filler, "%s/filler", f->mnt);
    uint64_t free0 = free_bytes(f->mnt);
    uint64_t keep = (uint64_t)(f->min_free_mb + 3) << 20;
    if (free0 <= keep) {
        fprintf(stderr, "only %.1f MiB free on the new filesystem:\n", (double)free0 / (1 << 20));
        sh("du -a %s | sort -n | tail -15 >&2", f->mnt);
    }
    assert_true(free0 > keep);
    assert_int_equal(sh("fallocate -l %llu %s || dd if=/dev/zero of=%s bs=1M count=%llu "
                        "status=none", (unsigned long long)(free0 - keep), filler, filler,
                        (unsigned long long)((free0 - keep) >> 20)), 0);
    fprintf(stderr, "  data_dir on %s, min_free_space %d MiB; %.1f MiB free after the filler\n",
            f->how, f->min_free_mb, (double)free_bytes(f->mnt) / (1 << 20));

    uint64_t t0 = now_ms();
    while (sent < MAX_POSTS) {
        status = post_one(c, lobby, fate, &sent, guarded ? 10000 : 5000, reason, sizeof reason);
        if (status != 200)
            break;
    }
    fprintf(stderr, "  %d posts acknowledged in %.1f s, then SIP %d \"%s\" (%.1f MiB free)\n",
            sent - 1, (double)(now_ms() - t0) / 1000, status, reason,
            (double)free_bytes(f->mnt) / (1 << 20));
    assert_true(sent > 1);
    assert_int_equal(kill(node->pid, 0), 0); /* never a crash */
    if (guarded) {
        /* The guard acts before raft or RocksDB see ENOSPC: a clear, immediate refusal. */
        assert_int_equal(status, 503);
        assert_non_null(strstr(reason, "Disk full"));
        assert_true(tl_node_log_contains(node, "DISK FULL"));
        assert_int_equal(tl_metric(node, "pchat_store_disk_full"), 1);
        assert_true(tl_metric(node, "pchat_writes_refused_disk_full_total") >= 1);
        assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 503);
        char out[4096];
        int rc = tl_pchatctl(node, out, sizeof out, "room new DiskFullRoom --category General");
        fprintf(stderr, "  pchatctl room new while full: exit %d: %s", rc, out);
        assert_true(rc != 0 && strstr(out, "disk is full") != NULL);
        check_history(node->sip_port, lobby, fate, sent, "while full");
    } else {
        /* No guard: whatever the first failure looked like, a later post must be refused
         * as "disk full" (RocksDB's ENOSPC enters the state) or wait, never be acked. */
        for (int i = 0; i < 3 && status != 503; i++)
            status = post_one(c, lobby, fate, &sent, 5000, reason, sizeof reason);
        fprintf(stderr, "  then SIP %d \"%s\"; pchat_store_disk_full %lld, "
                "pchat_store_enospc_errors_total %lld\n", status, reason,
                tl_metric(node, "pchat_store_disk_full"),
                tl_metric(node, "pchat_store_enospc_errors_total"));
        assert_true(status != 200);
        assert_int_equal(kill(node->pid, 0), 0);
    }

    /* Space returns: posts are acknowledged again within seconds, no restart. */
    assert_int_equal(unlink(filler), 0);
    uint64_t t1 = now_ms();
    status = 0;
    while (now_ms() - t1 < 20000) {
        status = post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason);
        if (status == 200)
            break;
        tl_spin(200);
    }
    fprintf(stderr, "  filler deleted: posts acknowledged again after %.1f s\n",
            (double)(now_ms() - t1) / 1000);
    assert_int_equal(status, 200);
    for (int i = 0; i < 20; i++)
        assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);
    assert_int_equal(tl_metric(node, "pchat_store_disk_full"), 0);
    if (guarded)
        assert_true(tl_node_log_contains(node, "space is back"));
    check_history(node->sip_port, lobby, fate, sent, "after space returned");
    tl_client_close(c);

    /* A restart finds RocksDB and raft intact. */
    tl_node_stop(node);
    tl_node_start(node);
    check_history(node->sip_port, lobby, fate, sent, "after a restart");
    c = tl_client_new(node->sip_port, "alice@example.test");
    ev = tl_join(c, lobby);
    pcc_event_free(ev);
    assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);
    tl_client_close(c);
    tl_node_stop(node); /* clean exit (and no leak under ASan) */
    free(fate);
}


/* The Lobby's owner and shard as node n's admin API says (-1 when unknown). */
static long long lobby_owner(struct tl_node *n, long long *shard)
{
    char out[16384];
    long long o = -1;
    *shard = -1;
    if (tl_pchatctl(n, out, sizeof out, "--json room get Lobby") != 0)
        return -1;
    json_t *j = json_loads(out, 0, NULL);
    json_t *r = j ? json_object_get(j, "room") : NULL;
    if (r == NULL)
        r = j;
    if (r != NULL && json_is_integer(json_object_get(r, "owner")))
        o = json_integer_value(json_object_get(r, "owner"));
    if (r != NULL && json_is_integer(json_object_get(r, "shard")))
        *shard = json_integer_value(json_object_get(r, "shard"));
    json_decref(j);
    return o;
}

/* Hands the Lobby's shard to node id (1 = the node on the small disk); waits for it. */
static void make_owner(struct disk_fixture *f, long long id)
{
    struct tl_node *all[3] = {&f->node, &f->others[0], &f->others[1]};
    char out[4096], args[64];
    for (int tries = 0; tries < 100; tries++) {
        long long shard, o = lobby_owner(all[1], &shard);
        if (o == id)
            return;
        if (o >= 1 && o <= 3 && shard >= 0) { /* the shard's raft group is shard + 1 */
            snprintf(args, sizeof args, "shard transfer %lld --node %lld", shard + 1, id);
            tl_pchatctl(all[o - 1], out, sizeof out, args);
        }
        tl_spin(200);
    }
    fail_msg("node %lld did not become the Lobby's owner", id);
}

/* A 3-node pool where node 1's data disk fills: it refuses what it would propose, hands the
 * shards it leads to the others and tells them (balancing leaves it alone); the pool keeps
 * acknowledging posts; when space returns node 1 catches up and, made owner again, serves
 * the whole history from its own store. */
static void poolNodeDiskFull_handsOwnershipAway_poolKeepsPosting(void **state)
{
    struct disk_fixture *f = *state;
    if (f == NULL)
        skip();
    struct tl_node *n1 = &f->node, *n2 = &f->others[0];
    char lobby[256], filler[400], reason[256];
    char *fate = calloc(MAX_POSTS + 200, 1);
    int sent = 0, status = 0;
    struct tl_client *c = tl_client_new(n2->sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    pcc_event_free(tl_join(c, lobby));
    make_owner(f, 1);

    snprintf(filler, sizeof filler, "%s/filler", f->mnt);
    uint64_t free0 = free_bytes(f->mnt), keep = (uint64_t)(f->min_free_mb + 3) << 20;
    assert_true(free0 > keep);
    assert_int_equal(sh("fallocate -l %llu %s", (unsigned long long)(free0 - keep), filler), 0);
    fprintf(stderr, "  pool: node 1's data_dir on %s, %.1f MiB free; node 1 owns the Lobby\n",
            f->how, (double)free_bytes(f->mnt) / (1 << 20));

    /* Post through node 2 until node 1 says its disk is full. */
    int refused = 0, unknown = 0;
    while (sent < MAX_POSTS && tl_metric(n1, "pchat_store_disk_full") != 1) {
        for (int i = 0; i < 20; i++) {
            status = post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason);
            if (status == 503 && strstr(reason, "Disk full") != NULL)
                refused++;
            else if (status != 200)
                unknown++;
        }
    }
    fprintf(stderr, "  %d posts sent until node 1 was full (%.1f MiB free): %d refused \"Disk "
            "full\", %d of unknown outcome\n", sent, (double)free_bytes(f->mnt) / (1 << 20),
            refused, unknown);
    assert_int_equal(tl_metric(n1, "pchat_store_disk_full"), 1);
    /* Node 1 hands the Lobby's shard away by itself. */
    long long shard, o = -1;
    for (int i = 0; i < 50 && (o = lobby_owner(n2, &shard)) == 1; i++)
        tl_spin(200);
    fprintf(stderr, "  node 1 full: the Lobby's owner is now node %lld\n", o);
    assert_true(o == 2 || o == 3);
    assert_true(tl_node_log_contains(n1, "handing leadership"));
    assert_true(tl_node_log_contains(n2, "node 1 says its data disk is full"));
    /* The pool takes posts meanwhile, and node 1 keeps following them as a replica until,
     * below half its reserve, it stops writing its database (the write gate) and then raft
     * cannot grow its log there: still no crash, and the others go on. */
    for (int i = 0; i < 30; i++)
        assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);
    int more = 0, n1_status = -1;
    while (sent < MAX_POSTS && n1_status < 0) {
        for (int i = 0; i < 20; i++, more++)
            assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);
        int st;
        if (waitpid(n1->pid, &st, WNOHANG) == n1->pid)
            n1_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    fprintf(stderr, "  %d more posts acknowledged by the pool; node 1 (%.2f MiB free) stopped "
            "with status %d\n", more, (double)free_bytes(f->mnt) / (1 << 20), n1_status);
    n1->pid = 0;
    assert_int_equal(n1_status, 75); /* EX_TEMPFAIL, said why; never a crash */
    assert_true(tl_node_log_contains(n1, "the node stops now"));
    for (int i = 0; i < 10; i++) /* the other two go on */
        assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);

    /* Started again (as systemd would), node 1 waits for space; once the filler is gone it
     * starts, catches up, and, made owner again, serves the whole history from its store. */
    tl_node_spawn(n1);
    for (int i = 0; i < 50 && !tl_node_log_contains_since(n1, "waits for free space"); i++)
        tl_spin(100);
    assert_true(tl_node_log_contains_since(n1, "waits for free space"));
    assert_int_equal(unlink(filler), 0);
    uint64_t t0 = now_ms();
    tl_node_wait_ready(n1, 20000);
    fprintf(stderr, "  filler deleted: node 1 started %.1f s later\n",
            (double)(now_ms() - t0) / 1000);
    assert_int_equal(tl_metric(n1, "pchat_store_disk_full"), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);
    make_owner(f, 1);
    check_history(n2->sip_port, lobby, fate, sent, "node 1 owner again, from its store");
    assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 200);
    tl_client_close(c);
    tl_node_stop(n1);
    tl_node_stop(&f->others[0]);
    tl_node_stop(&f->others[1]);
    free(fate);
}

static int setup_with(void **state, int min_free_mb)
{
    struct disk_fixture *f = calloc(1, sizeof *f);
    f->min_free_mb = min_free_mb;
    char conf[256];
    snprintf(conf, sizeof conf,
             "[node]\nmin_free_space = %dM\n[cluster]\nshards = 2\nsegment_size = 256k\n"
             "[chat]\nmax_history = 500\n", min_free_mb);
    tl_node_init(&f->node, tl_port_base() + 7, conf);
    snprintf(f->mnt, sizeof f->mnt, "%s/data", f->node.dir);
    char why[600];
    if (!mount_small(f, f->mnt, why, sizeof why)) {
        fprintf(stderr, "SKIP: %s\n", why);
        tl_node_cleanup(&f->node);
        free(f);
        *state = NULL;
        return 0;
    }
    f->mounted = true;
    tl_node_start(&f->node);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, MIN_FREE_MB);
}

static int setup_unguarded(void **state)
{
    if (getenv("PCHAT_TEST_UNGUARDED") == NULL) {
        *state = NULL;
        return 0;
    }
    return setup_with(state, 0);
}

static int setup_pool(void **state)
{
    struct disk_fixture *f = calloc(1, sizeof *f);
    f->min_free_mb = MIN_FREE_MB;
    f->pool = true;
    char conf[256];
    snprintf(conf, sizeof conf,
             "[node]\nmin_free_space = %dM\n[cluster]\nshards = 2\nsegment_size = 256k\n"
             "election_timeout_ms = 500\nheartbeat_ms = 50\n[chat]\nmax_history = 500\n",
             MIN_FREE_MB);
    struct tl_node nodes[3];
    tl_pool_init(nodes, 3, tl_port_base() + 20, conf);
    f->node = nodes[0];
    f->others[0] = nodes[1];
    f->others[1] = nodes[2];
    snprintf(f->mnt, sizeof f->mnt, "%s/data", f->node.dir);
    char why[600];
    if (!mount_small(f, f->mnt, why, sizeof why)) {
        fprintf(stderr, "SKIP: %s\n", why);
        for (int k = 0; k < 3; k++)
            tl_node_cleanup(&nodes[k]);
        free(f);
        *state = NULL;
        return 0;
    }
    f->mounted = true;
    tl_pool_start(nodes, 3);
    f->node = nodes[0];
    f->others[0] = nodes[1];
    f->others[1] = nodes[2];
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct disk_fixture *f = *state;
    if (f == NULL)
        return 0;
    tl_node_kill(&f->node); /* only after a failure: the test stops it cleanly */
    if (f->pool) {
        tl_node_kill(&f->others[0]);
        tl_node_kill(&f->others[1]);
        tl_node_cleanup(&f->others[0]);
        tl_node_cleanup(&f->others[1]);
    }
    if (f->mounted)
        sh("umount %s || umount -l %s", f->mnt, f->mnt);
    tl_node_cleanup(&f->node);
    free(f);
    return 0;
}

static void fullDisk_refusesDiskFull_recoversWhenSpaceReturns(void **state)
{
    if (*state == NULL)
        skip();
    fill_then_free(*state);
}

/* The guard off ([node] min_free_space = 0): not in the suite, because what follows is not
 * ours to fix. Run with PCHAT_TEST_UNGUARDED=1 to see it. Either raft refuses the entry
 * first (no prepared segment: RAFT_NOSPACE, answered 503 "Disk full"), or RocksDB 7.8.3's
 * WAL write fails with ENOSPC and Debian's build (assertions on) aborts the process in
 * WritableFileWriter::AssertFalseAndGetStatusForPrevError. Nothing acknowledged is lost
 * either way (the raft log is durable; a restart replays it), but the abort is a crash. */
static void fullDiskUnguarded_neverAcksOrCrashes_recoversWhenSpaceReturns(void **state)
{
    if (*state == NULL || getenv("PCHAT_TEST_UNGUARDED") == NULL)
        skip();
    fill_then_free(*state);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(fullDisk_refusesDiskFull_recoversWhenSpaceReturns, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(poolNodeDiskFull_handsOwnershipAway_poolKeepsPosting,
                                        setup_pool, teardown),
        cmocka_unit_test_setup_teardown(
            fullDiskUnguarded_neverAcksOrCrashes_recoversWhenSpaceReturns, setup_unguarded,
            teardown),
    };
    int rc = cmocka_run_group_tests_name("disk", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
