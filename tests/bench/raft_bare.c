/* raft_bare: the raw commit rate of a bare canonical-raft loop on this machine, the yardstick
 * for pchat's acknowledged posts/s (make bench prints both).
 *
 * N raft instances (1 or 3 voters) run on one libuv loop in this process, on loopback TCP
 * through libraft's own uv transport (with TCP_NODELAY, see nodelay_*) and its own
 * on-disk log (O_DIRECT/AIO when the filesystem allows: the same durability as a node).
 * The FSM only counts. The leader keeps `window` raft_apply requests in flight, each one
 * entry carrying `batch` messages of `msg` bytes (libraft 0.22.1 takes one buffer per
 * apply, so batching happens inside the entry, as pchat does). What is reported is
 * messages committed and applied on the leader per second, and the apply latency.
 *
 *   raft_bare [--voters 1|3] [--window W] [--batch B] [--msg BYTES] [--seconds S]
 *             [--port P] [--dir DIR] [--mux] [--tls CA_DIR]
 *
 * --mux runs the voters over pchat's cluster port (cluster/raft_mux) instead of libraft's
 * TCP transport; --tls CA_DIR (implies --mux) with mutual TLS, certificates from CA_DIR as
 * deploy/pool-ca makes them (ca.pem, node<i>.pem, node<i>.key): what the transport and TLS
 * cost, without SIP and storage.
 * Rules from reference/RAFT-ROCKSDB.md: entries padded to 8 bytes, no call into raft from a
 * raft callback (refills go through a 0 ms timer), raft_close from a timer. */
#include <getopt.h>
#include <raft.h>
#include <raft/uv.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/cluster_tls.h"
#include "cluster/raft_mux.h"
#include "cmd/pchat-bench/bench_hist.h"
#include "common/pc_time.h"

#define MAX_VOTERS 3
#define MAX_WINDOW 1024

/* libraft never sets TCP_NODELAY; without it pipelined appends meet Nagle + delayed ACK
 * (40 ms stalls). This transport wraps raft_uv_tcp and sets it on every stream. */
struct nodelay_tp {
    struct raft_uv_transport outer; /* what raft_uv sees */
    struct raft_uv_transport inner; /* the stock TCP transport */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

struct nodelay_connect {
    struct raft_uv_connect inner_req;
    struct raft_uv_connect *outer_req;
    raft_uv_connect_cb cb;
    struct nodelay_tp *tp;
};

static struct nodelay_tp *tp_of(struct raft_uv_transport *t)
{
    return (struct nodelay_tp *)((char *)t - offsetof(struct nodelay_tp, outer));
}

static int nodelay_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct nodelay_tp *tp = tp_of(t);
    int rc = tp->inner.init(&tp->inner, id, address);
    if (rc != 0)
        memcpy(t->errmsg, tp->inner.errmsg, sizeof t->errmsg);
    return rc;
}

static void nodelay_accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
                             struct uv_stream_s *stream)
{
    struct nodelay_tp *tp = inner->data;
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    tp->accept_cb(&tp->outer, id, address, stream);
}

static int nodelay_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct nodelay_tp *tp = tp_of(t);
    tp->accept_cb = cb;
    return tp->inner.listen(&tp->inner, nodelay_accepted);
}

static void nodelay_connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct nodelay_connect *c = req->data;
    if (status == 0)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    c->cb(c->outer_req, stream, status);
    free(c);
}

static int nodelay_connect_fn(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                              const char *address, raft_uv_connect_cb cb)
{
    struct nodelay_tp *tp = tp_of(t);
    struct nodelay_connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RAFT_NOMEM;
    c->outer_req = req;
    c->cb = cb;
    c->tp = tp;
    c->inner_req.data = c;
    int rc = tp->inner.connect(&tp->inner, &c->inner_req, id, address, nodelay_connected);
    if (rc != 0)
        free(c);
    return rc;
}

static void nodelay_inner_closed(struct raft_uv_transport *inner)
{
    struct nodelay_tp *tp = inner->data;
    tp->close_cb(&tp->outer);
}

static void nodelay_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct nodelay_tp *tp = tp_of(t);
    tp->close_cb = cb;
    tp->inner.close(&tp->inner, nodelay_inner_closed);
}

static int nodelay_setup(struct nodelay_tp *tp, uv_loop_t *loop)
{
    memset(tp, 0, sizeof *tp);
    tp->inner.version = 1; /* 0.22.1 refuses a transport without it */
    int rc = raft_uv_tcp_init(&tp->inner, loop);
    if (rc != 0)
        return rc;
    tp->inner.data = tp;
    tp->outer.version = 1;
    tp->outer.init = nodelay_init;
    tp->outer.listen = nodelay_listen;
    tp->outer.connect = nodelay_connect_fn;
    tp->outer.close = nodelay_close;
    return 0;
}

/* ---- the cluster ------------------------------------------------------------------------ */

struct server {
    struct bench *b;
    struct raft raft;
    struct raft_io io;
    struct nodelay_tp tp;
    struct raft_mux *mux;            /* --mux: the cluster port, and its transport */
    struct raft_uv_transport mux_tp;
    struct raft_fsm fsm;
    uint64_t applied;
    char dir[300];
    char address[32];
};

struct req {
    struct raft_apply apply;
    struct bench *b;
    uint64_t sent_ns;
    bool busy;
};

struct bench {
    uv_loop_t loop;
    struct server srv[MAX_VOTERS];
    unsigned voters, window, batch, msg;
    double seconds;
    struct req reqs[MAX_WINDOW];
    uv_timer_t refill, clock;
    struct server *leader;
    uint64_t start_ns, measure_ns, end_ns;
    uint64_t msgs, entries, failed;
    struct bench_hist lat;
    unsigned closed;
    bool stopping;
    bool mux;
    const char *tls_dir;
};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct server *s = fsm->data;
    (void)buf;
    s->applied++;
    *result = NULL;
    return 0;
}

/* Snapshots are disabled by the threshold; these exist because raft requires them. */
static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct server *s = fsm->data;
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL)
        return RAFT_NOMEM;
    (*bufs)[0].len = 8;
    (*bufs)[0].base = raft_malloc(8);
    if ((*bufs)[0].base == NULL)
        return RAFT_NOMEM;
    memcpy((*bufs)[0].base, &s->applied, 8);
    *n = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct server *s = fsm->data;
    if (buf->len == 8)
        memcpy(&s->applied, buf->base, 8);
    raft_free(buf->base);
    return 0;
}

static void on_refill(uv_timer_t *t);

static void applied_cb(struct raft_apply *a, int status, void *result)
{
    (void)result;
    struct req *r = a->data;
    struct bench *b = r->b;
    uint64_t now = pc_mono_ns();
    r->busy = false;
    if (status != 0 && !b->stopping) /* requests cancelled by raft_close are not failures */
        b->failed++;
    else if (r->sent_ns >= b->measure_ns && now <= b->end_ns) {
        b->entries++;
        b->msgs += b->batch;
        bench_hist_record(&b->lat, now - r->sent_ns);
    }
    /* Never raft_apply from here (reference P7): refill from the next loop pass. */
    if (!b->stopping)
        uv_timer_start(&b->refill, on_refill, 0, 0);
}

static void propose(struct bench *b)
{
    size_t len = ((size_t)b->batch * b->msg + 7) & ~(size_t)7; /* pad to 8 (reference P1) */
    for (unsigned i = 0; i < b->window; i++) {
        struct req *r = &b->reqs[i];
        if (r->busy)
            continue;
        struct raft_buffer buf = {.len = len, .base = raft_malloc(len)};
        if (buf.base == NULL)
            return;
        memset(buf.base, 'm', len);
        r->b = b;
        r->apply.data = r;
        r->sent_ns = pc_mono_ns();
        if (raft_apply(&b->leader->raft, &r->apply, &buf, 1, applied_cb) != 0) {
            raft_free(buf.base);
            b->failed++;
            return;
        }
        r->busy = true;
    }
}

static void on_refill(uv_timer_t *t)
{
    struct bench *b = t->data;
    if (!b->stopping && b->leader != NULL)
        propose(b);
}

static void server_closed(struct raft *r)
{
    struct server *s = r->data;
    struct bench *b = s->b;
    raft_uv_close(&s->io);
    if (b->mux) {
        raft_mux_transport_close(&s->mux_tp);
        raft_mux_close(s->mux, NULL, NULL);
    } else {
        raft_uv_tcp_close(&s->tp.inner);
    }
    b->closed++;
}

static void on_clock(uv_timer_t *t)
{
    struct bench *b = t->data;
    uint64_t now = pc_mono_ns();
    if (b->leader == NULL) {
        for (unsigned i = 0; i < b->voters; i++)
            if (raft_state(&b->srv[i].raft) == RAFT_LEADER)
                b->leader = &b->srv[i];
        if (b->leader != NULL) {
            /* One second of warm-up, then the measured window. */
            b->start_ns = now;
            b->measure_ns = now + 1000000000ull;
            b->end_ns = b->measure_ns + (uint64_t)(b->seconds * 1e9);
            fprintf(stderr, "raft_bare: leader is server %u; proposing for %.0f s\n",
                    (unsigned)b->leader->raft.id, b->seconds + 1);
            propose(b);
        } else if (now - b->start_ns > 10000000000ull) {
            fprintf(stderr, "raft_bare: no leader after 10 s; are ports %s… free?\n",
                    b->srv[0].address);
            b->end_ns = now;
        }
        if (b->leader == NULL && b->end_ns == 0)
            return;
    }
    if (now < b->end_ns) {
        static uint64_t last_print;
        if (now - last_print >= 1000000000ull && now > b->measure_ns) {
            last_print = now;
            fprintf(stderr, "raft_bare: %.0f messages/s so far\n",
                    (double)b->msgs / ((double)(now - b->measure_ns) / 1e9));
        }
        return;
    }
    if (b->stopping)
        return;
    b->stopping = true;
    uv_timer_stop(&b->clock);
    uv_timer_stop(&b->refill);
    uv_close((uv_handle_t *)&b->clock, NULL);
    uv_close((uv_handle_t *)&b->refill, NULL);
    for (unsigned i = 0; i < b->voters; i++)
        raft_close(&b->srv[i].raft, server_closed);
}

static int server_start(struct bench *b, unsigned i, int port, const char *dir)
{
    struct server *s = &b->srv[i];
    snprintf(s->dir, sizeof s->dir, "%s/s%u", dir, i + 1);
    snprintf(s->address, sizeof s->address, "127.0.0.1:%d", port + (int)i);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", s->dir, s->dir);
    if (system(cmd) != 0)
        return -1;
    s->fsm = (struct raft_fsm){.version = 1, .data = s, .apply = fsm_apply,
                               .snapshot = fsm_snapshot, .restore = fsm_restore};
    int rc;
    if (b->mux) {
        SSL_CTX *tls = NULL;
        if (b->tls_dir != NULL) {
            char ca[400], cert[400], key[400], err[512];
            snprintf(ca, sizeof ca, "%s/ca.pem", b->tls_dir);
            snprintf(cert, sizeof cert, "%s/node%u.pem", b->tls_dir, i + 1);
            snprintf(key, sizeof key, "%s/node%u.key", b->tls_dir, i + 1);
            if (cluster_tls_context(ca, cert, key, i + 1, &tls, err, sizeof err) != 0) {
                fprintf(stderr, "raft_bare: %s\n", err);
                return -1;
            }
        }
        struct raft_mux_config mc = {.node_id = i + 1, .address = s->address, .tls = tls};
        rc = raft_mux_create(&b->loop, &mc, &s->mux);
        SSL_CTX_free(tls);
        if (rc == 0)
            rc = raft_mux_transport_init(&s->mux_tp, s->mux, 1);
        if (rc != 0) {
            fprintf(stderr, "raft_bare: cluster port %s: error %d\n", s->address, rc);
            return -1;
        }
        rc = raft_uv_init(&s->io, &b->loop, s->dir, &s->mux_tp);
    } else {
        rc = nodelay_setup(&s->tp, &b->loop);
        if (rc == 0)
            rc = raft_uv_init(&s->io, &b->loop, s->dir, &s->tp.outer);
    }
    if (rc != 0) {
        fprintf(stderr, "raft_bare: raft_uv_init(%s): %s\n", s->dir, raft_strerror(rc));
        return -1;
    }
    s->b = b; /* not io.data or raft.data alone: libraft uses io.data itself */
    raft_uv_set_segment_size(&s->io, 8u << 20);
    raft_uv_set_connect_retry_delay(&s->io, 50);
    rc = raft_init(&s->raft, &s->io, &s->fsm, i + 1, s->address);
    if (rc != 0) {
        fprintf(stderr, "raft_bare: raft_init: %s\n", raft_errmsg(&s->raft));
        return -1;
    }
    s->raft.data = s;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned k = 0; k < b->voters; k++) {
        char addr[32];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port + (int)k);
        raft_configuration_add(&conf, k + 1, addr, RAFT_VOTER);
    }
    rc = raft_bootstrap(&s->raft, &conf);
    raft_configuration_close(&conf);
    if (rc != 0) {
        fprintf(stderr, "raft_bare: raft_bootstrap: %s\n", raft_errmsg(&s->raft));
        return -1;
    }
    raft_set_election_timeout(&s->raft, 300);
    raft_set_heartbeat_timeout(&s->raft, 50);
    raft_set_snapshot_threshold(&s->raft, 1u << 30);
    rc = raft_start(&s->raft);
    if (rc != 0) {
        fprintf(stderr, "raft_bare: raft_start: %s\n", raft_errmsg(&s->raft));
        return -1;
    }
    return 0;
}

static unsigned arg_uint(const char *opt, const char *v, unsigned min, unsigned max)
{
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (end == v || *end != '\0' || n < min || n > max) {
        fprintf(stderr, "raft_bare: %s wants a number from %u to %u, not '%s'\n", opt, min, max, v);
        exit(2);
    }
    return (unsigned)n;
}

int main(int argc, char **argv)
{
    static struct bench b;
    b.voters = 3;
    b.window = 16;
    b.batch = 16;
    b.msg = 100;
    b.seconds = 5;
    int port = 27900;
    const char *dir = NULL;
    static const struct option opts[] = {
        {"voters", required_argument, NULL, 'v'}, {"window", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'b'},  {"msg", required_argument, NULL, 'm'},
        {"seconds", required_argument, NULL, 's'}, {"port", required_argument, NULL, 'p'},
        {"dir", required_argument, NULL, 'd'},    {"help", no_argument, NULL, 'h'},
        {"mux", no_argument, NULL, 'x'},          {"tls", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'v': b.voters = arg_uint("--voters", optarg, 1, MAX_VOTERS); break;
        case 'w': b.window = arg_uint("--window", optarg, 1, MAX_WINDOW); break;
        case 'b': b.batch = arg_uint("--batch", optarg, 1, 10000); break;
        case 'm': b.msg = arg_uint("--msg", optarg, 1, 65536); break;
        case 's': b.seconds = arg_uint("--seconds", optarg, 1, 3600); break;
        case 'p': port = (int)arg_uint("--port", optarg, 1024, 65000); break;
        case 'd': dir = optarg; break;
        case 'x': b.mux = true; break;
        case 't': b.mux = true; b.tls_dir = optarg; break;
        default:
            fprintf(stderr, "usage: raft_bare [--voters 1|3] [--window W] [--batch B] [--msg BYTES] "
                            "[--seconds S] [--port P] [--dir DIR] [--mux] [--tls CA_DIR]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    char tmp[] = "/tmp/raft-bare-XXXXXX";
    bool own_dir = dir == NULL; /* only a directory made here is removed at the end */
    if (own_dir && (dir = mkdtemp(tmp)) == NULL) {
        perror("raft_bare: mkdtemp");
        return 1;
    }
    /* libuv writes streams with write(2): a peer that closed must fail the write, not kill
     * the process (as in pchatd). */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&b.loop);
    uv_timer_init(&b.loop, &b.refill);
    uv_timer_init(&b.loop, &b.clock);
    b.refill.data = b.clock.data = &b;
    bench_hist_reset(&b.lat);
    b.start_ns = pc_mono_ns();
    for (unsigned i = 0; i < b.voters; i++)
        if (server_start(&b, i, port, dir) != 0)
            return 1;
    uv_timer_start(&b.clock, on_clock, 10, 10);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&b.loop);
    double s = b.end_ns > b.measure_ns ? (double)(b.end_ns - b.measure_ns) / 1e9 : 0;
    printf("raft_bare: %u voter(s)%s, window %u, %u x %u-byte messages per entry: "
           "%.0f messages/s (%.0f entries/s), apply latency p50 %.2f ms p99 %.2f ms max %.2f ms, "
           "%llu failed\n",
           b.voters, b.tls_dir != NULL ? " over the cluster port with mutual TLS"
                     : b.mux      ? " over the cluster port"
                                  : "",
           b.window, b.batch, b.msg, s > 0 ? (double)b.msgs / s : 0,
           s > 0 ? (double)b.entries / s : 0, (double)bench_hist_quantile(&b.lat, 0.5) / 1e6,
           (double)bench_hist_quantile(&b.lat, 0.99) / 1e6, (double)b.lat.max_ns / 1e6,
           (unsigned long long)b.failed);
    if (rc != 0)
        fprintf(stderr, "raft_bare: warning: handles left open on the loop\n");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (own_dir && system(cmd) != 0)
        fprintf(stderr, "raft_bare: could not remove %s\n", dir);
    return b.msgs > 0 ? 0 : 1;
}
