/* The cluster port: listener, preamble codec, inbound routing, peer-link API. See
 * raft_mux.h; outbound connects are in raft_mux_dial.c, TLS and identity checks in
 * raft_mux_auth.c, the raft transport in raft_mux_raft.c. */
#include "cluster/raft_mux.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/raft_mux_int.h"
#include "common/pc_alloc.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_tls_pipe.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_PREAMBLE_TIMEOUT_MS 2000
#define DEFAULT_RAFT_STALL_MS 2000
#define DEFAULT_MAX_PENDING 256
#define LOG_LINES_PER_SECOND 10

/* ---- preamble ------------------------------------------------------------------------ */

size_t rmx_preamble_encode(uint8_t *out, unsigned kind, uint64_t group, uint64_t sender,
                           const char *address)
{
    size_t alen = strlen(address);
    pc_be32_write(out, RMX_MAGIC);
    out[4] = RMX_VERSION;
    out[5] = (uint8_t)kind;
    out[6] = (uint8_t)(alen >> 8);
    out[7] = (uint8_t)alen;
    pc_be64_write(out + 8, group);
    pc_be64_write(out + 16, sender);
    memcpy(out + RMX_FIXED_LEN, address, alen);
    return RMX_FIXED_LEN + alen;
}

const char *rmx_preamble_check_fixed(const uint8_t *p, size_t *total)
{
    if (pc_be32_read(p) != RMX_MAGIC)
        return "bad magic";
    /* Only one version exists. A later one would be negotiated by the dialler falling back
     * when we close; refusing is the safe answer to what we do not understand. */
    if (p[4] != RMX_VERSION)
        return "unsupported protocol version";
    if (p[5] != RMX_KIND_RAFT && p[5] != RMX_KIND_PEER)
        return "unknown connection kind";
    size_t alen = ((size_t)p[6] << 8) | p[7];
    if (alen == 0 || alen > RAFT_MUX_ADDR_MAX)
        return "bad address length";
    if (pc_be64_read(p + 16) == 0)
        return "sender node id 0";
    if (p[5] == RMX_KIND_PEER && pc_be64_read(p + 8) != 0)
        return "peer preamble with a group id";
    *total = RMX_FIXED_LEN + alen;
    return NULL;
}

const char *rmx_preamble_decode(const uint8_t *p, size_t len, struct rmx_preamble *out)
{
    size_t alen = len - RMX_FIXED_LEN;
    /* The address goes into raft's configuration and our logs: printable ASCII only. */
    for (size_t i = 0; i < alen; i++)
        if (p[RMX_FIXED_LEN + i] <= ' ' || p[RMX_FIXED_LEN + i] > '~')
            return "address is not printable ASCII";
    out->kind = p[5];
    out->group = pc_be64_read(p + 8);
    out->sender = pc_be64_read(p + 16);
    memcpy(out->address, p + RMX_FIXED_LEN, alen);
    out->address[alen] = '\0';
    return NULL;
}

int rmx_parse_address(const char *address, struct sockaddr_storage *sa)
{
    char host[RAFT_MUX_ADDR_MAX + 1];
    const char *colon = strrchr(address, ':');
    if (colon == NULL || strlen(address) > RAFT_MUX_ADDR_MAX)
        return PC_EINVAL;
    const char *h = address;
    size_t hlen = (size_t)(colon - address);
    bool v6 = hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']';
    if (v6) {
        h++;
        hlen -= 2;
    }
    if (hlen == 0)
        return PC_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    /* strtoul alone accepts "+1", " 1" and "1x"; ports are digits only. */
    const char *ps = colon + 1;
    if (*ps == '\0' || strspn(ps, "0123456789") != strlen(ps) || strlen(ps) > 5)
        return PC_EINVAL;
    unsigned long port = strtoul(ps, NULL, 10);
    if (port == 0 || port > 65535)
        return PC_EINVAL;
    memset(sa, 0, sizeof *sa);
    int rv = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa)
                : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa);
    return rv == 0 ? 0 : PC_EINVAL;
}

/* ---- logging and handle bookkeeping ---------------------------------------------------- */

void rmx_log_limited(struct raft_mux *m, int level, const char *fmt, ...)
{
    if (level < (int)pc_log_min_level)
        return;
    uint64_t now = uv_now(m->loop);
    if (now - m->log_window >= 1000) {
        if (m->log_suppressed > 0)
            pc_warn("cluster port: %u more connection problems not logged", m->log_suppressed);
        m->log_window = now;
        m->log_count = 0;
        m->log_suppressed = 0;
    }
    if (m->log_count >= LOG_LINES_PER_SECOND) {
        m->log_suppressed++;
        return;
    }
    m->log_count++;
    va_list ap;
    va_start(ap, fmt);
    pc_log_vwrite((enum pc_log_level)level, fmt, ap);
    va_end(ap);
}

static void maybeFinishClose(struct raft_mux *m)
{
    if (!m->closing || m->pending_closes > 0)
        return;
    void (*cb)(void *) = m->close_cb;
    void *arg = m->close_arg;
    SSL_CTX_free(m->tls); /* bridges still open hold their own references */
    pc_free(m);
    if (cb != NULL)
        cb(arg);
}

void rmx_handle_closed(struct raft_mux *m)
{
    m->pending_closes--;
    maybeFinishClose(m);
}

void raft_mux_handle_free(uv_handle_t *handle)
{
    raft_free(handle);
}

static void muxHandleClosedCb(uv_handle_t *h)
{
    rmx_handle_closed(h->data);
}

static void rawHandleClosedCb(uv_handle_t *h)
{
    struct raft_mux *m = h->data;
    raft_free(h);
    rmx_handle_closed(m);
}

/* ---- deadlines --------------------------------------------------------------------------- */

static void sweepCb(uv_timer_t *t)
{
    struct raft_mux *m = t->data;
    uint64_t now = uv_now(m->loop);
    struct rmx_in *in = m->ins;
    while (in != NULL) {
        struct rmx_in *next = in->next;
        if (now >= in->deadline)
            rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_BAD_PREAMBLE,
                          in->tp != NULL ? "no TLS handshake and preamble in time"
                                         : "no complete preamble in time");
        in = next;
    }
    rmx_dial_sweep(m, now);
    if (m->ins == NULL && m->dials == NULL)
        uv_timer_stop(&m->sweep);
}

void rmx_sweep_arm(struct raft_mux *m)
{
    if (m->closing || uv_is_active((uv_handle_t *)&m->sweep))
        return;
    /* A quarter of the shorter timeout: deadlines are enforced within +25%, without a timer
     * per connection (each would need its own close choreography). */
    unsigned t = m->connect_timeout_ms < m->preamble_timeout_ms ? m->connect_timeout_ms
                                                                : m->preamble_timeout_ms;
    uint64_t every = t / 4;
    if (every < 5)
        every = 5;
    uv_timer_start(&m->sweep, sweepCb, every, every);
}

/* ---- inbound ----------------------------------------------------------------------------- */

static void inUnlink(struct rmx_in *in)
{
    struct raft_mux *m = in->m;
    if (in->prev != NULL)
        in->prev->next = in->next;
    else
        m->ins = in->next;
    if (in->next != NULL)
        in->next->prev = in->prev;
    in->prev = in->next = NULL;
    m->n_ins--;
}

void rmx_in_reject(struct rmx_in *in, int level, enum rmx_verdict verdict, const char *why)
{
    struct raft_mux *m = in->m;
    m->stats.rejected++;
    if (why != NULL)
        rmx_log_limited(m, level, "cluster port: closing connection from %s: %s", in->peer, why);
    inUnlink(in);
    if (in->tp != NULL) {
        /* A TLS dialler waiting for the verdict learns why instead of seeing a reset; the
         * pipe's closed callback frees in. */
        uint8_t v = (uint8_t)verdict;
        if (in->kind != 0 && in->got >= in->need)
            (void)pc_tls_pipe_write(in->tp, &v, 1);
        m->pending_closes++;
        pc_tls_pipe_close(in->tp, true);
        return;
    }
    if (in->tcp != NULL) {
        in->tcp->data = m;
        m->pending_closes++;
        uv_close((uv_handle_t *)in->tcp, rawHandleClosedCb); /* also stops reading */
    }
    pc_free(in);
}

bool rmx_in_check_fixed(struct rmx_in *in)
{
    const char *why = rmx_preamble_check_fixed(in->buf, &in->need);
    if (why != NULL && in->tp == NULL && in->buf[0] == 0x16 && in->buf[1] == 0x03)
        why = "it starts a TLS handshake: the dialling node runs [cluster] tls_* and this node "
              "does not (every node of a pool needs the same setting)";
    if (why != NULL) {
        rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_BAD_PREAMBLE, why);
        return false;
    }
    in->kind = in->buf[5];
    return true;
}

static void inAllocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct rmx_in *in = h->data;
    (void)suggested;
    /* Never read past a raft preamble: those bytes are raft's and must stay in the socket.
     * Peer-link streams may over-read into the slack; the handler gets the excess. */
    size_t want = in->kind == RMX_KIND_PEER ? sizeof in->buf - in->got : in->need - in->got;
    *buf = uv_buf_init((char *)in->buf + in->got, (unsigned)want);
}

/* Why the sender may not use this port, or NULL; *verdict and *level say how to refuse. The
 * identity checks come first: they hold whatever the connection wants. */
static const char *inRefusal(struct rmx_in *in, const struct rmx_preamble *p,
                             enum rmx_verdict *verdict, int *level, char *why, size_t cap)
{
    struct raft_mux *m = in->m;
    *level = PC_LOG_WARN;
    if (m->closing) {
        *verdict = RMX_VERDICT_NOT_SERVED;
        *level = PC_LOG_DEBUG;
        return "shutting down";
    }
    if (in->tp != NULL && !rmx_in_identity(in, p)) {
        *verdict = RMX_VERDICT_IDENTITY;
        *level = -1; /* logged */
        return "identity";
    }
    if (m->admit != NULL && !m->admit(m->admit_arg, p->sender)) {
        m->stats.refused_unknown++;
        rmx_refuse_log(m, RMX_VERDICT_UNKNOWN, p->sender,
                       "cluster port: refused node %llu (%s, from %s): not a member of the "
                       "pool as this node knows it; add it with pchatctl node add (if it was "
                       "just added, this passes once the change reaches this node)",
                       (unsigned long long)p->sender, p->address, in->peer);
        *verdict = RMX_VERDICT_UNKNOWN;
        *level = -1;
        return "unknown";
    }
    *verdict = RMX_VERDICT_NOT_SERVED;
    if (p->kind == RMX_KIND_PEER) {
        return m->peer_cb == NULL ? "peer link not served here (no handler)" : NULL;
    }
    struct rmx_group *g;
    HASH_FIND(hh, m->groups, &p->group, sizeof p->group, g);
    if (g == NULL) {
        snprintf(why, cap, "unknown raft group %llu", (unsigned long long)p->group);
        return why;
    }
    if (g->accept_cb == NULL || g->closing) {
        /* Normal while groups start or stop: the peer retries after its retry delay. */
        snprintf(why, cap, "raft group %llu not %s here", (unsigned long long)p->group,
                 g->closing ? "open any more" : "started yet");
        *level = PC_LOG_DEBUG;
        return why;
    }
    return NULL;
}

void rmx_in_preamble(struct rmx_in *in, const uint8_t *early, size_t early_len)
{
    struct raft_mux *m = in->m;
    struct rmx_preamble p;
    const char *why = rmx_preamble_decode(in->buf, in->need, &p);
    if (why != NULL) {
        rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_BAD_PREAMBLE, why);
        return;
    }
    enum rmx_verdict verdict;
    int level;
    char buf[96];
    why = inRefusal(in, &p, &verdict, &level, buf, sizeof buf);
    if (why != NULL) {
        rmx_in_reject(in, level, verdict, level >= 0 ? why : NULL);
        return;
    }
    uv_stream_t *stream;
    if (in->tp != NULL) {
        stream = rmx_tls_in_handover(in, early, early_len);
        if (stream == NULL)
            return;
        early_len = 0; /* they are the stream's first bytes now */
    } else {
        stream = (uv_stream_t *)in->tcp;
    }
    inUnlink(in);
    stream->data = NULL;
    if (p.kind == RMX_KIND_RAFT) {
        struct rmx_group *g;
        HASH_FIND(hh, m->groups, &p.group, sizeof p.group, g);
        m->stats.routed_raft++;
        /* raft calls uv_read_start with its own callbacks; inside libuv's read loop that
         * simply continues with raft's alloc/read callbacks, which is what we want. */
        g->accept_cb(g->t, p.sender, p.address, stream);
    } else {
        m->stats.routed_peer++;
        struct raft_mux_peer_accept acc = {.node_id = p.sender, .address = p.address,
                                           .stream = stream, .data = early, .len = early_len};
        /* early may point into in->buf: in stays allocated during the call. */
        m->peer_cb(m->peer_arg, &acc);
    }
    /* TLS: the bridge lives on its own now (it may outlive the mux), without in. */
    pc_free(in);
}

static void inReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct rmx_in *in = s->data;
    (void)buf;
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        rmx_in_reject(in, PC_LOG_INFO, RMX_VERDICT_BAD_PREAMBLE,
                      nread == UV_EOF ? "closed before its preamble" : uv_strerror((int)nread));
        return;
    }
    in->got += (size_t)nread;
    if (in->kind == 0 && in->got >= RMX_FIXED_LEN && !rmx_in_check_fixed(in))
        return;
    if (in->kind == 0 || in->got < in->need)
        return;
    uv_read_stop(s);
    rmx_in_preamble(in, in->buf + in->need, in->got - in->need);
}

static void peerName(uv_tcp_t *tcp, char *out, size_t size)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &len) == 0) {
        if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        }
    }
    snprintf(out, size, "%s:%d", ip, port);
}

/* Plain mode: accepts into a raft_malloc'd TCP handle (it may go to raft as it is). */
static int plainAccept(struct rmx_in *in, uv_stream_t *server)
{
    struct raft_mux *m = in->m;
    uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
    if (tcp == NULL)
        return PC_ENOMEM;
    uv_tcp_init(m->loop, tcp);
    int rv = uv_accept(server, (uv_stream_t *)tcp);
    if (rv != 0) {
        tcp->data = m;
        m->pending_closes++;
        uv_close((uv_handle_t *)tcp, rawHandleClosedCb);
        return PC_EIO;
    }
    tcp->data = in;
    in->tcp = tcp;
    return 0;
}

static void listenCb(uv_stream_t *server, int status)
{
    struct raft_mux *m = server->data;
    if (status != 0) {
        /* EMFILE and friends: libuv keeps the listener; nothing else to do but say so. */
        rmx_log_limited(m, PC_LOG_WARN, "cluster port: accept failed: %s", uv_strerror(status));
        return;
    }
    struct rmx_in *in = pc_calloc(1, sizeof *in);
    in->m = m;
    in->need = RMX_FIXED_LEN;
    in->deadline = uv_now(m->loop) + m->preamble_timeout_ms;
    int rv = m->tls != NULL ? rmx_tls_accept(in, server) : plainAccept(in, server);
    if (rv != 0) {
        rmx_log_limited(m, PC_LOG_WARN, "cluster port: cannot accept a connection: %s",
                        pc_strerror(rv));
        if (in->tp == NULL)
            pc_free(in);
        return;
    }
    uv_tcp_t *tcp = in->tp != NULL ? pc_tls_pipe_tcp(in->tp) : in->tcp;
    peerName(tcp, in->peer, sizeof in->peer);
    in->next = m->ins;
    if (m->ins != NULL)
        m->ins->prev = in;
    m->ins = in;
    m->n_ins++;
    if (m->closing || m->n_ins > m->max_pending) {
        rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_NOT_SERVED,
                      m->closing ? "shutting down"
                                 : "too many connections still in their preamble");
        return;
    }
    m->stats.accepted++;
    uv_tcp_nodelay(tcp, 1);
    rv = in->tp != NULL ? pc_tls_pipe_start(in->tp)
                        : uv_read_start((uv_stream_t *)tcp, inAllocCb, inReadCb);
    if (rv != 0) {
        rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_BAD_PREAMBLE, "cannot read");
        return;
    }
    rmx_sweep_arm(m);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

int raft_mux_create(uv_loop_t *loop, const struct raft_mux_config *cfg, struct raft_mux **out)
{
    struct sockaddr_storage sa;
    *out = NULL;
    if (cfg->node_id == 0 || cfg->address == NULL ||
        strlen(cfg->address) > RAFT_MUX_ADDR_MAX || strlen(cfg->address) == 0) {
        pc_error("cluster port: bad configuration (node id or address)");
        return PC_EINVAL;
    }
    const char *bind = cfg->bind_address != NULL ? cfg->bind_address : cfg->address;
    if (rmx_parse_address(bind, &sa) != 0) {
        pc_error("cluster port: cannot parse address \"%s\" (want a.b.c.d:port or [v6]:port)",
                 bind);
        return PC_EINVAL;
    }
    struct raft_mux *m = pc_calloc(1, sizeof *m);
    m->loop = loop;
    m->node_id = cfg->node_id;
    snprintf(m->address, sizeof m->address, "%s", cfg->address);
    m->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    m->preamble_timeout_ms =
        cfg->preamble_timeout_ms ? cfg->preamble_timeout_ms : DEFAULT_PREAMBLE_TIMEOUT_MS;
    m->max_pending = cfg->max_pending ? cfg->max_pending : DEFAULT_MAX_PENDING;
    if (cfg->tls != NULL && SSL_CTX_up_ref(cfg->tls) == 1)
        m->tls = cfg->tls;
    m->raft_stall_ms = cfg->raft_stall_ms ? cfg->raft_stall_ms : DEFAULT_RAFT_STALL_MS;
    uv_timer_init(loop, &m->sweep);
    m->sweep.data = m;
    uv_tcp_init(loop, &m->listener);
    m->listener.data = m;
    int rv = uv_tcp_bind(&m->listener, (struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&m->listener, 128, listenCb);
    if (rv != 0) {
        pc_error("cluster port: cannot listen on %s: %s", bind, uv_strerror(rv));
        /* Same teardown as a normal close, minus the callback. */
        m->closing = true;
        m->pending_closes = 2;
        uv_close((uv_handle_t *)&m->listener, muxHandleClosedCb);
        uv_close((uv_handle_t *)&m->sweep, muxHandleClosedCb);
        return PC_EIO;
    }
    *out = m;
    return 0;
}

int raft_mux_close(struct raft_mux *m, void (*cb)(void *arg), void *arg)
{
    if (m->closing)
        return PC_ECLOSED;
    if (m->n_transports > 0) {
        /* raft still holds transports pointing here; freeing now would be use-after-free. */
        pc_error("cluster port: close with %u raft transports still open", m->n_transports);
        return PC_EBUSY;
    }
    m->closing = true;
    m->close_cb = cb;
    m->close_arg = arg;
    while (m->ins != NULL)
        rmx_in_reject(m->ins, PC_LOG_DEBUG, RMX_VERDICT_NOT_SERVED, "shutting down");
    for (struct rmx_dial *d = m->dials; d != NULL; d = d->next)
        rmx_dial_fail(d, PC_ECANCELED);
    m->pending_closes += 2;
    uv_close((uv_handle_t *)&m->listener, muxHandleClosedCb);
    uv_close((uv_handle_t *)&m->sweep, muxHandleClosedCb);
    return 0;
}

const struct raft_mux_stats *raft_mux_stats(const struct raft_mux *m)
{
    return &m->stats;
}

void raft_mux_set_admit(struct raft_mux *m, bool (*admit)(void *arg, uint64_t node_id),
                        void *arg)
{
    m->admit = admit;
    m->admit_arg = arg;
}

bool raft_mux_tls(const struct raft_mux *m)
{
    return m->tls != NULL;
}

/* ---- peer link --------------------------------------------------------------------------- */

void raft_mux_set_peer_handler(struct raft_mux *m, raft_mux_peer_accept_cb cb, void *arg)
{
    m->peer_cb = cb;
    m->peer_arg = arg;
}

struct peer_dial {
    struct rmx_dial d; /* first: the done callback gets &d */
    struct raft_mux_peer_connect *req;
};

static void peerDialDone(struct rmx_dial *d, uv_stream_t *stream, int status)
{
    struct peer_dial *pd = (struct peer_dial *)d;
    struct raft_mux_peer_connect *req = pd->req;
    pc_free(pd);
    req->priv_ = NULL;
    req->cb(req, stream, status);
}

int raft_mux_peer_connect(struct raft_mux *m, struct raft_mux_peer_connect *req,
                          uint64_t node_id, const char *address, raft_mux_peer_connect_cb cb)
{
    if (m->closing)
        return PC_ECLOSED;
    struct peer_dial *pd = pc_calloc(1, sizeof *pd);
    pd->req = req;
    pd->d.expect = node_id;
    pd->d.keepalive = true;
    pd->d.preamble_len = rmx_preamble_encode(pd->d.preamble, RMX_KIND_PEER, 0, m->node_id,
                                             m->address);
    req->cb = cb;
    req->priv_ = pd;
    int rv = rmx_dial_start(m, &pd->d, address, peerDialDone);
    if (rv != 0) {
        req->priv_ = NULL;
        pc_free(pd);
    }
    return rv;
}

void raft_mux_peer_connect_cancel(struct raft_mux_peer_connect *req)
{
    struct peer_dial *pd = req->priv_;
    if (pd != NULL)
        rmx_dial_fail(&pd->d, PC_ECANCELED);
}
