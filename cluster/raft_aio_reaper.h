/* Keeps libraft's io_destroy(2) calls off the event loop.
 *
 * libraft 0.22.1 gives every open raft segment a kernel AIO context of its own and, when the
 * segment is full (or truncated, or the group closes), destroys it with io_destroy on the
 * thread that closes the writer: the node's event loop. io_destroy waits for an RCU grace
 * period, 30-45 ms on this machine's kernel whatever the load (rcu_expedited does not
 * change it). Every segment roll of every group froze the whole node that long: with
 * 1 MiB segments, 10-30 passes of 25-80 ms per node in 15 s of scenario (a) of `make bench`
 * (pchat_loop_pass_seconds), and a post->delivery p99 of 58 ms at 10,000 deliveries/s where
 * the p90 was 2.6 ms.
 *
 * libraft makes the call through libc's syscall(3). This module defines syscall() in the
 * program, which the dynamic linker then binds every library's calls to. Every system call
 * goes through unchanged except io_destroy: its context goes to a thread of ours that
 * destroys it, and the caller is told at once that it is done. libraft destroys a context
 * only when nothing is in flight on it (the writer is closed, or its one request has
 * completed), and nothing reads it afterwards, so only the freeing is later.
 *
 * raft_aio_reaper_start starts the thread (raft groups call it; the interposer starts it
 * itself otherwise). If the thread cannot run, io_destroy is done in place, as before. */
#ifndef RAFT_AIO_REAPER_H
#define RAFT_AIO_REAPER_H

#include <stdint.h>

void raft_aio_reaper_start(void);
/* AIO contexts the thread has destroyed so far. */
uint64_t raft_aio_reaper_reaped(void);

#endif
