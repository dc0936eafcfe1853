/* The shard FSM's state, shared by its files (internal to cluster/). */
#ifndef SHARD_FSM_INT_H
#define SHARD_FSM_INT_H

#include "cluster/roomlog.h"
#include "cluster/shard_fsm.h"
#include "cluster/shard_op.h"
#include "common/pc_bin.h"

struct shard_fsm {
    int last_store_rc; /* of the last store write in apply (fsm_store_failed says it) */
    struct raft_fsm fsm;
    struct shard_fsm_config cfg;
    struct raft *raft;
    struct roomlog log; /* this shard's rooms only: the rooms of two shards never mix */
    uint64_t applied;
    struct store_batch *batch;
};

/* A room's ranges still waiting for back-fill ('b' records), in seq order (malloc'd). */
struct shard_range {
    uint64_t from, to;
};
int shard_backfill_ranges(struct shard_fsm *f, uint64_t room_no, struct shard_range **out,
                          size_t *n);

/* Administrators' edits and purges (shard_edit.c). The apply functions add to f->batch. */
void shard_edit_apply(struct shard_fsm *f, uint64_t index, uint32_t n, const char *node,
                      const struct shard_op *op);
void shard_purge_apply(struct shard_fsm *f, uint64_t index, uint32_t n, const char *node,
                       const struct shard_op *op);
/* Purges the room up to seq into batch b (messages, edits, files, back-fill records) and
 * sets the room's floor: the part of a PURGE that a snapshot install repeats. */
void shard_purge_room(struct shard_fsm *f, struct store_batch *b, uint64_t room_no, uint64_t seq);
/* Appends an imported message (op->target_seq must be the room's next id; else skipped). */
void shard_import_apply(struct shard_fsm *f, const struct shard_op *op);
/* Applies a stored edit of m's seq to m (text copied into buf). */
void shard_edit_overlay(struct shard_fsm *f, struct room_msg *m, struct pc_buf *buf);
/* Snapshot section of the group's edits: (u8 1, uv room, uv seq, u8 flags, str text)* u8 0;
 * restore re-applies them to the messages stored here. */
int shard_edit_snapshot(struct shard_fsm *f, const uint64_t *rooms, size_t n_rooms,
                        struct pc_buf *out);
int shard_edit_restore(struct shard_fsm *f, struct pc_bin_reader *r, struct store_batch *b);

#endif
