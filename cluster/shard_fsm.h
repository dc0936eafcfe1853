/* A shard raft group's state machine: room message logs ordered by raft. */
#ifndef SHARD_FSM_H
#define SHARD_FSM_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/shard_op.h"

struct store;
struct shard_fsm;

/* Hooks run inside raft callbacks (apply, restore) on the loop thread: they record and
 * schedule, and never call into raft. */
struct shard_fsm_config {
    struct store *st;
    uint32_t group;      /* the shard's raft group id: applied index, event ids, back-fill */
    unsigned compl_mask; /* classes recorded for POST (COMPL_CHAT); EVENT ops are stored as
                            proposed (the proposer filtered them) */
    /* Entry index was applied on this replica (every replica, not only the leader). POSTs
     * carry their assigned seq. ops and their strings are valid during the call only. The
     * leader answers the requests whose tags it finds here and fans the messages out; the
     * proposal's own apply callback fires later (raft defers it), so a tag not reported by
     * then was not applied (its entry was corrupt). */
    void (*applied)(void *ctx, uint64_t index, const struct shard_op *ops, size_t n);
    /* After a snapshot install: messages [from_seq, to_seq] of the room are not stored
     * here; fetch them from a peer replica and hand them to shard_fsm_backfill_store. Until
     * then, history reads of that range must go to a peer. */
    void (*backfill_needed)(void *ctx, uint64_t room_no, uint64_t from_seq, uint64_t to_seq);
    /* After a snapshot install: file records arrived without their bytes; look for them
     * (shard_fsm_missing_files) and fetch them from a peer. */
    void (*files_check)(void *ctx);
    /* A purge was applied here, by an entry or a snapshot install: nothing of the room up to
     * floor is to be fetched or repaired any more. */
    void (*purged)(void *ctx, uint64_t room_no, uint64_t floor);
    void *ctx;
};

int shard_fsm_create(const struct shard_fsm_config *cfg, struct shard_fsm **out);
/* Only after raft_close completed. */
void shard_fsm_destroy(struct shard_fsm *f);

/* The struct raft_fsm (version 2) for raft_init; the apply result is always NULL (results
 * go through the applied hook). */
struct raft_fsm *shard_fsm_raft(struct shard_fsm *f);
/* The raft instance whose raft_last_applied() + 1 is the index of the entry being applied
 * (raft does not pass it). Call after raft_init, before raft_start. */
void shard_fsm_attach(struct shard_fsm *f, struct raft *r);

/* Frames a batch of ops proposed by node as a raft entry (raft_malloc'd, padded to 8). */
int shard_fsm_entry(const char *node, const struct shard_op *ops, size_t n,
                    struct raft_buffer *out);

/* Applies one framed entry at a raft index (what the raft apply callback does, exposed for
 * tests and tools): every op, the compliance events and the applied index go into one
 * batch and one store write. Returns 1 when index is at or below the stored applied index
 * (restart replay: nothing done), 0 when applied (a corrupt entry is applied as nothing but
 * the index, identically on every replica), PC_EIO when the write failed (nothing applied,
 * counters rolled back). */
int shard_fsm_apply_entry(struct shard_fsm *f, uint64_t index, const void *p, size_t len);

uint64_t shard_fsm_applied_index(const struct shard_fsm *f);
/* The room's last assigned (and stored) seq; 0 when it has no messages. */
uint64_t shard_fsm_room_last(struct shard_fsm *f, uint64_t room_no);
/* Calls cb for every file of the group's rooms with chunks missing here (from = the first
 * missing chunk). Returns 0 or PC_EIO. */
int shard_fsm_missing_files(struct shard_fsm *f,
                            void (*cb)(void *ctx, const struct room_file *file, uint32_t from),
                            void *ctx);
/* The room's purge floor: every message up to it is deleted (0 = none). */
uint64_t shard_fsm_room_floor(struct shard_fsm *f, uint64_t room_no);

/* Stores back-filled messages of one room (from a peer, in any order; room_no fields must
 * equal room_no). Only seqs inside a pending back-fill range are written, so a repeat is
 * harmless. Each range record then shrinks to what is still missing and is deleted when
 * complete. Returns the number of the room's ranges still pending (0 = complete), or PC_E*:
 * PC_EINVAL for a message of another room. */
int shard_fsm_backfill_store(struct shard_fsm *f, uint64_t room_no, const struct room_msg *msgs,
                             size_t n);

/* Calls cb for every pending back-fill range of the group (after a restart, to fetch again
 * what the hook asked for before). Returns the number of ranges, or PC_EIO. */
int shard_fsm_backfill_list(struct shard_fsm *f,
                            void (*cb)(void *ctx, uint64_t room_no, uint64_t from_seq,
                                       uint64_t to_seq),
                            void *ctx);

#endif
