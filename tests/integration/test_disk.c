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
#include <time.h>
#include <unistd.h>

#include "common/pc_buf.h"
#include "tests/lib/tl.h"

#define MAX_POSTS 3000
#define MIN_FREE_MB 8

struct disk_fixture {
    int min_free_mb; /* [node] min_free_space; 0 = the guard off: raft and RocksDB hit ENOSPC */
    struct tl_node node;
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

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    pc_buf_append(ud, p, size * n);
    return size * n;
}

/* The value of an unlabelled metric in the node's /metrics (-1 when absent). */
static long long metric(const struct tl_node *n, const char *name)
{
    CURL *c = curl_easy_init();
    struct pc_buf body = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->web_port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    long long v = -1;
    if (rc == CURLE_OK) {
        pc_buf_append(&body, "", 1);
        char key[128];
        snprintf(key, sizeof key, "\n%s ", name);
        const char *p = strstr(body.data, key);
        if (p != NULL)
            v = strtoll(p + strlen(key), NULL, 10);
    }
    pc_buf_free(&body);
    return v;
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
        assert_int_equal(metric(node, "pchat_store_disk_full"), 1);
        assert_true(metric(node, "pchat_writes_refused_disk_full_total") >= 1);
        assert_int_equal(post_one(c, lobby, fate, &sent, 10000, reason, sizeof reason), 503);
        check_history(node->sip_port, lobby, fate, sent, "while full");
    } else {
        /* No guard: whatever the first failure looked like, a later post must be refused
         * as "disk full" (RocksDB's ENOSPC enters the state) or wait, never be acked. */
        for (int i = 0; i < 3 && status != 503; i++)
            status = post_one(c, lobby, fate, &sent, 5000, reason, sizeof reason);
        fprintf(stderr, "  then SIP %d \"%s\"; pchat_store_disk_full %lld, "
                "pchat_store_enospc_errors_total %lld\n", status, reason,
                metric(node, "pchat_store_disk_full"),
                metric(node, "pchat_store_enospc_errors_total"));
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
    assert_int_equal(metric(node, "pchat_store_disk_full"), 0);
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

static int teardown(void **state)
{
    struct disk_fixture *f = *state;
    if (f == NULL)
        return 0;
    tl_node_kill(&f->node); /* only after a failure: the test stops it cleanly */
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
        cmocka_unit_test_setup_teardown(
            fullDiskUnguarded_neverAcksOrCrashes_recoversWhenSpaceReturns, setup_unguarded,
            teardown),
    };
    int rc = cmocka_run_group_tests_name("disk", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
