/* Who may use the cluster port: the TLS stages of inbound and outbound connections (handshake,
 * certificate identity, preamble, verdict, then a bridge to the consumer), and the refusals,
 * counted and logged so that an operator learns who was refused, why, and what to do. See
 * raft_mux.h for the protocol and cluster_tls.h for the identity convention. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster_tls.h"
#include "cluster/raft_mux_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_tls_pipe.h"

/* Kinds of refusal for rmx_refuse_log (the verdict codes are kinds too). */
enum {
    REFUSE_HANDSHAKE = 10, /* inbound: TLS failed; who = the remote address */
    REFUSE_NONAME = 11,    /* inbound: a valid certificate that names no node */
    REFUSE_DIAL_CERT = 20, /* outbound: the acceptor's certificate is not the expected node's */
    REFUSE_DIAL_TLS = 21,  /* outbound: the handshake failed (often: we were refused) */
    REFUSE_DIAL_VERDICT = 22,
};

/* ---- refusal log ---------------------------------------------------------------------------- */

static uint64_t hashText(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* The remote address without its port (a refused node redials from a new port each time). */
static uint64_t hostKey(const char *peer)
{
    char host[64];
    snprintf(host, sizeof host, "%s", peer);
    char *colon = strrchr(host, ':');
    if (colon != NULL)
        *colon = '\0';
    return hashText(host);
}

void rmx_refuse_log(struct raft_mux *m, unsigned kind, uint64_t who, const char *fmt, ...)
{
    /* raft redials every 100 ms per group: one line per refused (kind, who) every
     * RMX_REFUSE_LOG_MS, saying how many were not logged, keeps the cause visible without
     * flooding the log. The table is small; the oldest entry makes room. */
    uint64_t now = uv_now(m->loop);
    struct rmx_refusal *r = NULL, *oldest = &m->refusals[0];
    for (size_t i = 0; i < RMX_REFUSALS; i++) {
        struct rmx_refusal *e = &m->refusals[i];
        if (e->kind == kind && e->who == who && e->last_ms != 0) {
            r = e;
            break;
        }
        if (e->last_ms < oldest->last_ms)
            oldest = e;
    }
    if (r != NULL && now - r->last_ms < RMX_REFUSE_LOG_MS) {
        r->unlogged++;
        return;
    }
    unsigned unlogged = r != NULL ? r->unlogged : 0;
    if (r == NULL) {
        r = oldest;
        r->kind = kind;
        r->who = who;
    }
    r->last_ms = now != 0 ? now : 1;
    r->unlogged = 0;
    char line[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (unlogged > 0)
        pc_warn("%s [%u more like it in the last %u s]", line, unlogged,
                RMX_REFUSE_LOG_MS / 1000);
    else
        pc_warn("%s", line);
}

/* What to do about a failed handshake, from OpenSSL's reason. */
static const char *handshakeHint(const char *why, bool inbound)
{
    if (strstr(why, "did not return a certificate") != NULL ||
        strstr(why, "certificate required") != NULL)
        return inbound ? "the dialling node presented no certificate: give it [cluster] tls_cert "
                         "and tls_key from this pool's CA"
                       : "this node's certificate was not accepted: check its [cluster] tls_cert";
    if (strstr(why, "unknown ca") != NULL || strstr(why, "bad certificate") != NULL ||
        strstr(why, "certificate unknown") != NULL || strstr(why, "expired") != NULL ||
        strstr(why, "decrypt error") != NULL)
        return inbound ? "the dialling node refused this node's certificate: are both issued "
                         "by the same pool CA ([cluster] tls_ca)?"
                       : "the acceptor refused this node's certificate: is it issued by the "
                         "pool CA the other nodes trust ([cluster] tls_ca), and still valid?";
    if (strstr(why, "certificate") != NULL)
        return inbound ? "its certificate is not from this pool's CA ([cluster] tls_ca) or is "
                         "not valid now: issue one with deploy/pool-ca issue"
                       : "the acceptor's certificate is not from this pool's CA ([cluster] "
                         "tls_ca) or is not valid now";
    return inbound ? "not TLS 1.3: does that node run without [cluster] tls_ca/tls_cert/tls_key? "
                     "every node of a pool needs them"
                   : "does that node run without [cluster] tls_ca/tls_cert/tls_key? every node "
                     "of a pool needs them";
}

/* ---- the consumer's end ----------------------------------------------------------------- */

static void consumerFailedCb(uv_handle_t *h)
{
    struct raft_mux *m = h->data;
    raft_free(h);
    rmx_handle_closed(m);
}

uv_stream_t *rmx_consumer_stream(struct raft_mux *m, int fd)
{
    /* raft_malloc'd like a plain-mode uv_tcp_t: raft frees what it gets with raft_free. */
    uv_pipe_t *p = raft_malloc(sizeof *p);
    if (p == NULL) {
        close(fd);
        return NULL;
    }
    uv_pipe_init(m->loop, p, 0);
    if (uv_pipe_open(p, fd) != 0) {
        close(fd);
        p->data = m;
        m->pending_closes++;
        uv_close((uv_handle_t *)p, consumerFailedCb);
        return NULL;
    }
    return (uv_stream_t *)p;
}

/* ---- inbound ------------------------------------------------------------------------------ */

static void inHandshake(struct pc_tls_pipe *tp, void *arg)
{
    struct rmx_in *in = arg;
    char why[240];
    /* A certificate that names no node is refused once the preamble is in, with a verdict,
     * so that the dialler learns why (rmx_in_identity). */
    if (cluster_tls_peer_node(pc_tls_pipe_ssl(tp), &in->cert_node, why, sizeof why) != 0)
        in->cert_node = 0;
    in->handshaken = true;
}

bool rmx_in_identity(struct rmx_in *in, const struct rmx_preamble *p)
{
    struct raft_mux *m = in->m;
    char why[240];
    if (in->cert_node == 0) {
        (void)cluster_tls_peer_node(pc_tls_pipe_ssl(in->tp), &in->cert_node, why, sizeof why);
        in->cert_node = 0;
        m->stats.refused_identity++;
        rmx_refuse_log(m, REFUSE_NONAME, hostKey(in->peer),
                       "cluster port: refused a TLS connection from %s (saying it is node %llu): "
                       "%s; a node's certificate must name it (CN = " CLUSTER_TLS_CN_PREFIX
                       "<id>, deploy/pool-ca issue)",
                       in->peer, (unsigned long long)p->sender, why);
        return false;
    }
    if (p->sender != in->cert_node) {
        m->stats.refused_identity++;
        rmx_refuse_log(m, RMX_VERDICT_IDENTITY, p->sender,
                       "cluster port: refused a connection from %s: its certificate is node "
                       "%llu's but it says it is node %llu (%s); check that node's [node] id "
                       "and [cluster] tls_cert",
                       in->peer, (unsigned long long)in->cert_node,
                       (unsigned long long)p->sender, p->address);
        return false;
    }
    return true;
}

static void inData(struct pc_tls_pipe *tp, void *arg, const void *data, size_t len)
{
    struct rmx_in *in = arg;
    const uint8_t *p = data;
    (void)tp;
    while (len > 0 && (in->kind == 0 || in->got < in->need)) {
        size_t take = in->need - in->got < len ? in->need - in->got : len;
        memcpy(in->buf + in->got, p, take);
        in->got += take;
        p += take;
        len -= take;
        if (in->kind == 0 && in->got == RMX_FIXED_LEN && !rmx_in_check_fixed(in))
            return;
    }
    /* Whatever follows the preamble in this read is the consumer's: it goes first into the
     * bridge (raft's first byte included). */
    if (in->kind != 0 && in->got == in->need)
        rmx_in_preamble(in, p, len);
}

static void inError(struct pc_tls_pipe *tp, void *arg, int status, const char *why)
{
    struct rmx_in *in = arg;
    struct raft_mux *m = in->m;
    (void)tp;
    if (status == PC_EPROTO && !in->handshaken) {
        m->stats.refused_tls++;
        rmx_refuse_log(m, REFUSE_HANDSHAKE, hostKey(in->peer) ^ hashText(why),
                       "cluster port: refused a connection from %s: TLS handshake failed: %s; "
                       "%s", in->peer, why, handshakeHint(why, true));
        rmx_in_reject(in, -1, RMX_VERDICT_BAD_PREAMBLE, NULL);
        return;
    }
    rmx_in_reject(in, PC_LOG_INFO, RMX_VERDICT_BAD_PREAMBLE,
                  status == PC_ECLOSED ? (!in->handshaken ? "closed during the TLS handshake"
                                                          : "closed before its preamble")
                                       : why);
}

static void inClosed(void *arg, const char *why)
{
    struct rmx_in *in = arg;
    struct raft_mux *m = in->m;
    (void)why;
    pc_free(in);
    rmx_handle_closed(m);
}

int rmx_tls_accept(struct rmx_in *in, uv_stream_t *listener)
{
    struct raft_mux *m = in->m;
    struct pc_tls_pipe_cbs cbs = {.arg = in, .handshake = inHandshake, .data = inData,
                                  .error = inError, .closed = inClosed};
    int rv = pc_tls_pipe_new(m->loop, m->tls, true, &cbs, &in->tp);
    if (rv != 0)
        return rv;
    if (uv_accept(listener, (uv_stream_t *)pc_tls_pipe_tcp(in->tp)) != 0) {
        /* in now belongs to the close path: inClosed frees it. */
        m->pending_closes++;
        pc_tls_pipe_close(in->tp, false);
        return PC_EIO;
    }
    return 0;
}

uv_stream_t *rmx_tls_in_handover(struct rmx_in *in, const uint8_t *early, size_t early_len)
{
    uint8_t ok = RMX_VERDICT_OK;
    int fd;
    if (pc_tls_pipe_write(in->tp, &ok, 1) != 0) {
        rmx_in_reject(in, PC_LOG_INFO, RMX_VERDICT_NOT_SERVED, "the connection failed");
        return NULL;
    }
    if (pc_tls_pipe_bridge(in->tp, early, early_len, NULL, NULL, &fd) != 0) {
        rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_NOT_SERVED,
                      "no socketpair for its TLS bridge (out of file descriptors?)");
        return NULL;
    }
    uv_stream_t *s = rmx_consumer_stream(in->m, fd);
    if (s == NULL) {
        /* The bridge is on its own already (no callback to us): end it directly. */
        pc_tls_pipe_close(in->tp, false);
        in->tp = NULL;
        rmx_in_reject(in, PC_LOG_WARN, RMX_VERDICT_NOT_SERVED, "cannot open its stream");
    }
    return s;
}

/* ---- outbound ----------------------------------------------------------------------------- */

static void dialHandshake(struct pc_tls_pipe *tp, void *arg)
{
    struct rmx_dial *d = arg;
    struct raft_mux *m = d->m;
    uint64_t named = 0;
    char why[240];
    if (cluster_tls_peer_node(pc_tls_pipe_ssl(tp), &named, why, sizeof why) != 0) {
        m->stats.dials_refused++;
        rmx_refuse_log(m, REFUSE_DIAL_CERT, hashText(d->address),
                       "cluster port: refusing the node at %s: %s; its certificate must name "
                       "it (CN = " CLUSTER_TLS_CN_PREFIX "<id>)", d->address, why);
        rmx_dial_fail(d, PC_EDENIED);
        return;
    }
    if (d->expect != 0 && named != d->expect) {
        m->stats.dials_refused++;
        rmx_refuse_log(m, REFUSE_DIAL_CERT, hashText(d->address),
                       "cluster port: refusing the node at %s: it presented the certificate of "
                       "node %llu, but node %llu should be there; check the pool's addresses "
                       "([cluster] peers, pchatctl node add) and that node's [cluster] "
                       "tls_cert", d->address, (unsigned long long)named,
                       (unsigned long long)d->expect);
        rmx_dial_fail(d, PC_EDENIED);
        return;
    }
    if (pc_tls_pipe_write(tp, d->preamble, d->preamble_len) != 0)
        rmx_dial_fail(d, PC_EUNAVAIL);
}

static void dialData(struct pc_tls_pipe *tp, void *arg, const void *data, size_t len)
{
    struct rmx_dial *d = arg;
    struct raft_mux *m = d->m;
    const uint8_t *p = data;
    if (len == 0)
        return;
    if (p[0] == RMX_VERDICT_OK) {
        int fd;
        if (pc_tls_pipe_bridge(tp, p + 1, len - 1, NULL, NULL, &fd) != 0) {
            rmx_log_limited(m, PC_LOG_WARN, "cluster port: no socketpair for a TLS bridge to "
                            "%s (out of file descriptors?)", d->address);
            rmx_dial_fail(d, PC_EUNAVAIL);
            return;
        }
        /* The bridge is on its own: the dial no longer owns a handle. */
        d->tp = NULL;
        uv_stream_t *s = rmx_consumer_stream(m, fd);
        if (s == NULL) {
            pc_tls_pipe_close(tp, false);
            d->closing = true;
            d->status = PC_EUNAVAIL;
            m->pending_closes++; /* what rmx_dial_closed accounts for */
            rmx_dial_closed(d);
            return;
        }
        rmx_dial_succeed(d, s);
        return;
    }
    if (p[0] == RMX_VERDICT_NOT_SERVED) {
        /* A group not started yet or stopping: normal, raft retries. */
        rmx_log_limited(m, PC_LOG_DEBUG, "cluster port: %s does not serve this connection now",
                        d->address);
        rmx_dial_fail(d, PC_EUNAVAIL);
        return;
    }
    m->stats.dials_refused++;
    const char *why = p[0] == RMX_VERDICT_UNKNOWN
                          ? "this node is not a member of the pool as that node knows it (add "
                            "it with pchatctl node add; just added, it passes once the change "
                            "reaches that node)"
                      : p[0] == RMX_VERDICT_IDENTITY
                          ? "this node's certificate names another node than its [node] id"
                          : "it did not accept this node's preamble (another pchat version?)";
    rmx_refuse_log(m, REFUSE_DIAL_VERDICT, hashText(d->address) ^ p[0],
                   "cluster port: the node at %s refused this node: %s", d->address, why);
    rmx_dial_fail(d, PC_EDENIED);
}

static void dialError(struct pc_tls_pipe *tp, void *arg, int status, const char *why)
{
    struct rmx_dial *d = arg;
    struct raft_mux *m = d->m;
    if (status == PC_EPROTO) {
        /* Refused by the acceptor (an alert), or its certificate failed our checks. */
        m->stats.dials_refused++;
        rmx_refuse_log(m, REFUSE_DIAL_TLS, hashText(d->address) ^ hashText(why),
                       "cluster port: TLS with the node at %s failed: %s; %s", d->address, why,
                       handshakeHint(why, false));
        rmx_dial_fail(d, PC_EDENIED);
        return;
    }
    /* Closed without a word: a node stopping looks like this, and so does a node without
     * [cluster] tls_* (it says so in its own log when it sees our hello, and this node logs
     * its refused dials): not counted as a refusal. */
    bool handshaken = SSL_is_init_finished(pc_tls_pipe_ssl(tp));
    rmx_log_limited(m, PC_LOG_INFO, "cluster port: connection to %s ended %s: %s", d->address,
                    handshaken ? "before its verdict" : "during the TLS handshake (is it stopping, "
                                                        "or without [cluster] tls_*?)",
                    why);
    rmx_dial_fail(d, PC_EUNAVAIL);
}

static void dialClosed(void *arg, const char *why)
{
    (void)why;
    rmx_dial_closed(arg);
}

int rmx_tls_dial_new(struct rmx_dial *d)
{
    struct pc_tls_pipe_cbs cbs = {.arg = d, .handshake = dialHandshake, .data = dialData,
                                  .error = dialError, .closed = dialClosed};
    return pc_tls_pipe_new(d->m->loop, d->m->tls, false, &cbs, &d->tp);
}

int rmx_tls_dial_connected(struct rmx_dial *d)
{
    return pc_tls_pipe_start(d->tp);
}

void rmx_tls_dial_close(struct rmx_dial *d)
{
    pc_tls_pipe_close(d->tp, false);
}
