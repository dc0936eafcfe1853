/* Holds an InstallSnapshot back while the node writes its own snapshot (raft_io_guard.h). */
#include "cluster/raft_io_guard.h"

#include <stddef.h>
#include <stdlib.h>

#include "common/pc_log.h"

/* One own snapshot write in flight: raft's request and callback, and ours in between. */
struct take {
    struct raft_io_snapshot_put put; /* what raft_uv sees */
    struct raft_io_snapshot_put *raft_req;
    raft_io_snapshot_put_cb raft_cb;
    struct raft_io_guard *guard;
    uv_timer_t delay;                /* PCHAT_FAULT_SNAPSHOT_WRITE_MS */
    int status;
};

static struct raft_io_guard *guard_of(struct raft_io *io)
{
    return (struct raft_io_guard *)((char *)io - offsetof(struct raft_io_guard, io));
}

/* What raft's own receive callback does with a message it must drop (legacy.c recvCb). */
static void drop_held(struct raft_io_guard *guard)
{
    if (!guard->holding)
        return;
    raft_configuration_close(&guard->held.install_snapshot.conf);
    raft_free(guard->held.install_snapshot.data.base);
    guard->holding = false;
}

static void release_cb(uv_timer_t *t)
{
    struct raft_io_guard *guard = t->data;
    /* Another own snapshot may have started since: wait for that one too. */
    if (guard->closing || guard->taking || !guard->holding)
        return;
    struct raft_message m = guard->held;
    guard->holding = false;
    guard->raft_recv(&guard->io, &m);
}

static void recv_cb(struct raft_io *io, struct raft_message *m)
{
    struct raft_io_guard *guard = guard_of(io);
    if (!guard->taking || guard->closing || m->type != RAFT_INSTALL_SNAPSHOT) {
        guard->raft_recv(io, m);
        return;
    }
    /* raft_uv reuses *m after we return; the configuration and the data are ours now. */
    drop_held(guard);
    guard->held = *m;
    guard->holding = true;
    guard->held_total++;
    pc_notice("cluster: an InstallSnapshot (index %llu) waits until this node's own snapshot "
            "is written (libraft 0.22.1 would crash on it now; %llu held so far)",
            (unsigned long long)m->install_snapshot.last_index,
            (unsigned long long)guard->held_total);
}

static int start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct raft_io_guard *guard = guard_of(io);
    guard->raft_recv = recv;
    return guard->uv_start(io, msecs, tick, recv_cb);
}

static void take_freed(uv_handle_t *h)
{
    raft_free(h->data);
}

/* Tells raft its snapshot is written, and hands over an install held meanwhile. */
static void take_finish(struct take *t)
{
    struct raft_io_guard *guard = t->guard;
    guard->taking = false;
    guard->delayed = NULL;
    t->raft_cb(t->raft_req, t->status);
    if (guard->fault_delay_ms != 0)
        uv_close((uv_handle_t *)&t->delay, take_freed);
    else
        raft_free(t);
    if (!guard->holding || guard->closing)
        return;
    /* Not from here: raft_uv is still inside its own completion. */
    if (guard->release == NULL) {
        guard->release = raft_malloc(sizeof *guard->release);
        if (guard->release == NULL) {
            drop_held(guard); /* as if lost on the network: the leader sends it again */
            return;
        }
        uv_timer_init(guard->loop, guard->release);
        guard->release->data = guard;
    }
    uv_timer_start(guard->release, release_cb, 0, 0);
}

static void delay_cb(uv_timer_t *timer)
{
    take_finish(timer->data);
}

static void take_done(struct raft_io_snapshot_put *put, int status)
{
    struct take *t = put->data;
    t->status = status;
    if (t->guard->fault_delay_ms == 0) {
        take_finish(t);
        return;
    }
    t->guard->delayed = t;
    uv_timer_start(&t->delay, delay_cb, t->guard->fault_delay_ms, 0);
}

static int snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct raft_io_guard *guard = guard_of(io);
    /* trailing == 0 is an install from the leader (legacy.c persists those with 0); only a
     * snapshot of our own keeps trailing entries. */
    if (trailing == 0)
        return guard->uv_snapshot_put(io, trailing, req, snapshot, cb);
    struct take *t = raft_malloc(sizeof *t);
    if (t == NULL)
        return RAFT_NOMEM;
    *t = (struct take){.put.data = t, .raft_req = req, .raft_cb = cb, .guard = guard};
    int rv = guard->uv_snapshot_put(io, trailing, &t->put, snapshot, take_done);
    if (rv != 0) {
        raft_free(t);
        return rv;
    }
    if (guard->fault_delay_ms != 0) {
        uv_timer_init(guard->loop, &t->delay);
        t->delay.data = t;
    }
    guard->taking = true;
    return 0;
}

void raft_io_guard_init(struct raft_io_guard *guard, uv_loop_t *loop)
{
    guard->uv_start = guard->io.start;
    guard->uv_snapshot_put = guard->io.snapshot_put;
    guard->io.start = start;
    guard->io.snapshot_put = snapshot_put;
    guard->taking = guard->holding = guard->closing = false;
    guard->held_total = 0;
    guard->loop = loop;
    guard->release = NULL;
    guard->delayed = NULL;
    const char *fault = getenv("PCHAT_FAULT_SNAPSHOT_WRITE_MS");
    guard->fault_delay_ms = fault != NULL ? (unsigned)strtoul(fault, NULL, 10) : 0;
    if (guard->fault_delay_ms > 60000)
        guard->fault_delay_ms = 60000;
    static bool told;
    if (guard->fault_delay_ms != 0 && !told) {
        told = true;
        pc_warn("cluster: PCHAT_FAULT_SNAPSHOT_WRITE_MS=%u: every snapshot this node writes "
                "reports done that late (a test's fault injection; unset it for real use)",
                guard->fault_delay_ms);
    }
}

static void release_closed(uv_handle_t *h)
{
    raft_free(h);
}

void raft_io_guard_close(struct raft_io_guard *guard)
{
    guard->closing = true;
    drop_held(guard);
    if (guard->delayed != NULL) { /* written already: raft may hear so now, before it closes */
        uv_timer_stop(&guard->delayed->delay);
        take_finish(guard->delayed);
    }
    if (guard->release != NULL)
        uv_close((uv_handle_t *)guard->release, release_closed);
    guard->release = NULL;
}
