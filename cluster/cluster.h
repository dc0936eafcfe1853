/* The node's view of the pool: metadata reads and writes, room operations at the owner. */
#ifndef CLUSTER_H
#define CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/meta.h"
#include "common/pc_buf.h"
#include "storage/store.h"

/* The room service (chat/) reaches rooms only through this interface: it never sees
 * whether a room's owner is this node or another, whether metadata is replicated or how.
 * All calls and callbacks happen on the node's loop thread. */

struct cluster;
struct store;

/* One stored chat message. Strings are borrowed for the duration of a callback. */
struct room_msg {
    uint64_t room_no;
    uint64_t seq;       /* per-room sequence number, from 1, no gaps */
    int64_t ts_us;      /* server time of the post */
    const char *author; /* "sip:alice@example.test" */
    const char *text;
    uint8_t flags;      /* ROOM_MSG_*: an administrator removed or replaced it */
};

/* A removed message keeps its place (seq, time, author) with no text, so that a room's
 * seqs stay contiguous on every replica; clients never see it. A replaced one carries the
 * administrator's notice as its text. */
#define ROOM_MSG_REMOVED 1u
#define ROOM_MSG_REPLACED 2u

/* A user present in a room (at least one joined session on any node). */
struct room_presence {
    const char *user;
    unsigned sessions;
};

enum room_req_kind {
    ROOM_REQ_POST = 1, /* append a message; the result carries its seq */
    ROOM_REQ_JOIN,     /* a session enters: result = who is present + the last seq */
    ROOM_REQ_PART,     /* a session leaves */
    ROOM_REQ_HISTORY,  /* read up to `count` messages with seq < before (0 = newest) */
    ROOM_REQ_FILE_CHUNK, /* store chunk `chunk` of file `file_no` (committed like a post) */
    ROOM_REQ_FILE_READ,  /* record that user downloads a file (compliance FILEDOWNLOAD) */
    ROOM_REQ_EDIT,       /* remove or replace the messages `edit` selects (administrators) */
    ROOM_REQ_PURGE,      /* delete the messages up to `edit->to_us` (clear, retention) */
    ROOM_REQ_IMPORT,     /* store exported messages `msgs` with their ids, times, authors */
    ROOM_REQ_FILE_FETCH, /* any_replica: chunk `chunk` of file `file_no` from a peer's store
                            (a replica repairing what a snapshot install did not bring) */
};

/* Import (pchatctl import): a message keeps its id, so importing twice changes nothing (an
 * id the room has is skipped) and an imported room reads like the exported one. The first
 * message imported into an empty room may start above 1 (the export began after a purge):
 * the ids below it count as purged. Ids must follow each other from then on. */
#define ROOM_IMPORT_MAX 500

/* Which messages an EDIT changes and how; PURGE uses to_us only. The owner selects them
 * from its store (it holds every committed message) and commits one op per message, so
 * every replica changes exactly the same ones. At most ROOM_EDIT_MAX per request: the
 * answer's seq says how many changed, and the asker repeats while it is the maximum. */
enum room_edit_match {
    ROOM_MATCH_ANY = 0,    /* any of the words */
    ROOM_MATCH_ALL = 1,    /* all of the words */
    ROOM_MATCH_EXACT = 2,  /* the keywords as one phrase */
};
#define ROOM_EDIT_MAX 1000
#define ROOM_EDIT_SCAN 20000 /* messages one request reads: the owner's loop never stalls */
struct room_edit {
    const char *author;    /* "" = any */
    const char *keywords;  /* "" = any text */
    enum room_edit_match match;
    bool case_sensitive;
    int64_t from_us, to_us; /* time range, inclusive (0 = open) */
    uint64_t seq;          /* one message by id (0 = any) */
    bool remove;           /* remove it; else replace its text with req->text */
    uint64_t after;        /* look at messages after this id only (the answer's floor of
                              the previous round: where its scan stopped) */
};

/* Files posted to rooms (web/web_files.c). A file travels through its room's shard group as
 * chunks of at most CLUSTER_FILE_CHUNK bytes (ROOM_REQ_FILE_CHUNK, each committed on a
 * majority before it is acknowledged), then a POST carrying `file` commits the file's
 * record and the room message announcing it together, with a FILEUPLOAD compliance event.
 * Every replica stores the same bytes; a file exists for readers once its POST committed. */
#define CLUSTER_FILE_CHUNK (256u * 1024)
#define CLUSTER_FILE_NAME_MAX 255

struct room_file {
    uint64_t room_no;
    uint64_t file_no;    /* chosen at random by the uploading node */
    const char *name;    /* the uploader's file name (no '/') */
    const char *uploader;
    const char *sha256;  /* hex of the whole content */
    uint64_t size;
    uint32_t chunks;
    int64_t ts_us;       /* of the announcing message */
    uint64_t seq;        /* the announcing message's seq */
};

/* A request to a room's owner. Strings are copied by cluster_room_submit. */
struct room_req {
    enum room_req_kind kind;
    uint64_t room_no;
    const char *user;    /* acting user */
    uint64_t session;    /* JOIN/PART: node-local session id */
    const char *text;    /* POST */
    uint32_t count;      /* HISTORY */
    uint64_t before;     /* HISTORY: exclusive upper bound on seq; 0 = newest */
    uint64_t upto;       /* HISTORY: inclusive upper bound on seq (0 = none), so that the
                            history a joiner reads ends where its live delivery begins */
    bool record_read;    /* HISTORY: write a compliance "read" event */
    bool any_replica;    /* HISTORY: any replica answers from its own store, owner or not
                            (a replica back-filling history after a snapshot install) */
    unsigned replica_pick; /* any_replica: 0 = the leader first; n = the n-th other replica
                              that is up (a retry after the leader lacked it); not sent */
    uint64_t file_no;    /* FILE_CHUNK */
    uint32_t chunk;      /* FILE_CHUNK: 0, 1, … */
    const void *data;    /* FILE_CHUNK: the bytes (copied by cluster_room_submit) */
    size_t data_len;
    const struct room_file *file; /* POST announcing a file (its chunks committed first);
                                     FILE_READ: the file read (name for the record) */
    const struct room_edit *edit; /* EDIT, PURGE (text: EDIT the notice, PURGE the reason) */
    const struct room_msg *msgs;  /* IMPORT: up to ROOM_IMPORT_MAX, in id order */
    size_t n_msgs;
};

struct room_res {
    int status;                    /* 0, PC_EBUSY (503), PC_ENOTFOUND, PC_ENOSPC, PC_EIO,
                                      PC_EUNAVAIL (owner unreachable) */
    uint64_t seq;                  /* POST: assigned seq; JOIN: last committed seq; EDIT:
                                      how many messages changed; PURGE: the room's floor
                                      (every message up to it is gone); IMPORT: the
                                      room's last id after it; HISTORY: the room's last id */
    int64_t ts_us;                 /* POST: server time stamped on the message */
    const struct room_msg *msgs;   /* HISTORY: oldest first */
    size_t n_msgs;
    const struct room_presence *present; /* JOIN: everyone in the room, joiner included */
    size_t n_present;
    uint64_t floor;                /* HISTORY: ids up to here are purged; EDIT: where the
                                      scan stopped (0 = it reached the end) */
    const void *data;              /* FILE_FETCH: the chunk's bytes */
    size_t data_len;
};

typedef void (*room_cb)(void *arg, const struct room_res *res);

/* Events the owner of a room sends to every node with sessions in it, in room order. */
enum room_event_kind {
    ROOM_EV_MESSAGE = 1, /* a committed message (deliver to every session, sender included) */
    ROOM_EV_ENTERED,     /* a user went from absent to present (ntc:join to others) */
    ROOM_EV_LEFT,        /* a user's last session left (ntc:part to others) */
};

struct room_event {
    enum room_event_kind kind;
    uint64_t room_no;
    const struct room_msg *msg; /* MESSAGE */
    const char *user;           /* ENTERED, LEFT */
};

struct cluster_sink {
    void *ctx;
    void (*event)(void *ctx, const struct room_event *ev);
};

typedef void (*meta_cb)(void *arg, const struct meta_result *res);

/* A voting node of the pool. */
struct cluster_node {
    uint64_t id;
    const char *address; /* its cluster port, "10.0.0.1:7600" */
};

struct cluster_config {
    const char *node_label;
    const char *data_dir;
    uint64_t node_id;
    const char *address;         /* this node's cluster port (listen and advertise) */
    const struct cluster_node *nodes; /* the pool's voters at creation, this node included;
                                    none = a pool of this node alone */
    size_t n_nodes;
    unsigned election_ms;        /* raft election timeout */
    unsigned heartbeat_ms;
    unsigned segment_bytes;      /* raft log segment size */
    unsigned snapshot_entries;   /* raft entries between snapshots */
    bool balance;                /* hand shard leadership to less loaded nodes */
    bool join;                   /* joining an existing pool: wait to be added (node add) */
    unsigned max_pending_posts;  /* posts waiting for commit before PC_EBUSY */
    unsigned max_history;        /* cap on HISTORY count */
    uint32_t shard_count;        /* for a new pool */
    const char *domain;          /* for a new pool */
    unsigned compliance_classes; /* bit mask of COMPL_* event classes to record */
    unsigned retention_interval_ms; /* how often shard leaders apply retention (0 = never) */
    unsigned abandoned_upload_ms; /* chunks of an upload unfinished this long are dropped (0 = never) */
    /* Free space the data disk must keep: below it this node refuses the writes it would
     * propose (PC_ENOSPC, SIP 503 "disk full") before raft or RocksDB hit ENOSPC; it takes
     * writes again once free space is back above it (docs/OPERATIONS.md). 0 = no guard. */
    uint64_t min_free_bytes;
    /* Mutual TLS on the cluster port (cluster_tls.h): PEM files of the pool CA, this node's
     * certificate and its key; all three, or none (NULL or "": plain TCP, logged as a
     * warning at start). */
    const char *tls_ca, *tls_cert, *tls_key;
};

/* Before anything is opened: while the filesystem of data_dir has less than half of
 * min_free_bytes free, logs why (once a minute) and waits, checking every second. A node
 * that stopped because a store write found the disk full (fsm_store_failed) so comes back by
 * itself once space is freed, without RocksDB ever running out mid-write. Blocks the
 * calling thread; call it before signal handlers are installed (SIGTERM then just ends
 * the process). */
void cluster_disk_wait(const char *data_dir, uint64_t min_free_bytes);

/* Opens the node's storage and state. Returns PC_E* with a reason in errmsg. */
int cluster_open(uv_loop_t *loop, const struct cluster_config *cfg, const struct cluster_sink *sink,
                 struct cluster **out, char *errmsg, size_t errlen);

/* Stops accepting work, waits for what is in flight, closes storage, then calls cb. */
void cluster_close(struct cluster *cl, void (*cb)(void *arg), void *arg);

/* The local metadata replica, for reads. Valid until the next loop iteration. */
const struct meta *cluster_meta(const struct cluster *cl);

/* Proposes a metadata change. cb fires once the change is applied on this node (so a read
 * right after sees it) or failed. Returns PC_EBUSY at once when the node is overloaded. */
int cluster_meta_submit(struct cluster *cl, const struct meta_op *op, meta_cb cb, void *arg);

/* Calls cb (from the loop, res->status 0) once this replica has applied every metadata
 * change the metadata leader had committed when asked: a session opened after a change was
 * acknowledged anywhere sees it. Gives up waiting after about a second (leader
 * unreachable) and calls cb all the same. */
int cluster_meta_sync(struct cluster *cl, meta_cb cb, void *arg);

/* Sends a request to the owner of req->room_no. cb fires exactly once. Returns PC_EBUSY at
 * once when the node's queue is full (the caller answers 503). */
int cluster_room_submit(struct cluster *cl, const struct room_req *req, room_cb cb, void *arg);

/* Files of a room in this node's store (every replica has them once committed),
 * in file id order; strings valid during the callback. Returns how many, or PC_EIO. */
int cluster_files(struct cluster *cl, uint64_t room_no,
                  void (*cb)(void *ctx, const struct room_file *f), void *ctx);
/* One file's record (strings in arena). PC_ENOTFOUND when this node has none. */
struct pc_arena;
int cluster_file_get(struct cluster *cl, uint64_t room_no, uint64_t file_no,
                     struct room_file *out, struct pc_arena *arena);
/* Chunk `chunk` of a file into out. PC_ENOTFOUND when this node does not hold it (it
 * installed a snapshot after the upload: another node serves it). */
int cluster_file_chunk(struct cluster *cl, uint64_t room_no, uint64_t file_no, uint32_t chunk,
                       struct pc_buf *out);

/* How many users are in the room right now, as far as this node knows (for room lists). */
unsigned cluster_room_users(const struct cluster *cl, uint64_t room_no);

struct cluster_stats {
    uint64_t posts_committed;
    uint64_t posts_failed;
    uint64_t pending_posts;
    uint64_t commit_batches;
    uint64_t events_out;
    uint64_t store_bytes;
    /* The data disk (statvfs of data_dir, checked every POOL_DISK_CHECK_MS). */
    uint64_t disk_free_bytes;     /* available to this process */
    uint64_t disk_total_bytes;
    bool disk_full;               /* writes are refused until space returns */
    uint64_t disk_full_events;    /* times the node went into the disk-full state */
    uint64_t writes_refused_disk_full; /* posts, file chunks, edits refused for it */
    uint64_t store_enospc;        /* RocksDB writes that failed with ENOSPC */
    uint64_t store_gated;         /* store writes held back below half the reserve */
    uint64_t uploads_abandoned;   /* unfinished uploads whose chunks this node dropped as leader */
    uint64_t replay_skipped;      /* messages an owner did not replay to this node's sessions
                                     after a lost link (purged meanwhile, or an owner of an
                                     older version) */
    struct store_memory store_memory; /* what RocksDB holds in memory */
};
void cluster_stats(const struct cluster *cl, struct cluster_stats *out);

/* The node's store, for administrative reads (export, status). */
struct store *cluster_store(const struct cluster *cl);

/* True once the pool's metadata is initialised on this replica (domain and shard count
 * set), and whether this node is the metadata group's ready leader. */
bool cluster_meta_ready(const struct cluster *cl);
bool cluster_meta_leader(const struct cluster *cl);

/* One raft group as this node sees it (pchatctl pool status). */
struct cluster_group_info {
    uint32_t id;      /* 0 = metadata, 1..S = shards */
    const char *role; /* "leader", "follower", "candidate", "unavailable" */
    bool ready;       /* leader with everything of earlier terms applied */
    unsigned voters;  /* in its configuration as this node knows it */
    uint64_t leader, term, commit_index, last_applied, last_index;
};
/* Fills up to max entries; returns the number of groups. */
size_t cluster_groups(const struct cluster *cl, struct cluster_group_info *out, size_t max);
/* Ranges of history this replica still has to back-fill from a peer after a shard snapshot
 * install (0: its store holds every message its rooms committed). */
size_t cluster_backfills(const struct cluster *cl);

struct cluster_peer_info {
    uint64_t id;
    const char *address;
    bool up;                /* our outbound peer link to it is connected */
    uint64_t sent, received, reconnects, dropped;
    uint64_t silence_downs; /* times the link was dropped as the node fell silent */
    size_t queued_bytes;
};
size_t cluster_peers(const struct cluster *cl, struct cluster_peer_info *out, size_t max);

/* The cluster port: connections, and the ones refused (raft_mux.h explains each counter). */
struct cluster_port_stats {
    bool tls; /* mutual TLS with the pool CA */
    uint64_t accepted, rejected, dials, dials_failed;
    uint64_t refused_tls, refused_identity, refused_unknown, dials_refused;
};
void cluster_port_stats(const struct cluster *cl, struct cluster_port_stats *out);
uint64_t cluster_node_id(const struct cluster *cl);
/* Hands the ownership of shard group `group` (1..S) to node (0 = the voter that can take
 * it over now and lags least). Returns 0 (started: the move takes about one round trip),
 * PC_ENOTLEADER with *leader set when another node owns it (ask that node), PC_ENOTFOUND
 * (no such group or node), PC_EBUSY (a move is running), PC_EUNAVAIL (the node cannot take
 * it over now: *why says why, e.g. its log is behind; the rooms would only wait for it). */
int cluster_shard_transfer(struct cluster *cl, uint32_t group, uint64_t node, uint64_t *leader,
                           const char **why);

/* Membership (pchatctl node add/remove): proposes the pool's member list with node id
 * added at its cluster address, or removed. cb fires once the change is applied here;
 * the raft groups then follow within seconds (a new node is caught up before it votes; a
 * leaving node first hands its leaderships over). Returns 0, or PC_E* with the reason in
 * err (already a member, unknown node, the last node, metadata unreachable). */
int cluster_node_add(struct cluster *cl, uint64_t id, const char *address, meta_cb cb, void *arg,
                     char *err, size_t errlen);
int cluster_node_remove(struct cluster *cl, uint64_t id, meta_cb cb, void *arg, char *err,
                        size_t errlen);
/* The pool's members now (addresses copied into addr[i]); returns how many. */
size_t cluster_members(const struct cluster *cl, struct cluster_node *out, char (*addr)[128],
                       size_t max);

/* The node that owns the room now as this node knows it (its shard group's leader); 0 when
 * unknown (an election is running) or the room does not exist. */
uint64_t cluster_room_owner(struct cluster *cl, uint64_t room_no);

#endif
