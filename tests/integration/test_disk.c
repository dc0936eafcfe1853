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

/* Checks the room's history holds exactly posts 1..acked ("disk-<i> …"), in order, with
 * contiguous sequence numbers. Read in pages of 100 (a page of long posts is one SIP body). */
static void check_history(int port, const char *lobby, int acked, const char *when)
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
    int found = 0;
    for (size_t i = n; i-- > 0;) {
        if (i + 1 < n && seqs[i] != seqs[i + 1] + 1) {
            fprintf(stderr, "%s: history jumps from seq %llu to %llu\n", when,
                    (unsigned long long)seqs[i + 1], (unsigned long long)seqs[i]);
            fail();
        }
        if (posts[i] == 0)
            continue;
        if (posts[i] != found + 1) {
            fprintf(stderr, "%s: post disk-%d follows disk-%d\n", when, posts[i], found);
            fail();
        }
        found = posts[i];
    }
    fprintf(stderr, "  %s: history holds %zu messages, posts disk-1..disk-%d, seqs contiguous\n",
            when, n, found);
    assert_int_equal(found, acked);
    free(posts);
    free(seqs);
    tl_client_close(c);
}

static void fullDisk_refusesWithReason_recoversWhenSpaceReturns(void **state)
{
    struct disk_fixture *f = *state;
    struct tl_node *node = &f->node;
    char lobby[256], filler[400], reason[256];
    struct tl_client *c = tl_client_new(node->sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    struct pcc_event *ev = tl_join(c, lobby);
    pcc_event_free(ev);

    /* Leave MIN_FREE_MB + 3 MiB: the posts fill the rest. */
    snprintf(filler, sizeof filler, "%s/filler", f->mnt);
    uint64_t free0 = free_bytes(f->mnt);
    uint64_t keep = (uint64_t)(MIN_FREE_MB + 3) << 20;
    if (free0 <= keep) {
        fprintf(stderr, "only %.1f MiB free on the new filesystem:\n", (double)free0 / (1 << 20));
        sh("du -a %s | sort -n | tail -15 >&2", f->mnt);
    }
    assert_true(free0 > keep);
    assert_int_equal(sh("fallocate -l %llu %s || dd if=/dev/zero of=%s bs=1M count=%llu "
                        "status=none", (unsigned long long)(free0 - keep), filler, filler,
                        (unsigned long long)((free0 - keep) >> 20)), 0);
    fprintf(stderr, "  data_dir on %s; %.1f MiB free after the filler\n", f->how,
            (double)free_bytes(f->mnt) / (1 << 20));

    static char text[1700];
    int acked = 0, status = 0;
    uint64_t t0 = now_ms();
    for (int i = 1; i <= MAX_POSTS; i++) {
        int len = snprintf(text, sizeof text, "disk-%d ", i);
        memset(text + len, 'a' + i % 26, 1500);
        text[len + 1500] = '\0';
        uint32_t cseq = pcc_post(c->pcc, lobby, text);
        status = tl_wait_sip(c, cseq, 10000, reason, sizeof reason);
        if (status != 200)
            break;
        acked = i;
    }
    fprintf(stderr, "  %d posts acknowledged in %.1f s, then SIP %d \"%s\" (%.1f MiB free)\n",
            acked, (double)(now_ms() - t0) / 1000, status, reason,
            (double)free_bytes(f->mnt) / (1 << 20));
    assert_true(acked > 0);
    assert_int_equal(status, 503);
    assert_non_null(strstr(reason, "Disk full"));
    assert_true(tl_node_log_contains(node, "DISK FULL"));
    assert_int_equal(metric(node, "pchat_store_disk_full"), 1);
    assert_true(metric(node, "pchat_writes_refused_disk_full_total") >= 1);
    /* Still up, still refusing, still serving reads. */
    assert_int_equal(kill(node->pid, 0), 0);
    uint32_t cseq = pcc_post(c->pcc, lobby, "disk-refused while full");
    assert_int_equal(tl_wait_sip(c, cseq, 10000, reason, sizeof reason), 503);
    check_history(node->sip_port, lobby, acked, "while full");

    /* Space returns: posts are acknowledged again within seconds, no restart. */
    assert_int_equal(unlink(filler), 0);
    uint64_t t1 = now_ms();
    status = 0;
    while (now_ms() - t1 < 15000) {
        int len = snprintf(text, sizeof text, "disk-%d after", acked + 1);
        (void)len;
        cseq = pcc_post(c->pcc, lobby, text);
        status = tl_wait_sip(c, cseq, 10000, reason, sizeof reason);
        if (status == 200)
            break;
        tl_spin(200);
    }
    fprintf(stderr, "  filler deleted: posts acknowledged again after %.1f s\n",
            (double)(now_ms() - t1) / 1000);
    assert_int_equal(status, 200);
    acked++;
    for (int i = 0; i < 20; i++) {
        snprintf(text, sizeof text, "disk-%d after", acked + 1);
        assert_int_equal(tl_post(c, lobby, text), 200);
        acked++;
    }
    assert_int_equal(metric(node, "pchat_store_disk_full"), 0);
    assert_true(tl_node_log_contains(node, "space is back"));
    check_history(node->sip_port, lobby, acked, "after space returned");
    tl_client_close(c);

    /* A restart finds RocksDB and raft intact. */
    tl_node_stop(node);
    tl_node_start(node);
    check_history(node->sip_port, lobby, acked, "after a restart");
    c = tl_client_new(node->sip_port, "alice@example.test");
    ev = tl_join(c, lobby);
    pcc_event_free(ev);
    snprintf(text, sizeof text, "disk-%d after restart", acked + 1);
    assert_int_equal(tl_post(c, lobby, text), 200);
    tl_client_close(c);
    tl_node_stop(node); /* clean exit (and no leak under ASan) */
}

static int setup(void **state)
{
    struct disk_fixture *f = calloc(1, sizeof *f);
    char conf[256];
    snprintf(conf, sizeof conf,
             "[node]\nmin_free_space = %dM\n[cluster]\nshards = 2\nsegment_size = 256k\n"
             "[chat]\nmax_history = 500\n", MIN_FREE_MB);
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

static void run_or_skip(void **state)
{
    if (*state == NULL)
        skip();
    fullDisk_refusesWithReason_recoversWhenSpaceReturns(state);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(run_or_skip, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name("disk", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
