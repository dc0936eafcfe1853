/* A thin layer over raft_uv's raft_io that keeps libraft 0.22.1 out of a crash.
 *
 * libraft 0.22.1, src/legacy.c takeSnapshotCb: when an InstallSnapshot from the leader
 * arrives while this node is writing a snapshot of its own, raft parks the install as
 * "pending" and starts it once the own snapshot is written, but the two lines that do it are
 * swapped (`pending = NULL; persist = pending;`), so it starts a NULL request and the node
 * dies with SIGSEGV at address 0x48. It happens to a follower that comes back behind (after
 * a pause, a partition or a restart): it applies the entries it gets first, crosses its
 * snapshot threshold, and the leader, whose log no longer reaches that far back, sends a
 * snapshot at the same moment. Reproduced on loopback in 2 of 2 runs with
 * `[cluster] snapshot_entries = 16` and a follower stopped for 2 s under load.
 *
 * The guard holds such an InstallSnapshot back until this node's own snapshot write has
 * finished, then hands it to raft on the next loop pass: the order raft meant to follow.
 * Only the newest one is kept (the leader may resend). Nothing else passes through it.
 *
 * Use: embed it, call raft_io_guard_init right after raft_uv_init, give &guard.io to
 * raft_init, and close it just before raft_close.
 *
 * For tests only: PCHAT_FAULT_SNAPSHOT_WRITE_MS=N in the environment makes each of the
 * node's own snapshot writes report done N ms late (a slow disk), so that a leader's
 * snapshot surely meets one in progress. */
#ifndef RAFT_IO_GUARD_H
#define RAFT_IO_GUARD_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct take;

struct raft_io_guard {
    struct raft_io io; /* raft_uv's, with start and snapshot_put wrapped */
    int (*uv_start)(struct raft_io *, unsigned, raft_io_tick_cb, raft_io_recv_cb);
    int (*uv_snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *,
                           const struct raft_snapshot *, raft_io_snapshot_put_cb);
    raft_io_recv_cb raft_recv;     /* raft's own receive callback */
    bool taking;                   /* this node's own snapshot is being written */
    bool holding;                  /* `held` is an InstallSnapshot raft has not seen yet */
    bool closing;
    struct raft_message held;
    uv_loop_t *loop;
    uv_timer_t *release;           /* hands `held` over on the next loop pass; made when first
                                    * needed, so that a group failing to start has no handle */
    uint64_t held_total;           /* installs held back since start (for the log) */
    unsigned fault_delay_ms;       /* PCHAT_FAULT_SNAPSHOT_WRITE_MS */
    struct take *delayed;          /* an own snapshot written, its completion held that long */
};

/* Wraps guard->io, which raft_uv_init has just filled. */
void raft_io_guard_init(struct raft_io_guard *guard, uv_loop_t *loop);

/* Drops a held install and releases the guard's timer (by itself, later). Call before raft_close;
 * the guard's memory may go as soon as raft's and raft_uv's may. */
void raft_io_guard_close(struct raft_io_guard *guard);

#endif
