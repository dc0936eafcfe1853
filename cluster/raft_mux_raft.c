/* The raft_uv_transport of one raft group on the shared cluster port.
 *
 * Contract with libraft 0.22.1 (src/uv.c, uv_send.c, uv_recv.c; verified by the prototype in
 * scratch/raftproto and by tests/unit/test_raft_mux.c):
 * - t->version must be 1 or raft_uv_init fails with RAFT_INVALID;
 * - raft overwrites t->data (uvInit), so our state lives in t->impl;
 * - streams handed to raft are raft_malloc'd (uv_tcp_t plain, uv_pipe_t with TLS); raft only
 *   reads, writes, uv_closes and raft_frees them, whatever their type;
 * - connect: a non-zero return means the callback never fires (raft re-arms its retry
 *   timer); 0 means it fires exactly once, and raft_close waits for it;
 * - close: stop calling accept_cb (raft's assert against it is compiled out, so a late call
 *   would be a silent use-after-close), cancel pending connects, then fire close_cb once;
 * - listen is called from raft_start, so a group is reachable only after raft_start. */
#include <stdio.h>
#include <string.h>

#include "cluster/raft_mux_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

struct raft_dial {
    struct rmx_dial d; /* first: the done callback gets &d */
    struct rmx_group *g;
    struct raft_uv_connect *req;
    raft_uv_connect_cb cb;
};

static void maybeClosed(struct rmx_group *g)
{
    if (!g->closing || g->n_dials > 0 || g->close_cb == NULL)
        return;
    raft_uv_transport_close_cb cb = g->close_cb;
    g->close_cb = NULL;
    /* raft's uvTransportCloseCb only clears transport->data and re-checks its handles, so
     * this may run synchronously inside close(). */
    cb(g->t);
}

static int tpInit(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct rmx_group *g = t->impl;
    if (strlen(address) > RAFT_MUX_ADDR_MAX || strlen(address) == 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "address longer than %d bytes",
                 RAFT_MUX_ADDR_MAX);
        return RAFT_NAMETOOLONG;
    }
    g->id = id;
    snprintf(g->address, sizeof g->address, "%s", address);
    return 0;
}

static int tpListen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct rmx_group *g = t->impl;
    if (g->m->closing) {
        snprintf(t->errmsg, sizeof t->errmsg, "cluster port is closing");
        return RAFT_CANCELED;
    }
    g->accept_cb = cb;
    return 0;
}

static void raftDialDone(struct rmx_dial *d, uv_stream_t *stream, int status)
{
    struct raft_dial *rd = (struct raft_dial *)d;
    struct rmx_group *g = rd->g;
    struct raft_uv_connect *req = rd->req;
    raft_uv_connect_cb cb = rd->cb;
    pc_free(rd);
    g->n_dials--;
    if (status == 0)
        cb(req, stream, 0);
    else
        cb(req, NULL, status == PC_ECANCELED ? RAFT_CANCELED : RAFT_NOCONNECTION);
    /* Last touch of g: the close callback may lead raft to its raft_close callback, where
     * the application calls raft_mux_transport_close and g is freed. */
    maybeClosed(g);
}

static int tpConnect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                     const char *address, raft_uv_connect_cb cb)
{
    struct rmx_group *g = t->impl;
    if (g->closing)
        return RAFT_CANCELED;
    struct raft_dial *rd = pc_calloc(1, sizeof *rd);
    rd->d.expect = id; /* TLS: the acceptor's certificate must name the node raft wants */
    rd->d.stall_ms = g->m->raft_stall_ms; /* see raft_mux.h */
    rd->g = g;
    rd->req = req;
    rd->cb = cb;
    req->cb = cb; /* as the stock transport does */
    rd->d.preamble_len =
        rmx_preamble_encode(rd->d.preamble, RMX_KIND_RAFT, g->group, g->id, g->address);
    int rv = rmx_dial_start(g->m, &rd->d, address, raftDialDone);
    if (rv != 0) {
        pc_free(rd);
        snprintf(t->errmsg, sizeof t->errmsg, "connect to %s: %s", address, pc_strerror(rv));
        return rv == PC_ENOMEM ? RAFT_NOMEM : RAFT_NOCONNECTION;
    }
    g->n_dials++;
    return 0;
}

static void tpClose(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct rmx_group *g = t->impl;
    g->closing = true;
    g->accept_cb = NULL;
    g->close_cb = cb;
    for (struct rmx_dial *d = g->m->dials; d != NULL; d = d->next)
        if (d->done == raftDialDone && ((struct raft_dial *)d)->g == g)
            rmx_dial_fail(d, PC_ECANCELED); /* raft's cb fires from the close callback */
    maybeClosed(g);
}

int raft_mux_transport_init(struct raft_uv_transport *t, struct raft_mux *m, uint64_t group_id)
{
    struct rmx_group *g;
    if (m->closing)
        return PC_ECLOSED;
    HASH_FIND(hh, m->groups, &group_id, sizeof group_id, g);
    if (g != NULL)
        return PC_EEXIST;
    g = pc_calloc(1, sizeof *g);
    g->group = group_id;
    g->m = m;
    g->t = t;
    HASH_ADD(hh, m->groups, group, sizeof g->group, g);
    m->n_transports++;
    memset(t, 0, sizeof *t);
    t->version = 1; /* 0.22.1's raft_uv_init rejects 0 */
    t->impl = g;
    t->init = tpInit;
    t->listen = tpListen;
    t->connect = tpConnect;
    t->close = tpClose;
    return 0;
}

void raft_mux_transport_close(struct raft_uv_transport *t)
{
    struct rmx_group *g = t->impl;
    if (g == NULL)
        return;
    if (g->n_dials > 0) {
        /* Only if raft never closed the transport (raft_init failed after connect, which it
         * does not do today): the dials would call into a dead raft. Refuse to free. */
        pc_error("raft group %llu: transport released with %u connects pending; leaking it",
                 (unsigned long long)g->group, g->n_dials);
        return;
    }
    HASH_DEL(g->m->groups, g);
    g->m->n_transports--;
    pc_free(g);
    t->impl = NULL;
}
