/* Outbound connects on the cluster port: connect, TCP_NODELAY, write the preamble, hand the
 * stream over, all within connect_timeout_ms. Shared by raft transports and the peer link. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "cluster/raft_mux_int.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

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

static void dialClosedCb(uv_handle_t *h)
{
    struct rmx_dial *d = h->data;
    struct raft_mux *m = d->m;
    raft_free(h);
    unlinkDial(d);
    m->stats.dials_failed++;
    /* The connect and write requests were completed (with ECANCELED) before this close
     * callback, so the owner may free d inside done. */
    d->done(d, NULL, d->status);
    /* done may have closed the mux; this handle still counts as pending, so m is alive
     * until this accounting. */
    rmx_handle_closed(m);
}

void rmx_dial_fail(struct rmx_dial *d, int status)
{
    if (d->closing)
        return;
    d->closing = true;
    d->status = status;
    d->m->pending_closes++;
    uv_close((uv_handle_t *)d->tcp, dialClosedCb);
}

static void writeCb(uv_write_t *w, int status)
{
    struct rmx_dial *d = w->data;
    if (d->closing)
        return; /* canceled by our own uv_close; dialClosedCb reports */
    if (status != 0) {
        rmx_log_limited(d->m, PC_LOG_INFO, "cluster port: writing a preamble failed: %s",
                        uv_strerror(status));
        rmx_dial_fail(d, PC_EUNAVAIL);
        return;
    }
    struct raft_mux *m = d->m;
    uv_tcp_t *tcp = d->tcp;
    unlinkDial(d);
    m->stats.dials_ok++;
    tcp->data = NULL;
    d->done(d, tcp, 0);
}

static void connectCb(uv_connect_t *c, int status)
{
    struct rmx_dial *d = c->data;
    if (d->closing)
        return;
    if (status != 0) {
        /* Debug only: a peer that is down is refused every retry delay. */
        rmx_log_limited(d->m, PC_LOG_DEBUG, "cluster port: connect failed: %s",
                        uv_strerror(status));
        rmx_dial_fail(d, PC_EUNAVAIL);
        return;
    }
    /* Set before connecting as well; repeated because libuv only applies the flag when it
     * creates the socket, and being sure costs one syscall per connection. */
    uv_tcp_nodelay(d->tcp, 1);
    uv_buf_t b = uv_buf_init((char *)d->preamble, (unsigned)d->preamble_len);
    d->write.data = d;
    int rv = uv_write(&d->write, (uv_stream_t *)d->tcp, &b, 1, writeCb);
    if (rv != 0)
        rmx_dial_fail(d, PC_EUNAVAIL);
}

static void syncFailClosedCb(uv_handle_t *h)
{
    struct raft_mux *m = h->data;
    raft_free(h);
    rmx_handle_closed(m);
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
    d->tcp = raft_malloc(sizeof *d->tcp);
    if (d->tcp == NULL)
        return PC_ENOMEM;
    uv_tcp_init(m->loop, d->tcp);
    d->tcp->data = d;
    uv_tcp_nodelay(d->tcp, 1);
    d->connect.data = d;
    m->stats.dials++;
    int rv = uv_tcp_connect(&d->connect, d->tcp, (struct sockaddr *)&sa, connectCb);
    if (rv != 0) {
        /* Synchronous failure: the contract is that done never fires then. */
        m->stats.dials_failed++;
        rmx_log_limited(m, PC_LOG_INFO, "cluster port: connect to %s failed: %s", address,
                        uv_strerror(rv));
        d->tcp->data = m;
        m->pending_closes++;
        uv_close((uv_handle_t *)d->tcp, syncFailClosedCb);
        d->tcp = NULL;
        return PC_EUNAVAIL;
    }
    d->deadline = uv_now(m->loop) + m->connect_timeout_ms;
    d->prev = NULL;
    d->next = m->dials;
    if (m->dials != NULL)
        m->dials->prev = d;
    m->dials = d;
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
            rmx_log_limited(m, PC_LOG_INFO, "cluster port: connect timed out after %u ms",
                            m->connect_timeout_ms);
            rmx_dial_fail(d, PC_ETIMEDOUT);
        }
    }
}
