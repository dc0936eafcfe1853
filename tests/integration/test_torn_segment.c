/* Torn raft segments (issue 9 item 4b). A 3-node pool with one shard; node 3 is stopped, one
 * of its segment files of that shard is damaged, and it is started again:
 *   A. garbage after the last entry of the open segment (a write that never completed):
 *      raft_uv cuts it off, the node starts;
 *   B. the last entry of the open segment damaged in place (an acknowledged entry): raft_uv
 *      cuts it off too; the node says so (its store had applied it) and gets it back from
 *      the leader;
 *   C. the open segment truncated in the middle of its last entry, and
 *   D. a closed segment in the middle of the log truncated: the node refuses to start and
 *      names the file; the documented repair (move the group's raft directory away) works.
 * After each restart node 3 is made the shard's owner, so that history is read from its own
 * store: it must equal what the pool served before, every acknowledged post included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/lib/tl.h"

#define NODES 3

struct pool {
    struct tl_node nodes[NODES];
    char lobby[256];
    struct tl_client *poster;
    int posted;
};

static const char *pool_conf = "[cluster]\nshards = 1\nsegment_size = 64k\n"
                               "election_timeout_ms = 500\nheartbeat_ms = 50\n";

/* The room's history through node k as "id:text|…", oldest first (malloc'd). */
static char *history(struct pool *p, int k)
{
    struct tl_client *c = tl_client_new(p->nodes[k].sip_port, "carol@example.test");
    size_t cap = 1 << 20, len = 0;
    char *out = calloc(1, cap);
    uint64_t before = 0;
    char **pages = calloc(64, sizeof *pages);
    int n_pages = 0;
    for (;;) {
        struct pcc_event *ev = tl_history(c, p->lobby, 200, before);
        assert_non_null(ev);
        size_t got = ev->msg.n_rooms == 1 ? ev->msg.rooms[0].n_msgs : 0;
        size_t plen = 0, pcap = 1 << 16;
        char *page = calloc(1, pcap);
        for (size_t i = 0; i < got; i++) {
            const struct xccos_chat *m = &ev->msg.rooms[0].msgs[i];
            plen += (size_t)snprintf(page + plen, pcap - plen, "%llu:%s|",
                                     (unsigned long long)m->msg_id, m->text);
        }
        before = got > 0 ? ev->msg.rooms[0].msgs[0].msg_id : 0;
        pcc_event_free(ev);
        assert_true(n_pages < 64);
        pages[n_pages++] = page;
        if (got < 200 || before <= 1)
            break;
    }
    for (int i = n_pages; i-- > 0;) {
        len += (size_t)snprintf(out + len, cap - len, "%s", pages[i]);
        free(pages[i]);
    }
    free(pages);
    tl_client_close(c);
    return out;
}

static void post_n(struct pool *p, int n)
{
    char text[64];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "torn-%d", ++p->posted);
        assert_int_equal(tl_post(p->poster, p->lobby, text), 200);
    }
}

/* The Lobby's owner as node k's admin API says (-1 when unknown). */
static long long owner(struct pool *p, int k)
{
    char out[16384];
    if (tl_pchatctl(&p->nodes[k], out, sizeof out, "--json room get Lobby") != 0)
        return -1;
    json_t *j = json_loads(out, 0, NULL);
    long long o = -1;
    json_t *r = j ? json_object_get(j, "room") : NULL;
    if (r == NULL)
        r = j;
    if (r != NULL && json_is_integer(json_object_get(r, "owner")))
        o = json_integer_value(json_object_get(r, "owner"));
    json_decref(j);
    return o;
}

/* Hands the shard to node 3 and waits until it owns it (history then reads its store). */
static void make_node3_owner(struct pool *p)
{
    char out[4096];
    for (int tries = 0; tries < 100; tries++) {
        long long o = owner(p, 0);
        if (o == 3)
            return;
        if (o >= 1 && o <= NODES)
            tl_pchatctl(&p->nodes[o - 1], out, sizeof out, "shard transfer 1 --node 3");
        tl_spin(200);
    }
    fail_msg("node 3 did not become the owner of the shard");
}

/* The group-1 segment to damage on node 3: the open segment with entries with the highest
 * counter (open = true), or the first closed one (open = false). Returns 0 if none. */
static int pick_segment(struct pool *p, bool open, char *path, size_t cap)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/data/raft/1", p->nodes[2].dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    long best = -1;
    char best_name[256] = "";
    static char closed[64][64];
    size_t n_closed = 0;
    while ((e = readdir(d)) != NULL) {
        if (open && strncmp(e->d_name, "open-", 5) == 0) {
            long counter = atol(e->d_name + 5);
            char full[700];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            FILE *f = fopen(full, "rb");
            uint64_t hdr[3] = {0};
            size_t got = f ? fread(hdr, 8, 3, f) : 0;
            if (f)
                fclose(f);
            if (got == 3 && hdr[2] != 0 && counter > best) { /* format, crcs, n entries */
                best = counter;
                snprintf(best_name, sizeof best_name, "%s", e->d_name);
            }
        } else if (!open && e->d_name[0] >= '0' && e->d_name[0] <= '9' &&
                   strchr(e->d_name, '-') != NULL && n_closed < 64) {
            snprintf(closed[n_closed++], sizeof closed[0], "%.60s", e->d_name);
        }
    }
    closedir(d);
    if (!open && n_closed >= 3) { /* the middle one of the log's closed segments */
        qsort(closed, n_closed, sizeof closed[0], (int (*)(const void *, const void *))strcmp);
        best = 1;
        snprintf(best_name, sizeof best_name, "%s", closed[n_closed / 2]);
    }
    if (best < 0)
        return 0;
    snprintf(path, cap, "%s/%s", dir, best_name);
    return 1;
}

/* Walks the batches of a segment (format: u64 version, then per batch u32 crc, u32 crc,
 * u64 n, n × {u64 term, u8 type, 3 unused, u32 size}, data): where the last one starts, where
 * its data starts, and where it ends. */
static void segment_layout(const char *path, long *last_start, long *last_data, long *end)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    long off = 8;
    *last_start = *last_data = -1;
    for (;;) {
        uint32_t crc[2];
        uint64_t n;
        if (fseek(f, off, SEEK_SET) != 0 || fread(crc, 4, 2, f) != 2 || fread(&n, 8, 1, f) != 1 ||
            n == 0 || n > 100000)
            break;
        uint64_t data = 0;
        for (uint64_t i = 0; i < n; i++) {
            uint8_t eh[16];
            if (fread(eh, 1, 16, f) != 16)
                goto out;
            uint32_t size;
            memcpy(&size, eh + 12, 4);
            data += size;
        }
        *last_start = off;
        *last_data = off + 16 + 16 * (long)n;
        off = *last_data + (long)data;
    }
out:
    fclose(f);
    *end = off;
    assert_true(*last_start > 0);
}

static void patch(const char *path, long at, const void *bytes, size_t len)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, len, at), (ssize_t)len);
    close(fd);
}

/* Starts node 3 expecting it to refuse: it must exit non-zero within 20 s. */
static void start_expect_refusal(struct tl_node *n)
{
    tl_node_spawn(n);
    int status = 0;
    for (int i = 0; i < 200; i++) {
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = 0;
            assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
            return;
        }
        usleep(100 * 1000);
    }
    tl_node_kill(n);
    fail_msg("node 3 started on a damaged raft log instead of refusing");
}

/* Node 3 is back: it must serve exactly the history the pool served before. */
static void check_node3(struct pool *p, const char *what)
{
    post_n(p, 5); /* the pool takes posts; node 3 catches up with them too */
    char *ref = history(p, 0);
    make_node3_owner(p);
    char *got = history(p, 0); /* served by the owner, node 3, from its store */
    if (strcmp(ref, got) != 0) {
        fprintf(stderr, "%s: node 3's history differs\n  pool:   %.300s…\n  node 3: %.300s…\n",
                what, ref, got);
        fail();
    }
    char needle[32];
    snprintf(needle, sizeof needle, "torn-%d|", p->posted);
    assert_non_null(strstr(got, needle));
    fprintf(stderr, "  %s: node 3's history equals the pool's (%d posts)\n", what, p->posted);
    free(ref);
    free(got);
}

/* Posts, then lets every replica apply them before node 3 is killed. */
static void settle_and_kill_node3(struct pool *p)
{
    post_n(p, 3);
    tl_spin(600);
    tl_node_kill(&p->nodes[2]);
}

static void tornSegments_recoverOrRefuse_neverDropCommitted(void **state)
{
    (void)state;
    struct pool p;
    memset(&p, 0, sizeof p);
    tl_pool_init(p.nodes, NODES, tl_port_base() + 10, pool_conf);
    tl_pool_start(p.nodes, NODES);
    p.poster = tl_client_new(p.nodes[0].sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(p.poster, "Lobby", p.lobby, sizeof p.lobby));
    pcc_event_free(tl_join(p.poster, p.lobby));
    post_n(&p, 500); /* several 64 KiB segments */
    char seg[800];
    long start, data, end;

    /* A: a torn write after the last entry. */
    settle_and_kill_node3(&p);
    assert_true(pick_segment(&p, true, seg, sizeof seg));
    segment_layout(seg, &start, &data, &end);
    static const char junk[48] = "\xa5\x5a\xa5\x5a torn write torn write torn write torn";
    patch(seg, end, junk, sizeof junk);
    fprintf(stderr, "  A: %s: 48 bytes of garbage at %ld, after the last batch\n", seg, end);
    tl_node_start(&p.nodes[2]);
    check_node3(&p, "A (torn unfinished write)");

    /* B: the last (applied) entry damaged in place. */
    settle_and_kill_node3(&p);
    assert_true(pick_segment(&p, true, seg, sizeof seg));
    segment_layout(seg, &start, &data, &end);
    patch(seg, data + 8, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    fprintf(stderr, "  B: %s: 8 bytes of the last batch's data overwritten at %ld\n", seg,
            data + 8);
    tl_node_start(&p.nodes[2]);
    assert_true(tl_node_log_contains_since(&p.nodes[2], "entries are missing from the log"));
    check_node3(&p, "B (damaged acknowledged entry)");

    /* C: the open segment cut in the middle of its last entry. */
    char dir[400], moved[420];
    snprintf(dir, sizeof dir, "%s/data/raft/1", p.nodes[2].dir);
    snprintf(moved, sizeof moved, "%s.damaged", dir);
    settle_and_kill_node3(&p);
    assert_true(pick_segment(&p, true, seg, sizeof seg));
    segment_layout(seg, &start, &data, &end);
    assert_int_equal(truncate(seg, (data + end) / 2), 0);
    fprintf(stderr, "  C: %s truncated to %ld, inside its last entry (%ld..%ld)\n", seg,
            (data + end) / 2, data, end);
    start_expect_refusal(&p.nodes[2]);
    assert_true(tl_node_log_contains_since(&p.nodes[2], "cannot load the raft log"));
    assert_true(tl_node_log_contains_since(&p.nodes[2], strrchr(seg, '/') + 1));
    assert_int_equal(rename(dir, moved), 0); /* the repair docs/OPERATIONS.md describes */
    tl_node_start(&p.nodes[2]);
    check_node3(&p, "C (truncated open segment, refused, repaired)");

    /* D: a closed segment in the middle of the log cut short (clean stop: no open ones). */
    post_n(&p, 300);
    tl_spin(600);
    tl_node_stop(&p.nodes[2]);
    assert_true(pick_segment(&p, false, seg, sizeof seg));
    struct stat st;
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(truncate(seg, st.st_size / 2), 0);
    fprintf(stderr, "  D: closed segment %s truncated from %lld to %lld bytes\n", seg,
            (long long)st.st_size, (long long)st.st_size / 2);
    start_expect_refusal(&p.nodes[2]);
    assert_true(tl_node_log_contains_since(&p.nodes[2], "cannot load the raft log"));
    assert_true(tl_node_log_contains_since(&p.nodes[2], strrchr(seg, '/') + 1));
    char moved2[440];
    snprintf(moved2, sizeof moved2, "%s.damaged2", dir);
    assert_int_equal(rename(dir, moved2), 0);
    tl_node_start(&p.nodes[2]);
    check_node3(&p, "D (truncated closed segment, refused, repaired)");

    tl_client_close(p.poster);
    for (int k = 0; k < NODES; k++)
        tl_node_stop(&p.nodes[k]);
    for (int k = 0; k < NODES; k++)
        tl_node_cleanup(&p.nodes[k]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tornSegments_recoverOrRefuse_neverDropCommitted),
    };
    return cmocka_run_group_tests_name("torn_segment", tests, NULL, NULL);
}
