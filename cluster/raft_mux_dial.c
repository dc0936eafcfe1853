/* Outbound connects on the cluster port: connect, TCP_NODELAY, write the preamble (TLS: after
 * the handshake, then wait for the acceptor's verdict; raft_mux_auth.c), hand the stream
 * over, all within connect_timeout_ms. Shared by raft transports and the peer link. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "cluster/raft_mux_int.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_tls_pipe.h"

/* A peer that loses power sends no FIN: without these the peer link's queue to it would sit
 * (and fill to PC_EBUSY) for the kernel's ~15 min retransmission timeout, and an idle link
 * would look up forever. Keepalive probes an idle link; TCP_USER_TIMEOUT fails one whose
 * data goes unacknowledged. Set on the real socket, which in TLS mode the consumer never
 * sees. */
#define RMX_KEEPALIVE_S 5
#define RMX_USER_TIMEOUT_MS 10000

static uv_tcp_t *dialTcp(struct rmx_dial *d)
{
    return d->tp != NULL ? pc_tls_pipe_tcp(d->tp) : d->tcp;
}

static void unlinkDial(struct rmx_dial *d)
{
    struct raft_mux *m = d->m;
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        m->dials = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    d->prev = d->next = NULL;
}

void rmx_dial_closed(struct rmx_dial *d)
{
    struct raft_mux *m = d->m;
    unlinkDial(d);
    m->stats.dials_failed++;
    /* The connect and write requests were completed (with ECANCELED) before this, so the
     * owner may free d inside done. */
    d->done(d, NULL, d->status);
    /* done may have closed the mux; this handle still counts as pending, so m is alive
     * until this accounting. */
    rmx_handle_closed(m);
}

static void dialClosedCb(uv_handle_t *h)
{
    struct rmx_dial *d = h->data;
    raft_free(h);
    rmx_dial_closed(d);
}

void rmx_dial_fail(struct rmx_dial *d, int status)
{
    if (d->closing)
        return;
    d->closing = true;
    d->status = status;
    d->m->pending_closes++;
    if (d->tp != NULL)
        rmx_tls_dial_close(d);
    else
        uv_close((uv_handle_t *)d->tcp, dialClosedCb);
}

void rmx_dial_succeed(struct rmx_dial *d, uv_stream_t *stream)
{
    struct raft_mux *m = d->m;
    unlinkDial(d);
    m->stats.dials_ok++;
    stream->data = NULL;
    d->done(d, stream, 0);
}

static void writeCb(uv_write_t *w, int status)
{
    struct rmx_dial *d = w->data;
    if (d->closing)
        return; /* canceled by our own uv_close; dialClosedCb reports */
    if (status != 0) {
        rmx_log_limited(d->m, PC_LOG_INFO, "cluster port: writing a preamble to %s failed: %s",
                        d->address, uv_strerror(status));
        rmx_dial_fail(d, PC_EUNAVAIL);
        return;
    }
    rmx_dial_succeed(d, (uv_stream_t *)d->tcp);
}

static void connectCb(uv_connect_t *c, int status)
{
    struct rmx_dial *d = c->data;
    if (d->closing)
        return;
    if (status != 0) {
        /* Debug only: a peer that is down is refused every retry delay. */
        rmx_log_limited(d->m, PC_LOG_DEBUG, "cluster port: connect to %s failed: %s",
                        d->address, uv_strerror(status));
        rmx_dial_fail(d, PC_EUNAVAIL);
        return;
    }
    uv_tcp_t *tcp = dialTcp(d);
    /* Set before connecting as well; repeated because libuv only applies the flag when it
     * creates the socket, and being sure costs one syscall per connection. */
    uv_tcp_nodelay(tcp, 1);
    if (d->keepalive)
        raft_mux_tcp_stall_limit(tcp, RMX_USER_TIMEOUT_MS, RMX_KEEPALIVE_S);
    else if (d->stall_ms != 0)
        raft_mux_tcp_stall_limit(tcp, d->stall_ms, 0);
    if (d->tp != NULL) {
        if (rmx_tls_dial_connected(d) != 0)
            rmx_dial_fail(d, PC_EUNAVAIL);
        return;
    }
    uv_buf_t b = uv_buf_init((char *)d->preamble, (unsigned)d->preamble_len);
    d->write.data = d;
    int rv = uv_write(&d->write, (uv_stream_t *)d->tcp, &b, 1, writeCb);
    if (rv != 0)
        rmx_dial_fail(d, PC_EUNAVAIL);
}

int rmx_dial_start(struct raft_mux *m, struct rmx_dial *d, const char *address,
                   rmx_dial_done_cb done)
{
    struct sockaddr_storage sa;
    if (m->closing)
        return PC_ECLOSED;
    if (rmx_parse_address(address, &sa) != 0) {
        pc_warn("cluster port: cannot connect to \"%s\": not an ip:port address", address);
        return PC_EINVAL;
    }
    d->m = m;
    d->done = done;
    d->closing = false;
    d->tcp = NULL;
    d->tp = NULL;
    snprintf(d->address, sizeof d->address, "%s", address);
    if (m->tls != NULL) {
        if (rmx_tls_dial_new(d) != 0)
            return PC_ENOMEM;
    } else {
        d->tcp = raft_malloc(sizeof *d->tcp);
        if (d->tcp == NULL)
            return PC_ENOMEM;
        uv_tcp_init(m->loop, d->tcp);
        d->tcp->data = d;
    }
    d->deadline = uv_now(m->loop) + m->connect_timeout_ms;
    d->prev = NULL;
    d->next = m->dials;
    if (m->dials != NULL)
        m->dials->prev = d;
    m->dials = d;
    uv_tcp_t *tcp = dialTcp(d);
    uv_tcp_nodelay(tcp, 1);
    d->connect.data = d;
    m->stats.dials++;
    int rv = uv_tcp_connect(&d->connect, tcp, (struct sockaddr *)&sa, connectCb);
    if (rv != 0) {
        /* EADDRNOTAVAIL, ENETUNREACH and the like: reported like a refused connect, from the
         * loop, so the owner has one failure path. */
        rmx_log_limited(m, PC_LOG_INFO, "cluster port: connect to %s failed: %s", address,
                        uv_strerror(rv));
        rmx_dial_fail(d, PC_EUNAVAIL);
        return 0;
    }
    rmx_sweep_arm(m);
    return 0;
}

void raft_mux_tcp_stall_limit(uv_tcp_t *tcp, unsigned stall_ms, unsigned keepalive_s)
{
    uv_os_fd_t fd;
    if (keepalive_s > 0)
        uv_tcp_keepalive(tcp, 1, keepalive_s);
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &stall_ms, sizeof stall_ms);
}

void rmx_dial_sweep(struct raft_mux *m, uint64_t now)
{
    /* Failing only marks and closes: the dial stays listed until its close callback, so
     * the walk is safe. */
    for (struct rmx_dial *d = m->dials; d != NULL; d = d->next) {
        if (!d->closing && now >= d->deadline) {
            rmx_log_limited(m, PC_LOG_INFO, "cluster port: connect to %s timed out after %u ms%s",
                            d->address, m->connect_timeout_ms,
                            d->tp != NULL ? " (TLS handshake and verdict included)" : "");
            rmx_dial_fail(d, PC_ETIMEDOUT);
        }
    }
}
