/* Unit tests for cluster/peer: three nodes in one process and one loop, each with its own
 * cluster port (raft_mux) and peer link, plus a configured peer that never runs. The tests run
 * in order on one shared world; the last one shuts everything down and checks that
 * uv_loop_close succeeds. Every message sent is recorded per (destination, sender) and every
 * message received is checked against the head of that record: order, type, length, bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/peer.h"
#include "cluster/raft_mux.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

#define N_NODES 3
#define PHANTOM_ID 9 /* configured everywhere, never started: its queue only fills */
#define RECONNECT_MS 20
#define BURST 100000
#define MIB ((size_t)1 << 20)

struct expect {
    uint8_t type;
    uint32_t seed;
    size_t len;
};

/* What `to` must receive from `from`, in order. */
struct stream {
    struct expect *v;
    size_t n, cap, next;
};

struct tnode {
    uint64_t id;
    int port;
    char addr[32];
    struct raft_mux *mux;
    struct peer_link *pl;
    bool pl_closed, mux_closed;
    unsigned ups[16], downs[16]; /* link events by destination id */
    bool up[16];
};

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    int base_port;
    struct tnode nodes[N_NODES];
    struct stream streams[16][16]; /* [to id][from id] */
    unsigned bad;                  /* mismatches seen by the message handler */
    unsigned inline_calls;         /* handlers called inside peer_send */
    bool in_send;
    uint64_t delivered;
    unsigned silence_down_ms; /* given to nodes started from now on */
    uint8_t *scratch; /* payloads are built here */
    size_t scratch_len;
} w;

/* ---- payloads ---------------------------------------------------------------------------- */

static uint8_t patternByte(uint32_t seed, size_t i)
{
    return (uint8_t)(seed * 31u + i * 7u + (i >> 9));
}

static void fillPattern(uint8_t *p, uint32_t seed, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = patternByte(seed, i);
}

static void expectPush(uint64_t to, uint64_t from, uint8_t type, uint32_t seed, size_t len)
{
    struct stream *s = &w.streams[to][from];
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = pc_realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (struct expect){.type = type, .seed = seed, .len = len};
}

/* The handler's ctx is the receiving node. */
static void onMessage(void *ctx, uint64_t from, uint8_t type, const void *payload, size_t len)
{
    struct tnode *n = ctx;
    if (w.in_send)
        w.inline_calls++;
    if (from >= 16) {
        w.bad++;
        return;
    }
    struct stream *s = &w.streams[n->id][from];
    if (s->next >= s->n) {
        w.bad++;
        return;
    }
    const struct expect *e = &s->v[s->next++];
    w.delivered++;
    if (e->type != type || e->len != len) {
        w.bad++;
        return;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        if (p[i] != patternByte(e->seed, i)) {
            w.bad++;
            return;
        }
}

static void onLink(void *ctx, uint64_t node, bool up)
{
    struct tnode *n = ctx;
    if (w.in_send)
        w.inline_calls++;
    assert_true(node < 16);
    if (up)
        n->ups[node]++;
    else
        n->downs[node]++;
    assert_true(n->up[node] != up); /* events alternate */
    n->up[node] = up;
}

/* Sends a patterned message and records it as expected when accepted. */
static int sendMsg(int from, uint64_t to, uint8_t type, uint32_t seed, size_t len)
{
    if (len > w.scratch_len) {
        w.scratch = pc_realloc(w.scratch, len);
        w.scratch_len = len;
    }
    fillPattern(w.scratch, seed, len);
    w.in_send = true;
    int rv = peer_send(w.nodes[from].pl, to, type, w.scratch, len);
    w.in_send = false;
    if (rv == 0)
        expectPush(to, w.nodes[from].id, type, seed, len);
    return rv;
}

static int sendShared(int from, uint64_t to, uint8_t type, uint32_t seed, struct pc_rbuf *body)
{
    w.in_send = true;
    int rv = peer_send_shared(w.nodes[from].pl, to, type, body);
    w.in_send = false;
    if (rv == 0)
        expectPush(to, w.nodes[from].id, type, seed, body->len);
    return rv;
}

/* ---- loop helpers ------------------------------------------------------------------------ */

static void tickCb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred holds or ms pass (the tick keeps uv_run returning). */
static bool runUntil(bool (*pred)(void *), void *arg, unsigned ms)
{
    uv_update_time(&w.loop);
    uint64_t end = uv_now(&w.loop) + ms;
    while (!pred(arg)) {
        if (uv_now(&w.loop) >= end)
            return false;
        uv_run(&w.loop, UV_RUN_ONCE);
    }
    return true;
}

static bool allDelivered(void *arg)
{
    (void)arg;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            if (i != PHANTOM_ID && w.streams[i][j].next < w.streams[i][j].n)
                return false;
    return true;
}

static void deliverAndCheck(unsigned ms)
{
    assert_true(runUntil(allDelivered, NULL, ms));
    assert_int_equal(w.bad, 0);
    assert_int_equal(w.inline_calls, 0);
}

static bool allUp(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_NODES; i++)
        for (int j = 0; j < N_NODES; j++)
            if (i != j && !peer_up(w.nodes[i].pl, w.nodes[j].id))
                return false;
    return true;
}

static const struct peer_handlers *handlersFor(struct tnode *n)
{
    static struct peer_handlers h[N_NODES];
    int i = (int)(n - w.nodes);
    h[i] = (struct peer_handlers){.ctx = n, .message = onMessage, .link = onLink};
    return &h[i];
}

static void startNode(struct tnode *n)
{
    struct raft_mux_config mcfg = {.node_id = n->id, .address = n->addr,
                                   .connect_timeout_ms = 500, .preamble_timeout_ms = 500};
    assert_int_equal(raft_mux_create(&w.loop, &mcfg, &n->mux), 0);
    struct peer_addr peers[N_NODES + 1];
    char phantom[32];
    snprintf(phantom, sizeof phantom, "127.0.0.1:%d", w.base_port + 9);
    for (int i = 0; i < N_NODES; i++)
        peers[i] = (struct peer_addr){.id = w.nodes[i].id, .address = w.nodes[i].addr};
    peers[N_NODES] = (struct peer_addr){.id = PHANTOM_ID, .address = phantom};
    struct peer_link_config cfg = {.self_id = n->id, .peers = peers, .n_peers = N_NODES + 1,
                                   .reconnect_ms = RECONNECT_MS,
                                   .silence_down_ms = w.silence_down_ms};
    assert_int_equal(peer_link_start(&w.loop, n->mux, &cfg, handlersFor(n), &n->pl), 0);
    n->pl_closed = n->mux_closed = false;
    memset(n->up, 0, sizeof n->up);
}

static void plClosedCb(void *arg)
{
    ((struct tnode *)arg)->pl_closed = true;
}

static void muxClosedCb(void *arg)
{
    ((struct tnode *)arg)->mux_closed = true;
}

static bool nodeStopped(void *arg)
{
    struct tnode *n = arg;
    return n->pl_closed && n->mux_closed;
}

static bool plStopped(void *arg)
{
    return ((struct tnode *)arg)->pl_closed;
}

static void stopNode(struct tnode *n)
{
    peer_link_close(n->pl, plClosedCb, n);
    assert_false(n->pl_closed); /* never inline */
    assert_true(runUntil(plStopped, n, 3000));
    n->pl = NULL;
    assert_int_equal(raft_mux_close(n->mux, muxClosedCb, n), 0);
    assert_true(runUntil(nodeStopped, n, 3000));
    n->mux = NULL;
}

static int setupWorld(void **state)
{
    (void)state;
    pc_log_init("test", PC_LOG_WARN);
    memset(&w, 0, sizeof w);
    w.base_port = 21000 + (getpid() % 900) * 10;
    if (uv_loop_init(&w.loop) != 0)
        return -1;
    uv_timer_init(&w.loop, &w.tick);
    uv_timer_start(&w.tick, tickCb, 5, 5);
    for (int i = 0; i < N_NODES; i++) {
        struct tnode *n = &w.nodes[i];
        n->id = (uint64_t)i + 1;
        n->port = w.base_port + i;
        snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", n->port);
    }
    return 0;
}

static int teardownWorld(void **state)
{
    (void)state;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            pc_free(w.streams[i][j].v);
    pc_free(w.scratch);
    return 0;
}

/* ---- raw clients: bytes of our choosing on a cluster port ---------------------------------- */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t writes[64];
    unsigned n_writes, done_writes;
    uint8_t out[512];
    char in[64];
    bool connected, eof, closed;
};

static void rawAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct raw *r = h->data;
    (void)suggested;
    *buf = uv_buf_init(r->in, sizeof r->in);
}

static void rawRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (nread < 0) {
        r->eof = true;
        uv_read_stop(s);
    }
}

static void rawWritten(uv_write_t *req, int status)
{
    (void)status;
    ((struct raw *)req->data)->done_writes++;
}

static void rawConnected(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    assert_int_equal(status, 0);
    r->connected = true;
    uv_read_start((uv_stream_t *)&r->tcp, rawAlloc, rawRead);
}

static bool rawConnectedPred(void *arg)
{
    return ((struct raw *)arg)->connected;
}

static bool rawEof(void *arg)
{
    return ((struct raw *)arg)->eof;
}

static bool rawClosed(void *arg)
{
    return ((struct raw *)arg)->closed;
}

static bool rawWritesDone(void *arg)
{
    struct raw *r = arg;
    return r->done_writes == r->n_writes;
}

static void rawCloseCb(uv_handle_t *h)
{
    ((struct raw *)h->data)->closed = true;
}

static void rawConnect(struct raw *r, int port)
{
    struct sockaddr_in sa;
    memset(r, 0, sizeof *r);
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(&w.loop, &r->tcp);
    uv_tcp_nodelay(&r->tcp, 1); /* so that one-byte writes leave as one-byte segments */
    r->tcp.data = r;
    r->connect.data = r;
    assert_int_equal(uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&sa, rawConnected),
                     0);
    assert_true(runUntil(rawConnectedPred, r, 2000));
}

/* Writes bytes as one segment (they are copied to r->out at offset `at`). */
static void rawWrite(struct raw *r, size_t at, const void *bytes, size_t len)
{
    assert_true(at + len <= sizeof r->out && r->n_writes < 64);
    memcpy(r->out + at, bytes, len);
    uv_write_t *req = &r->writes[r->n_writes++];
    req->data = r;
    uv_buf_t b = uv_buf_init((char *)r->out + at, (unsigned)len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&r->tcp, &b, 1, rawWritten), 0);
}

static void rawClose(struct raw *r)
{
    if (!r->closed) {
        uv_close((uv_handle_t *)&r->tcp, rawCloseCb);
        assert_true(runUntil(rawClosed, r, 1000));
    }
}

/* A PEER preamble encoded by hand (the test must not trust the module's encoder). */
static size_t peerPreamble(uint8_t *out, uint64_t sender, const char *addr)
{
    size_t alen = strlen(addr);
    pc_be32_write(out, 0x50434d58u);
    out[4] = 1;
    out[5] = 2;
    out[6] = (uint8_t)(alen >> 8);
    out[7] = (uint8_t)alen;
    pc_be64_write(out + 8, 0);
    pc_be64_write(out + 16, sender);
    memcpy(out + 24, addr, alen);
    return 24 + alen;
}

static size_t frame(uint8_t *out, uint8_t type, uint32_t seed, size_t len)
{
    pc_be32_write(out, (uint32_t)(len + 1));
    out[4] = type;
    fillPattern(out + 5, seed, len);
    return 5 + len;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void linksComeUp(void **state)
{
    (void)state;
    for (int i = 0; i < N_NODES; i++)
        startNode(&w.nodes[i]);
    assert_true(runUntil(allUp, NULL, 3000));
    for (int i = 0; i < N_NODES; i++)
        for (int j = 0; j < N_NODES; j++)
            if (i != j) {
                assert_int_equal(w.nodes[i].ups[w.nodes[j].id], 1);
                assert_int_equal(w.nodes[i].downs[w.nodes[j].id], 0);
            }
    struct peer_link *pl = w.nodes[0].pl;
    assert_int_equal(peer_send(pl, 77, 1, "x", 1), PC_EUNAVAIL); /* unknown */
    assert_int_equal(peer_send(pl, 1, 1, "x", 1), PC_EUNAVAIL);  /* self */
    assert_false(peer_up(pl, PHANTOM_ID));
    assert_false(peer_up(pl, 77));

    /* Bad configurations are refused up front. */
    struct peer_link *bad = NULL;
    struct peer_addr dup[2] = {{2, "127.0.0.1:1"}, {2, "127.0.0.1:2"}};
    struct peer_link_config cfg = {.self_id = 1, .peers = dup, .n_peers = 2};
    assert_int_equal(peer_link_start(&w.loop, w.nodes[0].mux, &cfg, handlersFor(&w.nodes[0]),
                                     &bad), PC_EINVAL);
    cfg.self_id = 0;
    cfg.n_peers = 1;
    assert_int_equal(peer_link_start(&w.loop, w.nodes[0].mux, &cfg, handlersFor(&w.nodes[0]),
                                     &bad), PC_EINVAL);
    assert_null(bad);
}

/* Every node to every other: empty, 1-byte, mid and 1-MiB payloads interleaved with small
 * ones, all arriving in order and intact. */
static void allPairsInOrderAndIntact(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 100, 4095, 4096, 65531, 70000, MIB, 3, 1};
    uint32_t seed = 1;
    struct peer_stats before[N_NODES][N_NODES];
    for (int i = 0; i < N_NODES; i++)
        for (int j = 0; j < N_NODES; j++)
            peer_link_stats(w.nodes[i].pl, w.nodes[j].id, &before[i][j]);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int i = 0; i < N_NODES; i++)
            for (int j = 0; j < N_NODES; j++)
                if (i != j) {
                    assert_int_equal(sendMsg(i, w.nodes[j].id, (uint8_t)(k + 1), seed++,
                                             sizes[k]),
                                     0);
                    assert_int_equal(sendMsg(i, w.nodes[j].id, 200, seed++, 10), 0);
                }
    deliverAndCheck(5000);
    size_t frame_bytes = 0;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        frame_bytes += 5 + sizes[k] + 5 + 10;
    for (int i = 0; i < N_NODES; i++)
        for (int j = 0; j < N_NODES; j++)
            if (i != j) {
                struct peer_stats out, in;
                peer_link_stats(w.nodes[i].pl, w.nodes[j].id, &out);
                peer_link_stats(w.nodes[j].pl, w.nodes[i].id, &in);
                assert_int_equal(out.sent - before[i][j].sent, 22);
                assert_int_equal(out.bytes_out - before[i][j].bytes_out, frame_bytes);
                assert_int_equal(in.received - before[j][i].received, 22);
                assert_int_equal(in.bytes_in - before[j][i].bytes_in, frame_bytes);
                assert_int_equal(out.queued_bytes, 0);
            }
}

/* 100k small messages from node 1 to each of the others, queued in one go (fan-out shape). */
static void burstOf100kSmallMessages(void **state)
{
    (void)state;
    uint64_t d0 = w.delivered;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t k = 0; k < BURST; k++)
        for (int j = 1; j < N_NODES; j++)
            assert_int_equal(sendMsg(0, w.nodes[j].id, 7, k, 8 + k % 33), 0);
    deliverAndCheck(30000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    uint64_t n = w.delivered - d0;
    assert_int_equal(n, (uint64_t)BURST * (N_NODES - 1));
    printf("burst, queued at once: %llu messages in %.3f s = %.0f messages/s\n",
           (unsigned long long)n, s, (double)n / s);

    /* The same while the loop runs: 1000 per pass, so writes overlap with sending. */
    d0 = w.delivered;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t k = 0; k < BURST; k++) {
        for (int j = 1; j < N_NODES; j++)
            assert_int_equal(sendMsg(0, w.nodes[j].id, 7, k, 8 + k % 33), 0);
        if (k % 1000 == 999)
            uv_run(&w.loop, UV_RUN_NOWAIT);
    }
    deliverAndCheck(30000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    n = w.delivered - d0;
    assert_int_equal(n, (uint64_t)BURST * (N_NODES - 1));
    printf("burst, 1000 per loop pass: %llu messages in %.3f s = %.0f messages/s\n",
           (unsigned long long)n, s, (double)n / s);
}

/* One serialised body queued to several nodes: every copy arrives, the reference count falls
 * back to the caller's own once the writes are done. */
static void sharedBodies(void **state)
{
    (void)state;
    struct pc_rbuf *bodies[50];
    for (uint32_t k = 0; k < 50; k++) {
        size_t len = k == 0 ? 0 : (k == 1 ? 300 * 1024 : 17 * k);
        uint8_t *tmp = pc_malloc(len + 1);
        fillPattern(tmp, 5000 + k, len);
        bodies[k] = pc_rbuf_new(tmp, len);
        pc_free(tmp);
        for (int j = 0; j < N_NODES; j++)
            if (j != 1)
                assert_int_equal(sendShared(1, w.nodes[j].id, 9, 5000 + k, bodies[k]), 0);
        /* Interleave copied messages to check order across both kinds. */
        assert_int_equal(sendMsg(1, w.nodes[0].id, 10, 6000 + k, 5), 0);
        assert_int_equal(bodies[k]->refs, 3);
    }
    deliverAndCheck(5000);
    for (int k = 0; k < 50; k++) {
        assert_int_equal(bodies[k]->refs, 1);
        pc_rbuf_unref(bodies[k]);
    }
}

/* The phantom peer never answers: sends to it queue until the bound, then PC_EBUSY. Oversize
 * messages are refused before queueing. */
static void queueBoundGivesBusy(void **state)
{
    (void)state;
    struct peer_link *pl = w.nodes[2].pl;
    uint8_t *big = pc_calloc(1, MIB);
    unsigned accepted = 0;
    int rv;
    while ((rv = peer_send(pl, PHANTOM_ID, 1, big, MIB)) == 0)
        accepted++;
    assert_int_equal(rv, PC_EBUSY);
    assert_int_equal(accepted, 7); /* 8 MiB / (1 MiB + 5) */
    struct peer_stats st;
    peer_link_stats(pl, PHANTOM_ID, &st);
    assert_int_equal(st.dropped_busy, 1);
    assert_int_equal(st.queued_bytes, 7 * (MIB + 5));
    /* Smaller messages still fit in what is left. */
    assert_int_equal(peer_send(pl, PHANTOM_ID, 1, big, 1000), 0);

    /* A frame over max_frame_bytes (4 MiB) could never be received: refused. */
    uint8_t *huge = pc_malloc(4 * MIB);
    assert_int_equal(peer_send(pl, w.nodes[0].id, 1, huge, 4 * MIB), PC_ETOOBIG);
    pc_free(huge);

    /* A live destination drains: the bound only holds while the loop cannot write. */
    for (int k = 0; k < 7; k++)
        assert_int_equal(sendMsg(2, w.nodes[0].id, 3, 900 + (uint32_t)k, MIB), 0);
    assert_int_equal(sendMsg(2, w.nodes[0].id, 3, 999, MIB), PC_EBUSY);
    deliverAndCheck(5000);
    assert_int_equal(sendMsg(2, w.nodes[0].id, 3, 999, MIB), 0);
    deliverAndCheck(5000);
    pc_free(big);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static bool phantomHeard(void *arg)
{
    return peer_silence_ms(((struct tnode *)arg)->pl, PHANTOM_ID) < 100;
}

/* Idle links carry keepalives, so a live peer is never silent for long, while a connection
 * that is up but carries nothing (a raw one posing as the phantom) goes silent. Keepalives
 * are neither delivered nor counted as messages, and nobody else may send type 0. */
static void keepalivesTellLiveFromSilent(void **state)
{
    (void)state;
    struct tnode *n0 = &w.nodes[0];
    deliverAndCheck(5000);
    struct peer_stats before, after;
    peer_link_stats(n0->pl, 2, &before);
    assert_false(runUntil(never, NULL, 1200)); /* idle: only keepalives flow */
    for (int i = 0; i < N_NODES; i++)
        for (int j = 0; j < N_NODES; j++)
            if (i != j)
                assert_true(peer_silence_ms(w.nodes[i].pl, w.nodes[j].id) < 600);
    peer_link_stats(n0->pl, 2, &after);
    assert_true(after.received == before.received && after.sent == before.sent);
    assert_int_equal(peer_send(n0->pl, 2, 0, "x", 1), PC_EINVAL);

    uint8_t buf[128];
    struct raw r;
    rawConnect(&r, n0->port);
    size_t p = peerPreamble(buf, PHANTOM_ID, "127.0.0.1:1");
    pc_be32_write(buf + p, 1);
    buf[p + 4] = 0; /* a keepalive */
    rawWrite(&r, 0, buf, p + 5);
    assert_true(runUntil(phantomHeard, n0, 2000));
    assert_false(runUntil(never, NULL, 700));
    assert_true(peer_silence_ms(n0->pl, PHANTOM_ID) >= 600);
    assert_false(r.eof); /* still connected: silent, not gone */
    rawClose(&r);
    deliverAndCheck(1000);
}

/* A listener posing as the phantom's cluster port: accepts, reads and discards. */
struct sink {
    uv_tcp_t listener;
    uv_tcp_t conns[8];
    unsigned n_conns, closed;
    char buf[4096];
};

static void sinkAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct sink *k = h->data;
    *buf = uv_buf_init(k->buf, sizeof k->buf);
}

static void sinkRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        uv_read_stop(s);
}

static void sinkConnection(uv_stream_t *server, int status)
{
    struct sink *k = server->data;
    if (status != 0 || k->n_conns == 8)
        return;
    uv_tcp_t *c = &k->conns[k->n_conns];
    uv_tcp_init(&w.loop, c);
    c->data = k;
    if (uv_accept(server, (uv_stream_t *)c) == 0) {
        k->n_conns++;
        uv_read_start((uv_stream_t *)c, sinkAlloc, sinkRead);
    } else {
        uv_close((uv_handle_t *)c, NULL);
    }
}

static void sinkClosed(uv_handle_t *h)
{
    ((struct sink *)h->data)->closed++;
}

static bool sinkAllClosed(void *arg)
{
    struct sink *k = arg;
    return k->closed == k->n_conns + 1;
}

static bool phantomUp(void *arg)
{
    return ((struct tnode *)arg)->up[PHANTOM_ID];
}

static bool phantomDown(void *arg)
{
    return !((struct tnode *)arg)->up[PHANTOM_ID];
}

/* With silence_down_ms set, a link to a peer that spoke while the link was up and then fell
 * silent goes down by itself (and is redialled), long before TCP would give up; a peer never
 * heard since the link came up is left alone. */
static void silentPeer_linkGoesDownEarly(void **state)
{
    (void)state;
    struct tnode *n0 = &w.nodes[0];
    stopNode(n0);
    w.silence_down_ms = 600;
    startNode(n0);
    assert_true(runUntil(allUp, NULL, 3000));
    assert_false(runUntil(never, NULL, 600)); /* the live peers have been heard */

    /* This node's own stall (the loop blocked 1.5 s, as a SIGSTOP would) is no sign that
     * the peers went silent: their keepalives wait in the sockets. */
    unsigned downs2 = n0->downs[2], downs3 = n0->downs[3];
    uv_sleep(1500);
    assert_false(runUntil(never, NULL, 1000));
    assert_int_equal(n0->downs[2], downs2);
    assert_int_equal(n0->downs[3], downs3);

    struct sink k = {0};
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", w.base_port + 9, &sa);
    uv_tcp_init(&w.loop, &k.listener);
    k.listener.data = &k;
    assert_int_equal(uv_tcp_bind(&k.listener, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&k.listener, 8, sinkConnection), 0);
    assert_true(runUntil(phantomUp, n0, 4000)); /* node 1 dialled the sink */

    /* Never heard since it came up: stays up. */
    assert_false(runUntil(phantomDown, n0, 1200));
    struct peer_stats st;
    peer_link_stats(n0->pl, PHANTOM_ID, &st);
    assert_int_equal(st.silence_downs, 0);

    /* Heard once (a keepalive on a connection posing as the phantom), then silent. */
    uint8_t buf[128];
    struct raw r;
    rawConnect(&r, n0->port);
    size_t p = peerPreamble(buf, PHANTOM_ID, "127.0.0.1:1");
    pc_be32_write(buf + p, 1);
    buf[p + 4] = 0;
    rawWrite(&r, 0, buf, p + 5);
    assert_true(runUntil(phantomHeard, n0, 2000));
    assert_true(runUntil(phantomDown, n0, 2000));
    assert_true(peer_silence_ms(n0->pl, PHANTOM_ID) >= 600);
    peer_link_stats(n0->pl, PHANTOM_ID, &st);
    assert_int_equal(st.silence_downs, 1);
    assert_true(runUntil(phantomUp, n0, 3000)); /* redialled */

    rawClose(&r);
    for (unsigned i = 0; i < k.n_conns; i++)
        uv_close((uv_handle_t *)&k.conns[i], sinkClosed);
    uv_close((uv_handle_t *)&k.listener, sinkClosed);
    assert_true(runUntil(sinkAllClosed, &k, 1000));
    stopNode(n0);
    w.silence_down_ms = 0;
    memset(n0->up, 0, sizeof n0->up);
    startNode(n0);
    assert_true(runUntil(allUp, NULL, 3000));
    deliverAndCheck(1000);
}

/* Node 3's link to node 1 went down and is up again. */
static bool downAndUp(void *arg)
{
    (void)arg;
    return w.nodes[2].downs[1] >= 1 && peer_up(w.nodes[2].pl, 1);
}

/* Frames written one byte at a time by a raw client posing as the phantom peer arrive whole;
 * an oversize or empty frame closes the connection (after the good frames before it), and a
 * connection posing as a live node replaces that node's own, whose link then recovers. */
static void fragmentationAndBadFrames(void **state)
{
    (void)state;
    struct tnode *n0 = &w.nodes[0];
    uint8_t buf[512];

    struct raw r;
    rawConnect(&r, n0->port);
    size_t p = peerPreamble(buf, PHANTOM_ID, "127.0.0.1:1");
    size_t f1 = frame(buf + p, 4, 111, 20);
    size_t f2 = frame(buf + p + f1, 5, 112, 0);
    size_t total = p + f1 + f2;
    rawWrite(&r, 0, buf, p);
    assert_true(runUntil(rawWritesDone, &r, 1000));
    uv_sleep(20); /* preamble handled before the frames start */
    expectPush(n0->id, PHANTOM_ID, 4, 111, 20);
    expectPush(n0->id, PHANTOM_ID, 5, 112, 0);
    for (size_t i = p; i < total; i++) {
        rawWrite(&r, i, buf + i, 1);
        assert_true(runUntil(rawWritesDone, &r, 1000));
        uv_run(&w.loop, UV_RUN_NOWAIT);
    }
    deliverAndCheck(2000);
    struct peer_stats st;
    peer_link_stats(n0->pl, PHANTOM_ID, &st);
    assert_int_equal(st.received, 2);
    assert_false(r.eof);

    /* Zero length: closed. */
    uint8_t zero[4] = {0, 0, 0, 0};
    rawWrite(&r, 0, zero, 4);
    assert_true(runUntil(rawEof, &r, 2000));
    rawClose(&r);
    peer_link_stats(n0->pl, PHANTOM_ID, &st);
    assert_int_equal(st.bad_frames, 1);

    /* A good frame then an oversize length, in the same segment as the preamble (so they
     * reach the link with the accepted connection), posing as node 3. */
    rawConnect(&r, n0->port);
    p = peerPreamble(buf, 3, "127.0.0.1:1");
    f1 = frame(buf + p, 6, 113, 30);
    pc_be32_write(buf + p + f1, 4 * (uint32_t)MIB + 2);
    expectPush(n0->id, 3, 6, 113, 30);
    rawWrite(&r, 0, buf, p + f1 + 4);
    assert_true(runUntil(rawEof, &r, 2000));
    rawClose(&r);
    deliverAndCheck(2000);
    peer_link_stats(n0->pl, 3, &st);
    assert_int_equal(st.bad_frames, 1);

    /* Node 3's own connection to node 1 was replaced, so node 3 saw its link go down; it
     * redials, and messages flow again. */
    assert_true(runUntil(downAndUp, NULL, 3000));
    assert_int_equal(w.nodes[2].ups[1], 2);
    for (uint32_t k = 0; k < 100; k++)
        assert_int_equal(sendMsg(2, n0->id, 8, 7000 + k, k), 0);
    deliverAndCheck(2000);
    peer_link_stats(w.nodes[2].pl, n0->id, &st);
    assert_int_equal(st.reconnects, 1);
}

static bool othersSeeDown(void *arg)
{
    (void)arg;
    return w.nodes[0].downs[3] >= 1 && w.nodes[1].downs[3] >= 1;
}

/* Node 3 stops (link and cluster port) and starts again on the same port: the others see
 * their links go down then up, what they queued meanwhile arrives, and traffic flows both
 * ways again. */
static void nodeRestart(void **state)
{
    (void)state;
    struct tnode *n3 = &w.nodes[2];
    unsigned downs0 = w.nodes[0].downs[3], ups0 = w.nodes[0].ups[3];
    /* Traffic towards node 3 right before it goes. */
    for (uint32_t k = 0; k < 10; k++)
        assert_int_equal(sendMsg(0, n3->id, 1, 8000 + k, 100), 0);
    deliverAndCheck(2000);
    stopNode(n3);
    assert_true(runUntil(othersSeeDown, NULL, 3000));
    assert_int_equal(w.nodes[0].downs[3], downs0 + 1);
    assert_false(peer_up(w.nodes[0].pl, 3));

    /* Queued while reconnecting, delivered once node 3 is back. */
    for (uint32_t k = 0; k < 20; k++)
        assert_int_equal(sendMsg(0, n3->id, 2, 8100 + k, 50 + k), 0);
    uv_sleep(50);
    uv_run(&w.loop, UV_RUN_NOWAIT);

    memset(n3->ups, 0, sizeof n3->ups);
    memset(n3->downs, 0, sizeof n3->downs);
    startNode(n3);
    assert_true(runUntil(allUp, NULL, 5000));
    assert_int_equal(w.nodes[0].ups[3], ups0 + 1);
    assert_int_equal(w.nodes[1].ups[3], w.nodes[1].downs[3] + 1);
    for (uint32_t k = 0; k < 20; k++)
        for (int i = 0; i < N_NODES; i++)
            for (int j = 0; j < N_NODES; j++)
                if (i != j)
                    assert_int_equal(sendMsg(i, w.nodes[j].id, 3, 8200 + k, 10 * k), 0);
    deliverAndCheck(3000);
}

static void tickClosed(uv_handle_t *h)
{
    (void)h;
}

static void shutdownIsClean(void **state)
{
    (void)state;
    /* Something still queued (the phantom) and something just sent: both dropped cleanly. */
    assert_int_equal(sendMsg(0, 2, 1, 1, 1000), 0);
    for (int i = 0; i < N_NODES; i++)
        peer_link_close(w.nodes[i].pl, plClosedCb, &w.nodes[i]);
    for (int i = 0; i < N_NODES; i++)
        assert_false(w.nodes[i].pl_closed);
    /* The muxes may close only once the links are gone (they hand out the connections). */
    for (int i = 0; i < N_NODES; i++)
        assert_true(runUntil(plStopped, &w.nodes[i], 3000));
    for (int i = 0; i < N_NODES; i++)
        assert_int_equal(raft_mux_close(w.nodes[i].mux, muxClosedCb, &w.nodes[i]), 0);
    uv_close((uv_handle_t *)&w.tick, tickClosed);
    assert_int_equal(uv_run(&w.loop, UV_RUN_DEFAULT), 0);
    for (int i = 0; i < N_NODES; i++)
        assert_true(w.nodes[i].mux_closed);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    assert_int_equal(w.bad, 0);
    assert_int_equal(w.inline_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linksComeUp),
        cmocka_unit_test(allPairsInOrderAndIntact),
        cmocka_unit_test(burstOf100kSmallMessages),
        cmocka_unit_test(sharedBodies),
        cmocka_unit_test(queueBoundGivesBusy),
        cmocka_unit_test(keepalivesTellLiveFromSilent),
        cmocka_unit_test(fragmentationAndBadFrames),
        cmocka_unit_test(nodeRestart),
        cmocka_unit_test(silentPeer_linkGoesDownEarly), /* restarts node 1: after the counts */
        cmocka_unit_test(shutdownIsClean),
    };
    return cmocka_run_group_tests(tests, setupWorld, teardownWorld);
}
