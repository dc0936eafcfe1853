/* Unit tests for cluster/raft_mux: three nodes in one process and one loop, each with its
 * own cluster port, two real raft groups (raft_uv on temp dirs) each, the peer link, and
 * the handling of junk on the port. The tests run in order on one shared world; the last
 * one shuts everything down and checks that uv_loop_close succeeds. The whole group runs
 * twice: plain TCP, then mutual TLS with a test pool CA, where further tests check every
 * refusal (no certificate, another CA, the wrong node, an unknown node, a plain node). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <signal.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster_tls.h"
#include "cluster/raft_mux.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "tests/lib/tl_certs.h"

#define N_NODES 3
#define N_GROUPS 2
#define N_ENTRIES 300
#define WINDOW 16
#define SEGMENT_SIZE (256 * 1024)
#define TIMEOUT_MS 500 /* the muxes' connect and preamble timeouts */

static const uint64_t group_ids[N_GROUPS] = {0, 42}; /* metadata-like 0 and a shard */

struct tnode;

struct tgroup {
    struct tnode *node;
    int gi;
    struct raft raft;
    struct raft_io io;
    struct raft_uv_transport tp;
    struct raft_fsm fsm;
    char dir[300];
    uint64_t *applied; /* FSM state: the values in apply order */
    size_t n_applied, cap;
    unsigned bad; /* malformed entries seen by apply */
    bool closed;
};

struct tnode {
    uint64_t id;
    int port;
    char addr[32];
    struct raft_mux *mux;
    struct tgroup groups[N_GROUPS];
};

/* Proposals of one group: values 1, 2, ... submitted to whoever leads. */
struct tprop_state {
    bool active;
    uint64_t target;  /* stop once this many are acknowledged */
    uint64_t next;    /* next value */
    unsigned inflight;
    uint64_t acked, failed;
};

struct tprop {
    struct raft_apply req;
    int gi;
};

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    char root[256];
    int base_port;
    struct tnode nodes[N_NODES];
    struct tprop_state prop[N_GROUPS];
    int groups_closed;
    int muxes_closed;
    bool started;
    bool tls;            /* this round runs mutual TLS */
    char pki[300];       /* TLS: ca.pem, node<i>.pem/.key, and the bad ones */
    struct raft_mux *extra[8]; /* TLS refusal tests: muxes of would-be nodes */
    int n_extra;
} w;

/* ---- FSM --------------------------------------------------------------------------------
 * Entry: u32 real length | u32 0 | u64 value | (value % 13) filler bytes, padded to a
 * multiple of 8 (libraft drops a segment with unpadded entries on restart). */

static size_t entryLen(uint64_t value)
{
    size_t real = 16 + value % 13;
    return (real + 7) & ~(size_t)7;
}

static int fsmApply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct tgroup *g = fsm->data;
    const uint8_t *p = buf->base;
    *result = NULL;
    if (buf->len < 16 || buf->len % 8 != 0) {
        g->bad++;
        return 0;
    }
    uint32_t real = pc_be32_read(p);
    uint64_t value = pc_be64_read(p + 8);
    if (real != 16 + value % 13 || entryLen(value) != buf->len) {
        g->bad++;
        return 0;
    }
    for (size_t i = 16; i < real; i++)
        if (p[i] != (uint8_t)value)
            g->bad++;
    if (g->n_applied == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->applied = pc_realloc(g->applied, g->cap * sizeof *g->applied);
    }
    g->applied[g->n_applied++] = value;
    return 0;
}

static int fsmSnapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
    struct tgroup *g = fsm->data;
    /* fsm version 2 without snapshot_finalize: raft owns the array and the buffers. */
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL)
        return RAFT_NOMEM;
    (*bufs)[0].len = 8 + g->n_applied * 8;
    (*bufs)[0].base = raft_malloc((*bufs)[0].len);
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    uint8_t *p = (*bufs)[0].base;
    pc_be64_write(p, g->n_applied);
    for (size_t i = 0; i < g->n_applied; i++)
        pc_be64_write(p + 8 + 8 * i, g->applied[i]);
    *n = 1;
    return 0;
}

static int fsmRestore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct tgroup *g = fsm->data;
    const uint8_t *p = buf->base;
    if (buf->len < 8 || buf->len != 8 + pc_be64_read(p) * 8)
        return RAFT_MALFORMED; /* raft frees buf on error */
    g->n_applied = g->cap = pc_be64_read(p);
    g->applied = pc_realloc(g->applied, (g->cap ? g->cap : 1) * sizeof *g->applied);
    for (size_t i = 0; i < g->n_applied; i++)
        g->applied[i] = pc_be64_read(p + 8 + 8 * i);
    raft_free(buf->base); /* success: the FSM owns it */
    return 0;
}

/* ---- proposer (runs from the tick timer: never call into raft from a raft callback) ---- */

static void applyCb(struct raft_apply *req, int status, void *result)
{
    struct tprop *tp = (struct tprop *)req;
    (void)result;
    w.prop[tp->gi].inflight--;
    if (status == 0)
        w.prop[tp->gi].acked++;
    else
        w.prop[tp->gi].failed++; /* LEADERSHIPLOST: unknown outcome, not re-proposed */
    pc_free(tp);
}

static struct tgroup *leaderOf(int gi)
{
    for (int i = 0; i < N_NODES; i++)
        if (raft_state(&w.nodes[i].groups[gi].raft) == RAFT_LEADER)
            return &w.nodes[i].groups[gi];
    return NULL;
}

static void propose(int gi)
{
    struct tprop_state *ps = &w.prop[gi];
    struct tgroup *g = leaderOf(gi);
    if (g == NULL)
        return;
    while (ps->active && ps->inflight < WINDOW && ps->acked + ps->inflight < ps->target) {
        uint64_t value = ps->next;
        size_t len = entryLen(value);
        uint8_t *p = raft_malloc(len);
        assert_non_null(p);
        memset(p, 0, len);
        pc_be32_write(p, (uint32_t)(16 + value % 13));
        pc_be64_write(p + 8, value);
        memset(p + 16, (uint8_t)value, value % 13);
        struct raft_buffer buf = {.base = p, .len = len};
        struct tprop *tp = pc_calloc(1, sizeof *tp);
        tp->gi = gi;
        int rv = raft_apply(&g->raft, &tp->req, &buf, 1, applyCb);
        if (rv != 0) {
            /* NOTLEADER/NOSPACE/CANTCHANGE fail before raft takes the buffer. */
            assert_true(rv == RAFT_NOTLEADER || rv == RAFT_NOSPACE || rv == RAFT_CANTCHANGE);
            raft_free(p);
            pc_free(tp);
            return;
        }
        ps->next++;
        ps->inflight++;
    }
}

static void tickCb(uv_timer_t *t)
{
    (void)t;
    for (int gi = 0; gi < N_GROUPS; gi++)
        if (w.prop[gi].active)
            propose(gi);
}

/* Runs the loop until pred holds or ms pass (the 2 ms tick keeps uv_run returning). */
static bool runUntil(bool (*pred)(void *), void *arg, unsigned ms)
{
    uint64_t end = uv_now(&w.loop) + ms;
    while (!pred(arg)) {
        if (uv_now(&w.loop) >= end)
            return false;
        uv_run(&w.loop, UV_RUN_ONCE);
    }
    return true;
}

static bool allHaveLeaders(void *arg)
{
    (void)arg;
    for (int gi = 0; gi < N_GROUPS; gi++)
        if (leaderOf(gi) == NULL)
            return false;
    return true;
}

static bool proposalsDone(void *arg)
{
    (void)arg;
    for (int gi = 0; gi < N_GROUPS; gi++)
        if (w.prop[gi].acked < w.prop[gi].target || w.prop[gi].inflight > 0)
            return false;
    return true;
}

static bool fsmsConverged(void *arg)
{
    (void)arg;
    for (int gi = 0; gi < N_GROUPS; gi++)
        for (int i = 1; i < N_NODES; i++)
            if (w.nodes[i].groups[gi].n_applied != w.nodes[0].groups[gi].n_applied ||
                w.nodes[0].groups[gi].n_applied < w.prop[gi].acked)
                return false;
    return true;
}

/* Proposes `count` more entries per group and checks that every node applied the same
 * sequence, in proposal order, with nothing malformed. */
static void replicateAndCheck(uint64_t count)
{
    for (int gi = 0; gi < N_GROUPS; gi++) {
        w.prop[gi].active = true;
        w.prop[gi].target = w.prop[gi].acked + count;
        if (w.prop[gi].next == 0)
            w.prop[gi].next = 1;
    }
    assert_true(runUntil(proposalsDone, NULL, 10000));
    assert_true(runUntil(fsmsConverged, NULL, 5000));
    for (int gi = 0; gi < N_GROUPS; gi++) {
        w.prop[gi].active = false;
        struct tgroup *g0 = &w.nodes[0].groups[gi];
        if (w.prop[gi].failed == 0)
            assert_int_equal(g0->n_applied, w.prop[gi].acked);
        for (size_t k = 1; k < g0->n_applied; k++)
            assert_true(g0->applied[k] > g0->applied[k - 1]);
        for (int i = 0; i < N_NODES; i++) {
            struct tgroup *g = &w.nodes[i].groups[gi];
            assert_int_equal(g->bad, 0);
            assert_int_equal(g->n_applied, g0->n_applied);
            assert_memory_equal(g->applied, g0->applied, g0->n_applied * sizeof *g->applied);
        }
    }
}

/* ---- world set-up ------------------------------------------------------------------------ */

static void startGroup(struct tnode *n, int gi)
{
    struct tgroup *g = &n->groups[gi];
    g->node = n;
    g->gi = gi;
    snprintf(g->dir, sizeof g->dir, "%s/n%llu-g%llu", w.root, (unsigned long long)n->id,
             (unsigned long long)group_ids[gi]);
    assert_int_equal(mkdir(g->dir, 0700), 0);
    assert_int_equal(raft_mux_transport_init(&g->tp, n->mux, group_ids[gi]), 0);
    assert_int_equal(raft_uv_init(&g->io, &w.loop, g->dir, &g->tp), 0);
    raft_uv_set_segment_size(&g->io, SEGMENT_SIZE);
    raft_uv_set_connect_retry_delay(&g->io, 50);
    g->fsm = (struct raft_fsm){.version = 2, .data = g, .apply = fsmApply,
                               .snapshot = fsmSnapshot, .restore = fsmRestore};
    assert_int_equal(raft_init(&g->raft, &g->io, &g->fsm, n->id, n->addr), 0);
    g->raft.data = g;
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (int i = 0; i < N_NODES; i++)
        assert_int_equal(raft_configuration_add(&conf, w.nodes[i].id, w.nodes[i].addr,
                                                RAFT_VOTER), 0);
    assert_int_equal(raft_bootstrap(&g->raft, &conf), 0);
    raft_configuration_close(&conf);
    raft_set_election_timeout(&g->raft, 400);
    raft_set_heartbeat_timeout(&g->raft, 50);
    raft_set_pre_vote(&g->raft, true);
    /* 0.22.1 refuses every apply with RAFT_NOSPACE while the prepared segments hold less
     * than capacity_threshold KiB (default 4 MiB): with small segments, lower it. */
    raft_set_capacity_threshold(&g->raft, SEGMENT_SIZE / 1024);
    assert_int_equal(raft_start(&g->raft), 0);
}

/* The world's pool CA and one certificate per node (TLS round). */
static SSL_CTX *nodeContext(uint64_t id)
{
    char ca[400], cert[400], key[400], err[512];
    snprintf(ca, sizeof ca, "%s/ca.pem", w.pki);
    snprintf(cert, sizeof cert, "%s/node%llu.pem", w.pki, (unsigned long long)id);
    snprintf(key, sizeof key, "%s/node%llu.key", w.pki, (unsigned long long)id);
    SSL_CTX *ctx = NULL;
    if (cluster_tls_context(ca, cert, key, id, &ctx, err, sizeof err) != 0)
        fail_msg("node %llu: %s", (unsigned long long)id, err);
    return ctx;
}

static int setupWorldMode(bool tls)
{
    pc_log_init("test", PC_LOG_WARN);
    signal(SIGPIPE, SIG_IGN); /* as pchatd: a write to a closed stream fails, never kills */
    memset(&w, 0, sizeof w);
    w.tls = tls;
    const char *tmp = getenv("TMPDIR");
    snprintf(w.root, sizeof w.root, "%s/test_raft_mux.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(w.root) == NULL)
        return -1;
    /* Each round its own ports: the first round's sockets may linger in TIME_WAIT. */
    w.base_port = 20000 + (getpid() % 300) * 40 + (tls ? 20 : 0); /* below the ephemeral range */
    if (uv_loop_init(&w.loop) != 0)
        return -1;
    if (tls) {
        snprintf(w.pki, sizeof w.pki, "%s/pki", w.root);
        mkdir(w.pki, 0700);
        char path[400], key[400];
        snprintf(path, sizeof path, "%s/ca.pem", w.pki);
        struct tl_ca *ca = tl_ca_new("test pool CA", path);
        for (int i = 1; i <= 9; i++) {
            char cn[32];
            snprintf(cn, sizeof cn, "pchat-node-%d", i);
            snprintf(path, sizeof path, "%s/node%d.pem", w.pki, i);
            snprintf(key, sizeof key, "%s/node%d.key", w.pki, i);
            tl_cert_issue(ca, cn, path, key);
        }
        snprintf(path, sizeof path, "%s/noname.pem", w.pki);
        snprintf(key, sizeof key, "%s/noname.key", w.pki);
        tl_cert_issue(ca, "somebody", path, key);
        tl_ca_free(ca);
        snprintf(path, sizeof path, "%s/other-ca.pem", w.pki);
        struct tl_ca *other = tl_ca_new("another CA", path);
        snprintf(path, sizeof path, "%s/other4.pem", w.pki);
        snprintf(key, sizeof key, "%s/other4.key", w.pki);
        tl_cert_issue(other, "pchat-node-4", path, key);
        tl_ca_free(other);
    }
    uv_timer_init(&w.loop, &w.tick);
    uv_timer_start(&w.tick, tickCb, 2, 2);
    for (int i = 0; i < N_NODES; i++) {
        struct tnode *n = &w.nodes[i];
        n->id = (uint64_t)i + 1;
        n->port = w.base_port + i;
        snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", n->port);
        SSL_CTX *ctx = tls ? nodeContext(n->id) : NULL;
        struct raft_mux_config cfg = {.node_id = n->id, .address = n->addr,
                                      .connect_timeout_ms = TIMEOUT_MS,
                                      .preamble_timeout_ms = TIMEOUT_MS, .tls = ctx};
        int rv = raft_mux_create(&w.loop, &cfg, &n->mux);
        SSL_CTX_free(ctx); /* the mux keeps its own reference */
        if (rv != 0)
            return -1;
    }
    return 0;
}

static int setupWorld(void **state)
{
    (void)state;
    return setupWorldMode(false);
}

static int setupWorldTls(void **state)
{
    (void)state;
    return setupWorldMode(true);
}

static int rmEntry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardownWorld(void **state)
{
    (void)state;
    for (int i = 0; i < N_NODES; i++)
        for (int gi = 0; gi < N_GROUPS; gi++)
            pc_free(w.nodes[i].groups[gi].applied);
    if (w.root[0] != '\0')
        nftw(w.root, rmEntry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* ---- raw clients: speak bytes of our choosing to a cluster port ---------------------------- */

struct raw {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uint8_t out[512];
    size_t out_len;
    char in[256];
    size_t in_len;
    bool connected, eof, closed;
    uint64_t t_eof;
};

static void rawAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct raw *r = h->data;
    (void)suggested;
    *buf = uv_buf_init(r->in + r->in_len, (unsigned)(sizeof r->in - r->in_len));
}

static void rawRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (nread > 0)
        r->in_len += (size_t)nread;
    else if (nread < 0) {
        r->eof = true;
        r->t_eof = uv_now(&w.loop);
        uv_read_stop(s);
    }
}

static void rawWritten(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void rawConnected(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    assert_int_equal(status, 0);
    r->connected = true;
    if (r->out_len > 0) {
        uv_buf_t b = uv_buf_init((char *)r->out, (unsigned)r->out_len);
        assert_int_equal(uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, rawWritten), 0);
    }
    uv_read_start((uv_stream_t *)&r->tcp, rawAlloc, rawRead);
}

static void rawClosed(uv_handle_t *h)
{
    ((struct raw *)h->data)->closed = true;
}

static void rawStart(struct raw *r, int port, const void *bytes, size_t len)
{
    struct sockaddr_in sa;
    memset(r, 0, sizeof *r);
    assert_true(len <= sizeof r->out);
    memcpy(r->out, bytes, len);
    r->out_len = len;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_init(&w.loop, &r->tcp);
    r->tcp.data = r;
    r->connect.data = r;
    assert_int_equal(uv_tcp_connect(&r->connect, &r->tcp, (struct sockaddr *)&sa, rawConnected),
                     0);
}

static bool rawEof(void *arg)
{
    return ((struct raw *)arg)->eof;
}

static bool rawHasEleven(void *arg)
{
    struct raw *r = arg;
    return r->in_len >= 11 || r->eof;
}

static bool rawClosedPred(void *arg)
{
    return ((struct raw *)arg)->closed;
}

static void rawClose(struct raw *r)
{
    uv_close((uv_handle_t *)&r->tcp, rawClosed);
    assert_true(runUntil(rawClosedPred, r, 1000));
}

/* Encodes a preamble by hand (the test must not trust the module's encoder). */
static size_t preamble(uint8_t *out, uint32_t magic, uint8_t version, uint8_t kind,
                       uint64_t group, uint64_t sender, const char *addr)
{
    size_t alen = strlen(addr);
    pc_be32_write(out, magic);
    out[4] = version;
    out[5] = kind;
    out[6] = (uint8_t)(alen >> 8);
    out[7] = (uint8_t)alen;
    pc_be64_write(out + 8, group);
    pc_be64_write(out + 16, sender);
    memcpy(out + 24, addr, alen);
    return 24 + alen;
}

/* ---- peer link: an echo server on every node ---------------------------------------------- */

/* A served connection: lines in, "echo:<line>" out. */
struct echo_conn {
    uv_stream_t *tcp;
    char buf[4096];
    size_t len;
    uv_write_t write;
    char out[4200];
};

static struct {
    unsigned accepted;
    uint64_t last_node_id;
    char last_address[64];
    size_t last_early_bytes;
    bool last_nodelay;
    unsigned closed;
} echo;

/* Plain mode: the consumer gets the TCP socket itself, and it must have TCP_NODELAY. TLS
 * mode: it gets the plaintext end of a socketpair (the real socket is the TLS pipe's). */
static bool nodelayOn(uv_stream_t *tcp)
{
    if (w.tls)
        return tcp->type == UV_NAMED_PIPE;
    uv_os_fd_t fd;
    int on = 0;
    socklen_t len = sizeof on;
    if (uv_fileno((uv_handle_t *)tcp, &fd) != 0)
        return false;
    return getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on != 0;
}

static void echoClosed(uv_handle_t *h)
{
    pc_free(h->data);
    echo.closed++;
    raft_mux_handle_free(h);
}

static void echoWritten(uv_write_t *req, int status)
{
    (void)req;
    (void)status;
}

static void echoConsume(struct echo_conn *c)
{
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
        size_t line = (size_t)(nl - c->buf) + 1;
        int n = snprintf(c->out, sizeof c->out, "echo:%.*s", (int)line, c->buf);
        uv_buf_t b = uv_buf_init(c->out, (unsigned)n);
        /* One outstanding write per connection is enough for these tests. */
        assert_int_equal(uv_write(&c->write, c->tcp, &b, 1, echoWritten), 0);
        memmove(c->buf, c->buf + line, c->len - line);
        c->len -= line;
    }
}

static void echoAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct echo_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void echoRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct echo_conn *c = s->data;
    (void)buf;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, echoClosed);
        return;
    }
    c->len += (size_t)nread;
    echoConsume(c);
}

static void echoAccept(void *arg, const struct raft_mux_peer_accept *acc)
{
    (void)arg;
    echo.accepted++;
    echo.last_node_id = acc->node_id;
    snprintf(echo.last_address, sizeof echo.last_address, "%s", acc->address);
    echo.last_early_bytes = acc->len;
    echo.last_nodelay = nodelayOn(acc->stream);
    assert_null(acc->stream->data);
    struct echo_conn *c = pc_calloc(1, sizeof *c);
    c->tcp = acc->stream;
    c->tcp->data = c;
    assert_true(acc->len <= sizeof c->buf);
    memcpy(c->buf, acc->data, acc->len);
    c->len = acc->len;
    echoConsume(c);
    assert_int_equal(uv_read_start(c->tcp, echoAlloc, echoRead), 0);
}

/* The dialling side of a peer link. */
struct client {
    struct raft_mux_peer_connect req;
    bool done;
    int status;
    uv_stream_t *tcp;
    uv_write_t write;
    char in[4200];
    size_t in_len;
    bool nodelay;
};

static void clientConnected(struct raft_mux_peer_connect *req, uv_stream_t *tcp, int status)
{
    struct client *c = req->data;
    assert_false(c->done); /* exactly once */
    assert_null(req->priv_);
    c->done = true;
    c->status = status;
    c->tcp = tcp;
    if (status == 0) {
        assert_non_null(tcp);
        c->nodelay = nodelayOn(tcp);
        tcp->data = c;
    } else {
        assert_null(tcp);
    }
}

static bool clientDone(void *arg)
{
    return ((struct client *)arg)->done;
}

static void clientAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void clientRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = s->data;
    (void)buf;
    if (nread > 0)
        c->in_len += (size_t)nread;
}

struct reply_wait {
    struct client *c;
    size_t want;
};

static bool replyComplete(void *arg)
{
    struct reply_wait *rw = arg;
    return rw->c->in_len >= rw->want;
}

static bool echoClosedAtLeast(void *arg)
{
    return echo.closed >= *(unsigned *)arg;
}

static void clientClosed(uv_handle_t *h)
{
    ((struct client *)h->data)->tcp = NULL;
    raft_mux_handle_free(h);
}

static bool clientTcpGone(void *arg)
{
    return ((struct client *)arg)->tcp == NULL;
}

/* Node `from` dials node `to`, sends a line, gets it echoed, closes; both sides checked. */
static void peerRoundTrip(int from, int to)
{
    struct client c = {0};
    c.req.data = &c;
    unsigned accepted0 = echo.accepted, closed0 = echo.closed;
    assert_int_equal(raft_mux_peer_connect(w.nodes[from].mux, &c.req, w.nodes[to].id,
                                           w.nodes[to].addr, clientConnected), 0);
    assert_false(c.done); /* never inside the call */
    assert_true(runUntil(clientDone, &c, 2000));
    assert_int_equal(c.status, 0);
    assert_true(c.nodelay);

    char line[1500];
    memset(line, 'a' + from, sizeof line - 1);
    line[sizeof line - 1] = '\n';
    uv_buf_t b = uv_buf_init(line, sizeof line);
    assert_int_equal(uv_write(&c.write, c.tcp, &b, 1, echoWritten), 0);
    assert_int_equal(uv_read_start(c.tcp, clientAlloc, clientRead), 0);
    struct reply_wait rw = {&c, 5 + sizeof line};
    assert_true(runUntil(replyComplete, &rw, 2000));
    assert_int_equal(c.in_len, 5 + sizeof line);
    assert_memory_equal(c.in, "echo:", 5);
    assert_memory_equal(c.in + 5, line, sizeof line);

    assert_int_equal(echo.accepted, accepted0 + 1);
    assert_int_equal(echo.last_node_id, w.nodes[from].id);
    assert_string_equal(echo.last_address, w.nodes[from].addr);
    assert_true(echo.last_nodelay);

    uv_close((uv_handle_t *)c.tcp, clientClosed);
    assert_true(runUntil(clientTcpGone, &c, 1000));
    unsigned want = closed0 + 1;
    assert_true(runUntil(echoClosedAtLeast, &want, 2000)); /* server saw EOF and closed */
}

/* ---- tests ------------------------------------------------------------------------------- */

static void raftGroupsElectAndReplicate(void **state)
{
    (void)state;
    for (int i = 0; i < N_NODES; i++)
        for (int gi = 0; gi < N_GROUPS; gi++)
            startGroup(&w.nodes[i], gi);
    w.started = true;
    /* A second transport for a group id already on this mux is refused. */
    struct raft_uv_transport dup;
    assert_int_equal(raft_mux_transport_init(&dup, w.nodes[0].mux, group_ids[1]), PC_EEXIST);

    assert_true(runUntil(allHaveLeaders, NULL, 8000));
    replicateAndCheck(N_ENTRIES);
    for (int i = 0; i < N_NODES; i++) {
        const struct raft_mux_stats *st = raft_mux_stats(w.nodes[i].mux);
        /* Every node hears from and talks to at least the leader of each group (followers
         * only dial the leader and candidates, so no more can be promised). */
        assert_true(st->routed_raft >= N_GROUPS);
        assert_true(st->dials_ok >= N_GROUPS);
        assert_int_equal(st->rejected, 0);
        /* The leader knows where its followers are, and followers learned the leader's
         * address from the preamble-supplied address. */
        for (int gi = 0; gi < N_GROUPS; gi++) {
            raft_id lid = 0;
            const char *laddr = NULL;
            raft_leader(&w.nodes[i].groups[gi].raft, &lid, &laddr);
            assert_true(lid >= 1 && lid <= N_NODES);
            assert_string_equal(laddr, w.nodes[lid - 1].addr);
        }
    }
}

static void peerLinkRoundTrip(void **state)
{
    (void)state;
    for (int i = 0; i < N_NODES; i++)
        raft_mux_set_peer_handler(w.nodes[i].mux, echoAccept, NULL);
    peerRoundTrip(1, 0);
    peerRoundTrip(0, 2);
    peerRoundTrip(2, 1);
    if (w.tls)
        return; /* a raw preamble is not TLS: the junk test covers it */

    /* Bytes sent in the same write as the preamble reach the handler (as acc->data or by
     * reading on), none lost, none duplicated. */
    uint8_t msg[256];
    size_t n = preamble(msg, 0x50434d58u, 1, 2, 0, 3, "127.0.0.1:1");
    memcpy(msg + n, "early\n", 6);
    struct raw r;
    unsigned accepted0 = echo.accepted;
    rawStart(&r, w.nodes[0].port, msg, n + 6);
    assert_true(runUntil(rawHasEleven, &r, 2000));
    assert_int_equal(echo.accepted, accepted0 + 1);
    assert_int_equal(echo.last_node_id, 3);
    assert_string_equal(echo.last_address, "127.0.0.1:1");
    assert_int_equal(r.in_len, 11);
    assert_memory_equal(r.in, "echo:early\n", 11);
    unsigned want = echo.closed + 1;
    rawClose(&r);
    assert_true(runUntil(echoClosedAtLeast, &want, 2000));
}

/* Sends bytes, expects the port to close the connection well before the preamble timeout. */
static void expectRejected(int node, const void *bytes, size_t len)
{
    struct raw r;
    uint64_t rejected0 = raft_mux_stats(w.nodes[node].mux)->rejected;
    uint64_t t0 = uv_now(&w.loop);
    rawStart(&r, w.nodes[node].port, bytes, len);
    assert_true(runUntil(rawEof, &r, 2000));
    assert_true(r.t_eof - t0 < TIMEOUT_MS); /* closed for the content, not the timeout */
    /* Nothing comes back, except (TLS) an alert record saying the handshake failed. */
    assert_true(r.in_len == 0 || (w.tls && r.in[0] == 0x15));
    const struct raft_mux_stats *st = raft_mux_stats(w.nodes[node].mux);
    assert_int_equal(st->rejected, rejected0 + 1);
    rawClose(&r);
}

static void junkOnThePortIsClosedAndPortKeepsWorking(void **state)
{
    (void)state;
    uint8_t p[512];
    static const char http[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    expectRejected(0, http, sizeof http - 1);
    memset(p, 0xff, 200);
    expectRejected(1, p, 200);
    expectRejected(2, p, preamble(p, 0x50434d58u, 9, 1, 0, 1, "127.0.0.1:1"));  /* version */
    expectRejected(0, p, preamble(p, 0x50434d58u, 1, 7, 0, 1, "127.0.0.1:1"));  /* kind */
    expectRejected(0, p, preamble(p, 0x50434d58u, 1, 1, 999, 1, "127.0.0.1:1")); /* group */
    expectRejected(0, p, preamble(p, 0x50434d58u, 1, 2, 5, 1, "127.0.0.1:1"));  /* peer+group */
    expectRejected(0, p, preamble(p, 0x50434d58u, 1, 1, 0, 0, "127.0.0.1:1"));  /* sender 0 */
    expectRejected(0, p, preamble(p, 0x50434d58u, 1, 1, 0, 1, "127.0.0.1\n:1")); /* address */
    size_t n = preamble(p, 0x50434d58u, 1, 1, 0, 1, "x");
    p[6] = 0xff; /* address length beyond the maximum */
    expectRejected(0, p, n);
    p[6] = p[7] = 0; /* empty address */
    expectRejected(0, p, n);

    if (w.tls) {
        /* Junk is not TLS: every piece was a failed handshake. */
        uint64_t refused = 0;
        for (int i = 0; i < N_NODES; i++)
            refused += raft_mux_stats(w.nodes[i].mux)->refused_tls;
        assert_int_equal(refused, 10);
    }

    /* Without a handler a peer preamble is refused too (TLS: with a verdict, so the dialler
     * fails at once). */
    raft_mux_set_peer_handler(w.nodes[2].mux, NULL, NULL);
    if (w.tls) {
        struct client c = {0};
        c.req.data = &c;
        assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, w.nodes[2].id,
                                               w.nodes[2].addr, clientConnected), 0);
        assert_true(runUntil(clientDone, &c, 2000));
        assert_int_equal(c.status, PC_EUNAVAIL);
    } else {
        expectRejected(2, p, preamble(p, 0x50434d58u, 1, 2, 0, 1, "127.0.0.1:1"));
    }
    raft_mux_set_peer_handler(w.nodes[2].mux, echoAccept, NULL);

    /* The port and everything behind it still work. */
    peerRoundTrip(2, 0);
    replicateAndCheck(50);
}

static void silentConnectionIsClosedAfterPreambleTimeout(void **state)
{
    (void)state;
    uint8_t p[64];
    size_t n = preamble(p, 0x50434d58u, 1, 1, 0, 1, "127.0.0.1:1");
    struct raw r;
    uint64_t t0 = uv_now(&w.loop);
    /* An incomplete preamble (TLS: nothing, not even a hello), then silence. */
    rawStart(&r, w.nodes[1].port, p, w.tls ? 0 : n - 3);
    assert_true(runUntil(rawEof, &r, 3 * TIMEOUT_MS));
    assert_true(r.t_eof - t0 >= TIMEOUT_MS - 10);
    rawClose(&r);
}

static void peerConnectFailures(void **state)
{
    (void)state;
    struct client c = {0};
    c.req.data = &c;
    /* Not an address: refused synchronously, cb never fires. */
    assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, 0, "localhost", clientConnected),
                     PC_EINVAL);
    assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, 0, "127.0.0.1:0", clientConnected),
                     PC_EINVAL);

    /* Nobody listening. */
    char dead[32];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", w.base_port + 9);
    assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, 0, dead, clientConnected), 0);
    assert_true(runUntil(clientDone, &c, 2000));
    assert_int_equal(c.status, PC_EUNAVAIL);

    /* Canceled right away: the callback still fires exactly once, later. */
    memset(&c, 0, sizeof c);
    c.req.data = &c;
    assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, w.nodes[1].id, w.nodes[1].addr,
                                           clientConnected), 0);
    raft_mux_peer_connect_cancel(&c.req);
    raft_mux_peer_connect_cancel(&c.req); /* idempotent */
    assert_false(c.done);
    assert_true(runUntil(clientDone, &c, 2000));
    assert_int_equal(c.status, PC_ECANCELED);

    /* A listener whose accept queue is full drops SYNs: the connect must time out. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", w.base_port + 8, &sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 0), 0);
    int fill[2];
    for (int i = 0; i < 2; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    usleep(50 * 1000);
    char full[32];
    snprintf(full, sizeof full, "127.0.0.1:%d", w.base_port + 8);
    memset(&c, 0, sizeof c);
    c.req.data = &c;
    uint64_t t0 = uv_now(&w.loop);
    assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, 0, full, clientConnected), 0);
    assert_true(runUntil(clientDone, &c, 4 * TIMEOUT_MS));
    uv_update_time(&w.loop);
    if (c.status == 0) {
        /* Some kernels complete the handshake anyway; then there is nothing to time out. */
        uv_close((uv_handle_t *)c.tcp, clientClosed);
        assert_true(runUntil(clientTcpGone, &c, 1000));
    } else {
        assert_int_equal(c.status, PC_ETIMEDOUT);
        assert_true(uv_now(&w.loop) - t0 >= TIMEOUT_MS);
    }
    close(fill[0]);
    close(fill[1]);
    close(lfd);
}

/* ---- TLS: who is refused ------------------------------------------------------------------- */

/* A context the way a misconfigured or foreign node might have one: the pool CA to verify
 * with, and cert/key (NULL: no certificate at all). cluster_tls_context refuses to build
 * these, which is the point. */
static SSL_CTX *rawContext(const char *cert, const char *key)
{
    char path[400];
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    snprintf(path, sizeof path, "%s/ca.pem", w.pki);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (cert != NULL) {
        snprintf(path, sizeof path, "%s/%s", w.pki, cert);
        assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, path), 1);
        snprintf(path, sizeof path, "%s/%s", w.pki, key);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}

/* A would-be node id on its own port (base + 10 + k) with ctx (NULL: plain). */
static struct raft_mux *extraMux(uint64_t id, SSL_CTX *ctx)
{
    assert_true(w.n_extra < (int)(sizeof w.extra / sizeof w.extra[0]));
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", w.base_port + 10 + w.n_extra);
    struct raft_mux_config cfg = {.node_id = id, .address = addr, .tls = ctx,
                                  .connect_timeout_ms = TIMEOUT_MS,
                                  .preamble_timeout_ms = TIMEOUT_MS};
    struct raft_mux *m = NULL;
    assert_int_equal(raft_mux_create(&w.loop, &cfg, &m), 0);
    SSL_CTX_free(ctx);
    w.extra[w.n_extra++] = m;
    return m;
}

/* Dials node `to` (expecting node id expect) from mux m; returns the connect status. */
static int dialStatus(struct raft_mux *m, uint64_t expect, const char *addr)
{
    struct client c = {0};
    c.req.data = &c;
    assert_int_equal(raft_mux_peer_connect(m, &c.req, expect, addr, clientConnected), 0);
    assert_true(runUntil(clientDone, &c, 3000));
    if (c.status == 0) {
        uv_close((uv_handle_t *)c.tcp, clientClosed);
        assert_true(runUntil(clientTcpGone, &c, 1000));
    }
    return c.status;
}

struct counter_wait {
    const uint64_t *counter;
    uint64_t want;
};

static bool counterReached(void *arg)
{
    struct counter_wait *cw = arg;
    return *cw->counter >= cw->want;
}

/* Waits until node 0's counter (a field of its stats) went up by one. */
static void expectCounted(const uint64_t *counter, uint64_t before)
{
    struct counter_wait cw = {counter, before + 1};
    assert_true(runUntil(counterReached, &cw, 2000));
    assert_int_equal(*counter, before + 1);
}

static bool admitPoolOnly(void *arg, uint64_t node_id)
{
    (void)arg;
    return node_id >= 1 && node_id <= N_NODES;
}

static void tlsRefusesStrangersAndThePoolGoesOn(void **state)
{
    (void)state;
    const struct raft_mux_stats *st = raft_mux_stats(w.nodes[0].mux);
    const char *n0 = w.nodes[0].addr;
    uint64_t before;

    /* A certificate of another CA (naming node 4): the handshake fails both ways. */
    before = st->refused_tls;
    char path[400], key[400];
    snprintf(path, sizeof path, "%s/other-ca.pem", w.pki);
    char err[512];
    SSL_CTX *other = NULL;
    snprintf(key, sizeof key, "%s/other4.key", w.pki);
    char cert[400];
    snprintf(cert, sizeof cert, "%s/other4.pem", w.pki);
    assert_int_equal(cluster_tls_context(path, cert, key, 4, &other, err, sizeof err), 0);
    assert_int_equal(dialStatus(extraMux(4, other), 1, n0), PC_EDENIED);
    expectCounted(&st->refused_tls, before);

    /* No certificate at all. */
    before = st->refused_tls;
    assert_int_equal(dialStatus(extraMux(5, rawContext(NULL, NULL)), 1, n0), PC_EDENIED);
    expectCounted(&st->refused_tls, before);

    /* A valid certificate that names no node. */
    before = st->refused_identity;
    assert_int_equal(dialStatus(extraMux(5, rawContext("noname.pem", "noname.key")), 1, n0),
                     PC_EDENIED);
    expectCounted(&st->refused_identity, before);

    /* Node 2's certificate on a node that says it is node 6. */
    before = st->refused_identity;
    assert_int_equal(dialStatus(extraMux(6, nodeContext(2)), 1, n0), PC_EDENIED);
    expectCounted(&st->refused_identity, before);

    /* A node of the pool CA that the pool does not know. */
    raft_mux_set_admit(w.nodes[0].mux, admitPoolOnly, NULL);
    before = st->refused_unknown;
    assert_int_equal(dialStatus(extraMux(7, nodeContext(7)), 1, n0), PC_EDENIED);
    expectCounted(&st->refused_unknown, before);
    raft_mux_set_admit(w.nodes[0].mux, NULL, NULL);

    /* The dialler's side: node 1's address answered by node 1, but node 3 was expected. */
    before = st->dials_refused;
    assert_int_equal(dialStatus(w.nodes[0].mux, 3, w.nodes[1].addr), PC_EDENIED);
    assert_int_equal(st->dials_refused, before + 1);

    /* A plain node: it cannot get in, and a TLS node does not talk to it. */
    struct raft_mux *plain = extraMux(8, NULL);
    before = st->refused_tls;
    (void)dialStatus(plain, 1, n0); /* a plain dial "succeeds" once its preamble is written */
    expectCounted(&st->refused_tls, before);
    char plain_addr[32];
    snprintf(plain_addr, sizeof plain_addr, "127.0.0.1:%d", w.base_port + 10 + w.n_extra - 1);
    /* The plain node closes on our hello (and says why in its log); not a refusal here: a
     * node that stops looks the same. */
    before = raft_mux_stats(plain)->rejected;
    assert_int_equal(dialStatus(w.nodes[0].mux, 8, plain_addr), PC_EUNAVAIL);
    assert_int_equal(raft_mux_stats(plain)->rejected, before + 1);

    /* None of it disturbed the pool. */
    peerRoundTrip(0, 1);
    replicateAndCheck(50);
}

static bool allGroupsClosed(void *arg)
{
    (void)arg;
    return w.groups_closed == N_NODES * N_GROUPS;
}

static void groupClosedCb(struct raft *r)
{
    struct tgroup *g = r->data;
    /* raft is done with io and transport: release both (never raft_* calls from here). */
    raft_uv_close(&g->io);
    raft_mux_transport_close(&g->tp);
    raft_mux_transport_close(&g->tp); /* twice is harmless */
    g->closed = true;
    w.groups_closed++;
}

static void muxClosedCb(void *arg)
{
    (void)arg;
    w.muxes_closed++;
}

static void tickClosed(uv_handle_t *h)
{
    (void)h;
}

static void shutdownIsClean(void **state)
{
    (void)state;
    assert_true(w.started);
    /* The mux refuses to go while raft still holds transports on it. */
    assert_int_equal(raft_mux_close(w.nodes[0].mux, muxClosedCb, NULL), PC_EBUSY);

    /* A second mux on a taken port fails cleanly (its handles go in the uv_run below), and
     * a bad configuration is refused up front. */
    struct raft_mux *extra = NULL;
    struct raft_mux_config cfg = {.node_id = 9, .address = w.nodes[0].addr};
    assert_int_equal(raft_mux_create(&w.loop, &cfg, &extra), PC_EIO);
    assert_null(extra);
    cfg.address = "127.0.0.1";
    assert_int_equal(raft_mux_create(&w.loop, &cfg, &extra), PC_EINVAL);
    cfg.address = w.nodes[0].addr;
    cfg.node_id = 0;
    assert_int_equal(raft_mux_create(&w.loop, &cfg, &extra), PC_EINVAL);

    /* A peer connect pending at close time is canceled. */
    struct client c = {0};
    c.req.data = &c;
    char dead[32];
    snprintf(dead, sizeof dead, "127.0.0.1:%d", w.base_port + 9);

    for (int i = 0; i < N_NODES; i++)
        for (int gi = 0; gi < N_GROUPS; gi++)
            raft_close(&w.nodes[i].groups[gi].raft, groupClosedCb);
    assert_true(runUntil(allGroupsClosed, NULL, 5000));

    assert_int_equal(raft_mux_peer_connect(w.nodes[0].mux, &c.req, w.nodes[1].id, w.nodes[1].addr,
                                           clientConnected), 0);
    for (int i = 0; i < N_NODES; i++)
        assert_int_equal(raft_mux_close(w.nodes[i].mux, muxClosedCb, NULL), 0);
    for (int i = 0; i < w.n_extra; i++)
        assert_int_equal(raft_mux_close(w.extra[i], muxClosedCb, NULL), 0);
    uv_close((uv_handle_t *)&w.tick, tickClosed);
    assert_int_equal(uv_run(&w.loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(w.muxes_closed, N_NODES + w.n_extra);
    assert_true(c.done);
    assert_int_equal(c.status, PC_ECANCELED);
    assert_int_equal(uv_loop_close(&w.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(raftGroupsElectAndReplicate),
        cmocka_unit_test(peerLinkRoundTrip),
        cmocka_unit_test(junkOnThePortIsClosedAndPortKeepsWorking),
        cmocka_unit_test(silentConnectionIsClosedAfterPreambleTimeout),
        cmocka_unit_test(peerConnectFailures),
        cmocka_unit_test(shutdownIsClean),
    };
    const struct CMUnitTest tls_tests[] = {
        cmocka_unit_test(raftGroupsElectAndReplicate),
        cmocka_unit_test(peerLinkRoundTrip),
        cmocka_unit_test(junkOnThePortIsClosedAndPortKeepsWorking),
        cmocka_unit_test(silentConnectionIsClosedAfterPreambleTimeout),
        cmocka_unit_test(peerConnectFailures),
        cmocka_unit_test(tlsRefusesStrangersAndThePoolGoesOn),
        cmocka_unit_test(shutdownIsClean),
    };
    int failed = cmocka_run_group_tests_name("raft_mux plain", tests, setupWorld, teardownWorld);
    failed += cmocka_run_group_tests_name("raft_mux mutual TLS", tls_tests, setupWorldTls,
                                          teardownWorld);
    return failed;
}
