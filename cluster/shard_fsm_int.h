/* The shard FSM's state, shared by its files (internal to cluster/). */
#ifndef SHARD_FSM_INT_H
#define SHARD_FSM_INT_H

#include "cluster/roomlog.h"
#include "cluster/shard_fsm.h"

struct shard_fsm {
    struct raft_fsm fsm;
    struct shard_fsm_config cfg;
    struct raft *raft;
    struct roomlog log; /* this shard's rooms only: the rooms of two shards never mix */
    uint64_t applied;
    struct store_batch *batch;
};

#endif
