/* The pool (cluster.h over raft groups and the peer link): state shared by its files.
 *
 *   pool.c        lifecycle, groups, the loop hooks (prepare: propose; tick: retry), status
 *   pool_route.c  the asking side: requests to owners, re-routing, subscriptions, delivery
 *   pool_owner.c  the owning side: rosters, batches of posts, apply hook, fan-out, replay
 *   pool_meta.c   metadata changes: proposal at the leader, forwarding, read-your-writes
 *
 * docs/POOL.md explains the protocol between them. Everything runs on the node's loop. */
#ifndef POOL_INT_H
#define POOL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <uthash.h>

#include "cluster/cluster.h"
#include "cluster/group.h"
#include "cluster/meta_fsm.h"
#include "cluster/peer.h"
#include "cluster/pool_msg.h"
#include "cluster/raft_mux.h"
#include "cluster/shard_fsm.h"

enum {
    POOL_TICK_MS = 20,
    POOL_PARK_MS = 3000,          /* no owner reachable this long: PC_EUNAVAIL (never committed) */
    POOL_FWD_TIMEOUT_MS = 10000,  /* an owner that never answers: POST unknown, others unavailable */
    POOL_MAX_INFLIGHT = 4,        /* entries in flight per shard */
    POOL_MAX_OPS_PER_ENTRY = 2048,
    POOL_MAX_ENTRY_FILE_BYTES = 1 << 20, /* file chunk bytes per raft entry */
    POOL_REPLAY_MAX = 10000,      /* messages replayed per SUBSCRIBE (the node asks again) */
    POOL_QUIET_ENTER_MS = 3000,   /* a new owner re-adds announced sessions silently */
    POOL_META_WAIT_MS = 5000,     /* longest wait for the local replica to catch up */
    POOL_RESUB_MS = 1000,         /* an unanswered SUBSCRIBE is sent again after this */
    POOL_SYNC_MS = 1000,          /* a metadata sync waits at most this long */
    POOL_BACKFILL_PAGE = 500,
    POOL_BALANCE_TICKS = 250,     /* 5 s between two ownership moves of one node */
    POOL_BALANCE_QUIET_MS = 5000, /* ...of a shard without proposals for this long */
    POOL_DISK_CHECK_MS = 250,     /* how often the data disk's free space is read */
    POOL_COMPL_SWEEP_MS = 1000,   /* how often taken compliance events left behind are swept */
    POOL_SILENT_MS = 1000,        /* a peer silent this long (4 keepalives) is cut off or stopped */
};

struct pool_shard;

/* ---- asking side (pool_route.c) -------------------------------------------------------- */

/* A room request on its way to the owner (or parked until one is known). */
struct pool_fwd {
    UT_hash_handle hh;
    uint64_t req_id;
    struct room_req req; /* user, text, data, file and edit owned (pointing to the next) */
    struct room_file file;
    struct room_edit edit;
    struct pc_arena msgs_arena; /* req.msgs of an IMPORT */
    room_cb cb;
    void *arg;
    uint64_t dest;       /* node it was sent to; 0 = parked */
    unsigned reroutes;
    uint64_t born_ms, sent_ms;
};

struct pool_sub_member {
    uint64_t session;
    char *user;
};

/* A room this node has sessions in: whom it announced them to and what it delivered. */
struct pool_sub {
    UT_hash_handle hh;
    uint64_t room_no;
    uint32_t group;         /* shard group */
    uint64_t last;          /* last seq delivered to the chat layer */
    struct pool_sub_member *members;
    size_t n_members, cap_members;
    uint64_t owner, term;   /* the subscription's owner and the group term it was made in */
    uint64_t sub_req;       /* a SUBSCRIBE awaiting its answer (0 = none) */
    uint64_t sub_owner, sub_term, sub_sent_ms;
    unsigned users;         /* users present, as the owner last told */
    uint64_t catch_up;      /* the owner's last seq when it answered: a replay of more than
                               POOL_REPLAY_MAX comes in rounds, asked until last reaches it */
};

/* ---- owning side (pool_owner.c) -------------------------------------------------------- */

/* An op of this node's proposals, from arrival until applied or failed. */
/* Bytes of message text one history answer carries at most (a peer frame is 4 MiB). */
#define POOL_MAX_ANSWER_TEXT (2u << 20)

struct pool_op {
    UT_hash_handle hh;           /* in shard->proposed, by tag */
    TAILQ_ENTRY(pool_op) link;   /* in shard->pending */
    uint64_t tag;                /* node id << 40 | counter: unique pool-wide */
    uint64_t origin, req_id;     /* POST: who asked; EVENT: 0; EDIT: on the last one */
    uint64_t answer_seq;         /* EDIT: how many the request changed (its answer) */
    uint64_t answer_floor;       /* EDIT: where its scan stopped (0 = at the end) */
    struct shard_op op;          /* strings owned */
};

struct pool_owned_session {
    UT_hash_handle hh;
    struct { uint64_t node, session; } key;
    char *user;
};

struct pool_owned_user {
    UT_hash_handle hh;
    char *user;
    unsigned sessions;
};

/* A room of a shard this node leads: who is in it, through which node. Soft state, rebuilt
 * from JOINs and SUBSCRIBEs after every change of leader. */
struct pool_owned {
    UT_hash_handle hh;
    uint64_t room_no;
    uint32_t group;
    struct pool_owned_session *sessions;
    struct pool_owned_user *users;
    struct { uint64_t node; unsigned sessions; } nodes[16];
    size_t n_nodes;
};

struct pool_shard {
    struct cluster *pl;
    uint32_t id; /* raft group id = meta shard + 1 */
    struct group *g;
    struct shard_fsm *fsm;
    TAILQ_HEAD(, pool_op) pending;
    size_t n_pending;
    struct pool_op *proposed;
    unsigned inflight;
    uint64_t ready_ms; /* when this node became its ready leader (0 = not) */
    uint64_t proposed_ms; /* last proposal (the balancer moves only shards quiet for a while) */
    int64_t last_ts_us;
};

/* ---- metadata (pool_meta.c) ------------------------------------------------------------ */

struct pool_meta_call {
    TAILQ_ENTRY(pool_meta_call) link;  /* meta_out: local callers */
    TAILQ_ENTRY(pool_meta_call) plink; /* meta_propose */
    struct cluster *cl;
    bool queued, is_init, is_sync;
    uint64_t req_id;
    struct meta_op op;        /* owned (meta_op_clear) */
    meta_cb cb;               /* a local caller; NULL for a remote one */
    void *arg;
    uint64_t origin, origin_req; /* a remote caller */
    uint64_t dest;            /* local caller: the leader it was sent to (0 = not sent) */
    uint64_t born_ms, sent_ms;
    struct meta_result res;
    uint64_t wait_index;      /* answered: deliver once the local replica applied this */
    uint64_t answered_ms;     /* 0 = not answered yet */
    bool proposing;
};
TAILQ_HEAD(pool_meta_list, pool_meta_call);

/* ---- the pool ------------------------------------------------------------------------------ */

struct pool_backfill {
    struct pool_backfill *next;
    struct cluster *cl;
    uint64_t retry_ms;
    bool reading;
    uint32_t group;
    uint64_t room_no, from, to; /* still missing: [from, to] */
    unsigned misses;            /* answers without the messages: ask the next peer */
};

struct cluster {
    uv_loop_t *loop;
    struct cluster_config cfg;
    char *node_label, *address;
    struct cluster_node *nodes;
    size_t n_nodes;
    uint64_t self;
    struct store *st;
    struct cluster_sink sink;

    struct raft_mux *mux;
    struct peer_link *peers;
    struct group *meta_g;
    struct meta_fsm *meta_fsm;
    struct pool_shard *shards;
    uint32_t n_shards;

    uv_prepare_t prepare;
    uv_timer_t tick;
    unsigned ticks, member_ticks;

    /* asking side */
    struct pool_fwd *fwds;
    uint64_t next_req_id;
    size_t n_fwd_posts;
    struct pool_sub *subs;
    struct pool_backfill *backfills;
    struct pool_filefix *filefixes;
    uint64_t retention_due_ms;
    struct upload_seen *uploads_seen; /* files with chunks and no record (pool_uploads.c) */
    uint64_t uploads_due_ms, uploads_sweep;
    uint64_t compl_sweep_due_ms;

    /* owning side */
    struct pool_owned *owned;
    uint64_t next_tag;
    size_t n_owner_pending;

    /* metadata */
    struct pool_meta_list meta_out;     /* local callers, until delivered */
    struct pool_meta_list meta_propose; /* to propose at the next prepare (leader only) */
    bool init_proposed;

    /* the data disk guard (pool_disk.c) */
    struct pool_disk {
        uint64_t next_check_ms;
        uint64_t free_bytes, total_bytes;
        uint64_t enospc_seen;     /* store_enospc_count() at the last check */
        const char *noted;        /* disk_note_enospc's reason, until the next check */
        uint64_t enospc_until_ms; /* a RocksDB ENOSPC holds the state at least until then */
        bool full;
        bool gate_closed;         /* store writes refused (store_set_write_gate) */
        bool statvfs_failed;      /* logged once */
        uint64_t full_since_ms;
        uint64_t events, refused;
        uint64_t shed_due_ms;     /* when to hand led groups away again while full */
        uint64_t *full_peers;     /* ids of peers that said their disk is full */
        size_t n_full_peers;
    } disk;

    bool closing;
    int handles_left, groups_left;
    void (*close_cb)(void *);
    void *close_arg;
    struct cluster_stats stats;
};

/* pool.c */
struct pool_shard *pool_shard_of_room(struct cluster *cl, uint64_t room_no);
struct pool_shard *pool_shard_by_group(struct cluster *cl, uint32_t group);
/* Sends one encoded payload to a node; logs and returns the peer_send status. */
int pool_send(struct cluster *cl, uint64_t node, uint8_t type, const struct pc_buf *b);

/* pool_route.c */
int route_submit(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg);
void route_complete(struct cluster *cl, uint64_t req_id, const struct room_res *res);
void route_event(struct cluster *cl, const struct room_event *ev);
void route_resync(struct cluster *cl, uint64_t owner);
/* A RESYNC from node: it lost what it had queued for us; re-asks what can be re-asked. */
void route_answers_lost(struct cluster *cl, uint64_t node);
void route_link(struct cluster *cl, uint64_t node, bool up);
void route_tick(struct cluster *cl, uint64_t now);
void route_backfill_needed(struct cluster *cl, uint32_t group, uint64_t room_no, uint64_t from,
                           uint64_t to);
void route_close(struct cluster *cl);
unsigned route_room_users(const struct cluster *cl, uint64_t room_no);

/* pool_handover.c */
/* True for this node, and for a peer whose link is up and that was heard from within
 * POOL_SILENT_MS (a link can look up for seconds after its peer was cut off). */
bool pool_node_alive(const struct cluster *cl, uint64_t node);
/* Why node cannot take group g's leadership from this node right now (not another voter,
 * not alive, disk full, log behind), or NULL when it can. */
const char *handover_unfit(struct cluster *cl, struct group *g, uint64_t node);
/* Hands g's leadership to node, or (node 0) to the fit voter that lags least. Returns 0
 * (raft_transfer started), PC_ENOTLEADER, PC_EBUSY (a transfer runs), PC_ENOTFOUND (node is
 * not another voter), PC_EUNAVAIL (node, or every voter, is unfit: *why says why). */
int handover_start(struct cluster *cl, struct group *g, uint64_t node, const char **why);

/* pool_balance.c */
/* Every node, every POOL_BALANCE_TICKS: gives away one quiet shard beyond its share. */
void balance(struct cluster *cl);

/* pool_disk.c */
/* Reads the data disk's free space (at most every POOL_DISK_CHECK_MS unless force) and
 * enters or leaves the disk-full state, logging each change once. */
void disk_check(struct cluster *cl, uint64_t now, bool force);
/* Something other than the free-space reading found the disk full (raft refused an entry
 * with RAFT_NOSPACE): enters the disk-full state now, what says why. */
void disk_note_enospc(struct cluster *cl, const char *what);
/* A peer's NODE_STATE message, and the peer link coming up (this node tells its state). */
void disk_peer_state(struct cluster *cl, uint64_t node, unsigned flags);
void disk_link(struct cluster *cl, uint64_t node, bool up);
/* True when node (this one or a peer) said its data disk is full: balancing gives it no
 * shard, since it would have to hand it away again. */
bool disk_node_full(const struct cluster *cl, uint64_t node);
void disk_close(struct cluster *cl);
/* True while this node must not propose writes; counts the refusal. */
bool disk_refuse_write(struct cluster *cl);

/* pool_members.c */
void members_tick(struct cluster *cl);
/* The cluster port's admit filter (raft_mux_set_admit; arg = cl): whether node id may talk
 * to this node. See pool_members.c. */
bool members_admit(void *arg, uint64_t id);

/* pool_backfill.c */
void backfill_tick(struct cluster *cl, uint64_t now);
/* True when messages a history read of the room should return (the newest `count` below
 * seq `bound`; it got msgs[0..n), oldest first) are still to be back-filled here: the store
 * skips them without a trace. */
bool backfill_hides(const struct cluster *cl, uint64_t room_no, uint64_t bound, uint32_t count,
                    const struct room_msg *msgs, size_t n);
void backfill_close(struct cluster *cl);
/* The room was purged up to floor here: nothing below it is to be fetched any more. */
void backfill_purged(struct cluster *cl, uint64_t room_no, uint64_t floor);
/* True while some of the room's messages are still to be fetched here. */
bool backfill_pending(const struct cluster *cl, uint64_t room_no);

/* pool_owner.c */
void owner_request(struct cluster *cl, uint64_t origin, uint64_t req_id, const struct room_req *req);
void owner_answer(struct cluster *cl, uint64_t origin, uint64_t req_id, const struct room_res *res);
/* Queues op (its strings and bytes owned from now on) for the shard's next proposal;
 * origin and req_id name the request to answer (0: none). */
struct pool_op *owner_queue(struct pool_shard *sh, uint64_t origin, uint64_t req_id,
                            struct shard_op op);

/* pool_filefix.c: chunks of files a snapshot install left missing here */
void filefix_scan(struct cluster *cl, struct pool_shard *sh);
void filefix_tick(struct cluster *cl, uint64_t now);
void filefix_close(struct cluster *cl);
/* After a file's announcing post applied here: repair it if chunks are missing. */
void filefix_check(struct cluster *cl, struct pool_shard *sh, uint64_t room_no, uint64_t file_no);
/* The room was purged here: drop the repairs of files that are gone. */
void filefix_purged(struct cluster *cl, uint64_t room_no);

/* pool_retention.c: purges of rooms with retention, proposed by their shards' leaders */
void retention_tick(struct cluster *cl, uint64_t now);

/* pool_uploads.c: chunks of uploads never finished, dropped by their shards' leaders */
void uploads_tick(struct cluster *cl, uint64_t now);
void uploads_free(struct cluster *cl);
/* Every chunk of the file is stored here (the owner checks before announcing it). */
bool owner_file_complete(struct cluster *cl, const struct room_file *f);

/* pool_edit.c: administrators' edits and purges, chosen at the owner */
void owner_edit(struct pool_shard *sh, uint64_t origin, uint64_t req_id, const struct room_req *req);
void owner_purge(struct pool_shard *sh, uint64_t origin, uint64_t req_id, const struct room_req *req);
void owner_import(struct pool_shard *sh, uint64_t origin, uint64_t req_id, const struct room_req *req);
/* The newest seq in (floor, last] stamped at or before to_us (floor when none). */
uint64_t owner_purge_seq(struct cluster *cl, uint64_t room_no, uint64_t floor, uint64_t last,
                         int64_t to_us);
void owner_subscribe(struct cluster *cl, uint64_t origin, const struct pool_subscribe *sub);
void owner_applied(void *ctx, uint64_t index, const struct shard_op *ops, size_t n);
void owner_leadership(struct pool_shard *sh, bool ready);
void owner_propose(struct pool_shard *sh);
void owner_link(struct cluster *cl, uint64_t node, bool up);
void owner_close(struct cluster *cl);

/* pool_meta.c */
void meta_request(struct cluster *cl, uint64_t origin, const struct pool_meta_req *in);
void meta_sync_request(struct cluster *cl, uint64_t origin, uint64_t req_id);
void meta_answer(struct cluster *cl, const struct pool_meta_res *res);
void meta_prepare(struct cluster *cl);
void meta_tick(struct cluster *cl, uint64_t now);
void meta_leadership(struct cluster *cl, bool ready);
void meta_close(struct cluster *cl);

#endif
