/* Pieces shared by the metadata and shard state machines (internal to cluster/). */
#ifndef FSM_UTIL_H
#define FSM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "common/pc_bin.h"
#include "common/pc_buf.h"

#include <raft.h>

#include "cluster/entry.h"

struct store;
struct store_batch;

/* Outcome of applying an entry at an index the store already holds (restart replay). */
enum { FSM_APPLIED = 0, FSM_SKIPPED = 1 };

/* An applied entry could not be stored (rc: PC_ENOSPC when the disk guard holds writes
 * back or the disk is full, else PC_EIO): logs why and ends the process with status 75
 * (EX_TEMPFAIL; systemd starts it again). It must not return an error to raft: libraft
 * 0.22.1 then frees the received entries a second time (recvCb) and corrupts memory. The
 * raft log still holds the entry and the stored applied index is below it, so the next
 * start applies it again. Never returns. */
_Noreturn void fsm_store_failed(const char *what, uint64_t index, int rc);

/* The group's applied index as stored (0 when none). */
uint64_t fsm_stored_applied(struct store *st, uint32_t group);
void fsm_put_applied(struct store_batch *b, uint32_t group, uint64_t index);

/* The smallest key greater than every key starting with prefix, into out (same length).
 * Returns its length, or 0 when there is none (prefix all 0xff: iterate unbounded). */
size_t fsm_prefix_end(const uint8_t *prefix, size_t len, uint8_t *out);

/* Snapshot section with the group's compliance events: those the dispatcher has not
 * confirmed yet are mutable state (DESIGN.md §3.6: a leader change never skips an event),
 * so a replica that installs a snapshot must get them. Format: (u8 1, bytes key, bytes
 * value)* u8 0. */
int fsm_compl_snapshot(struct store *st, uint32_t group, struct pc_buf *out);
/* Reads that section from r, validating every key and event, and adds to b: delete the
 * group's events, then put the snapshot's. PC_ECORRUPT on a defect (b is then garbage). */
int fsm_compl_restore(struct pc_bin_reader *r, uint32_t group, struct store_batch *b);

/* Ends an FSM snapshot callback: unless rc already failed, frames body as one entry of kind
 * and hands it to raft as the single snapshot buffer (version 2 without snapshot_finalize:
 * raft owns the array and the buffer). Frees body. Returns 0 or a RAFT_* code. */
int fsm_snapshot_hand_over(int rc, enum entry_kind kind, struct pc_buf *body,
                           struct raft_buffer *bufs[], unsigned *n_bufs);

/* Starts reading a snapshot written by the same FSM: checks the entry framing, its kind
 * and the version byte, reads the applied index, and leaves r at the FSM's own sections.
 * PC_ECORRUPT on any defect. */
int fsm_snapshot_open(const void *p, size_t len, enum entry_kind kind, uint8_t version,
                      struct pc_bin_reader *r, uint64_t *applied);

#endif
