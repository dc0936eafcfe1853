/* The metadata raft group's state machine: meta_apply behind canonical raft's struct raft_fsm. */
#ifndef META_FSM_H
#define META_FSM_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/meta.h"

struct store;
struct meta_fsm;

struct meta_fsm_config {
    struct store *st;
    unsigned compl_mask; /* compliance classes meta_apply records (COMPL_CLASS bits) */
    /* The metadata changed: an operation was applied successfully at index, or a snapshot
     * was installed. For caches. Runs inside a raft callback: record, never call raft. */
    void (*changed)(void *ctx, uint64_t index);
    void *ctx;
};

/* Loads the metadata from the store (meta_load). PC_E* when it is unreadable. */
int meta_fsm_create(const struct meta_fsm_config *cfg, struct meta_fsm **out);
/* Frees the FSM (and any result not released). Only after raft_close completed. */
void meta_fsm_destroy(struct meta_fsm *f);

/* The struct raft_fsm (version 2) for raft_init; valid until meta_fsm_destroy. */
struct raft_fsm *meta_fsm_raft(struct meta_fsm *f);
/* Tells the FSM which raft instance drives it: raft does not pass the entry index to apply,
 * so apply reads raft_last_applied(r) + 1. Call after raft_init, before raft_start. */
void meta_fsm_attach(struct meta_fsm *f, struct raft *r);

/* The node's metadata replica, for reads. Pointers inside stay valid until the next apply
 * or restore (both run on the loop, inside raft). */
const struct meta *meta_fsm_meta(const struct meta_fsm *f);

/* Frames an operation as a raft entry for group_propose (raft_malloc'd, padded to 8). */
int meta_fsm_entry(const struct meta_op *op, struct raft_buffer *out);

/* Applies one framed entry at a raft index: what the raft apply callback does, exposed for
 * tests and tools. Entries at or below the stored applied index are skipped (restart
 * replay): returns 1 and res->status = 0. Otherwise returns 0 with res filled: the op was
 * applied (status 0), refused by meta_apply, or the entry was corrupt (PC_ECORRUPT); in
 * every one of those cases the applied index advanced, identically on every replica, so one
 * bad entry never wedges the group. Returns PC_EIO when the store write failed: nothing was
 * applied and the in-memory state was reloaded from the store. res may be NULL. */
int meta_fsm_apply_entry(struct meta_fsm *f, uint64_t index, const void *p, size_t len,
                         struct meta_result *res);

/* Result ownership through raft. The apply callback of the proposer (raft_apply's cb, or
 * group_apply_cb) receives `result` = a struct meta_result * owned by this FSM, or NULL when
 * there is nothing to report (entry skipped on replay). The callback reads it (copy what it
 * needs) and must hand it back with meta_fsm_result_release before returning. A result is
 * only made while this node is the leader (only a leader has waiting proposers); results
 * that raft never delivers (an entry of an earlier term, a proposal failed by a leadership
 * change) are freed at the next release of a later index, or by meta_fsm_destroy. */
void meta_fsm_result_release(struct meta_fsm *f, struct meta_result *res);

#endif
