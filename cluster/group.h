/* One raft group of this node: canonical raft on raft_uv, carried by the cluster port. */
#ifndef GROUP_H
#define GROUP_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct raft_mux;
struct group;

#define GROUP_ELECTION_MS 300 /* election timeout when the configuration says 0 */

/* A voter of the group's bootstrap configuration. */
struct group_voter {
    uint64_t id;
    const char *address; /* cluster port "127.0.0.1:7600" */
};

struct group_config {
    uint32_t id;               /* 0 = metadata, 1..S = shards; names the group on the wire */
    const char *dir;           /* raft directory (created if missing) */
    uint64_t self_id;
    const char *self_address;
    const struct group_voter *voters; /* bootstrap configuration (ignored after the first start) */
    size_t n_voters;
    unsigned election_ms;      /* 0 = GROUP_ELECTION_MS */
    unsigned heartbeat_ms;     /* 0 = 50 */
    unsigned segment_bytes;    /* 0 = 1 MiB */
    unsigned snapshot_threshold; /* entries between snapshots; 0 = 1024 */
    unsigned snapshot_trailing;  /* entries kept after a snapshot; 0 = 256 */
    struct raft_fsm *fsm;
    /* The index the FSM's store says it applied last (fsm_stored_applied): a raft log that
     * ends below it after start lost committed entries (a torn or truncated segment file). */
    uint64_t stored_applied;
    /* Milliseconds between raft_uv's retries of a failed segment allocation or write (a full
     * disk); 0 = 1000. */
    unsigned disk_retry_ms;
    /* Called between raft_init and raft_start: the FSMs read the entry index from the raft
     * instance (meta_fsm_attach / shard_fsm_attach), and a 1-voter group applies inside
     * raft_start already. May be NULL. */
    void (*attach)(void *fsm_ctx, struct raft *r);
    void *fsm_ctx;
    /* This node became the group's leader and every earlier entry is applied (ready = true),
     * or stopped being leader (ready = false). Runs on the loop, never inside raft. */
    void (*leadership)(void *ctx, struct group *g, bool ready);
    void *ctx;
};

/* Creates and starts the group (bootstrapping it on first start). Synchronous disk I/O of
 * about 30 ms. Returns 0 or PC_E* with a reason in errmsg. */
int group_start(uv_loop_t *loop, struct raft_mux *mux, const struct group_config *cfg,
                struct group **out, char *errmsg, size_t errlen);

/* Outcome of a proposal: 0 = committed and applied here (result = what the FSM's apply
 * stored); PC_ENOTLEADER = refused before it was appended (not committed); PC_EUNKNOWN =
 * leadership lost after it was appended (it may still commit); PC_EIO = the group failed. */
typedef void (*group_apply_cb)(void *arg, int status, void *result);

/* Proposes one entry: buf is a framed entry from cluster/entry.h (raft_malloc'd, padded to
 * 8 bytes); the group owns it from here on, whatever happens. cb fires exactly once, later,
 * unless this returns non-zero (PC_ENOTLEADER, PC_ENOSPC: raft found the disk too full to
 * append, PC_EIO). Never call from inside a raft
 * callback (an FSM apply): propose from the loop (a prepare or timer callback). */
int group_propose(struct group *g, struct raft_buffer buf, group_apply_cb cb, void *arg);

/* True when this node leads the group and has applied everything before its term. */
bool group_ready_leader(const struct group *g);
/* The leader as this node knows it (0 when unknown) and its cluster address. */
uint64_t group_leader(const struct group *g, const char **address);
uint32_t group_id(const struct group *g);

/* Asks raft to hand leadership to node (0 = the most up-to-date voter). While the transfer
 * runs, proposals are refused (PC_ENOTLEADER: not appended). Returns 0; PC_ENOTLEADER (not
 * the ready leader); PC_EBUSY (a transfer is already running); PC_ENOTFOUND (node is not a
 * voter of the group, or is this node). Never from inside a raft callback. */
int group_transfer(struct group *g, uint64_t node);

/* On the ready leader: how many entries of its log node's replica lacks, as far as raft
 * learnt from the node's answers (raft_match_index; a node that has not answered this
 * leader yet lacks the whole log). Returns 0; PC_ENOTLEADER; PC_ENOTFOUND (node is not in
 * the configuration). */
int group_lag(struct group *g, uint64_t node, uint64_t *lag);

/* A server of the group's current raft configuration (as this node knows it). */
struct group_member {
    uint64_t id;
    const char *address; /* valid until the next loop iteration */
    bool voter;
};
/* Fills up to max members; returns how many there are. */
size_t group_members(const struct group *g, struct group_member *out, size_t max);

/* One configuration change (the leader only, one at a time per group; raft refuses a
 * second with PC_EBUSY): ADD a node as a non-voter (raft catches it up), make it a VOTER
 * (raft first catches it up, then promotes it), or REMOVE it. The outcome is logged; the
 * caller looks at group_members again later. Never from inside a raft callback. */
enum group_change_kind { GROUP_ADD, GROUP_VOTER, GROUP_REMOVE };
int group_change(struct group *g, enum group_change_kind kind, uint64_t id, const char *address);
bool group_changing(const struct group *g);

struct group_status {
    const char *role; /* "leader", "follower", "candidate", "unavailable" */
    unsigned voters;  /* in the configuration as this node knows it */
    uint64_t leader, term, commit_index, last_applied, last_index;
};
void group_status(const struct group *g, struct group_status *out);

/* Closes raft (pending proposals get PC_EUNKNOWN), its I/O and its transport, then cb. */
void group_close(struct group *g, void (*cb)(void *arg), void *arg);

#endif
