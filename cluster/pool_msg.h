/* Payload codecs of the messages nodes exchange on the peer link (cluster/peer.h frames
 * each one as (u8 type, payload)). */
#ifndef POOL_MSG_H
#define POOL_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "cluster/meta.h"
#include "common/pc_arena.h"
#include "common/pc_buf.h"

/* Every payload starts with a format version byte (POOL_MSG_V1); the rest is pc_bin
 * varints (signed ones zig-zag) and length-prefixed strings, all fields always present.
 *
 * Decoders read untrusted bytes. A wrong version, an unknown kind, an out-of-range number,
 * a string over its bound or with a NUL byte, a list over POOL_MSG_MAX_LIST (or longer
 * than the remaining bytes could hold), truncation and trailing bytes all return
 * PC_EPROTO; nothing is allocated for a list before its count has been checked against
 * the input size, so a decode allocates O(len) at most. On success, every string and
 * array of the output lives in `arena` (the caller releases everything with one
 * pc_arena_free); on failure the output is zeroed and the arena may hold garbage that the
 * same pc_arena_free releases. Encoders write a NULL string as "", so it decodes as "". */

enum pool_msg_type {
    POOL_MSG_ROOM_REQ = 1,   /* a request to a room's owner */
    POOL_MSG_ROOM_RES = 2,   /* its answer */
    POOL_MSG_ROOM_EVENT = 3, /* owner -> nodes with sessions in the room, in room order */
    POOL_MSG_META_REQ = 4,   /* a metadata change forwarded to the meta leader */
    POOL_MSG_META_RES = 5,   /* its result */
    POOL_MSG_SUBSCRIBE = 6,  /* a node (re)announcing its sessions in a room to its owner */
    POOL_MSG_RESYNC = 7,     /* owner -> node: announce again every room you have with me */
    POOL_MSG_META_SYNC = 8,  /* a node asking the metadata leader how far it has committed */
    POOL_MSG_NODE_STATE = 9, /* a node's own state the others act on: its data disk is full */
};

enum {
    POOL_MSG_V1 = 1,
    POOL_MSG_MAX_TEXT = 64 * 1024, /* bytes of a message text */
    POOL_MSG_MAX_USER = 1024,      /* bytes of a user URI / author */
    POOL_MSG_MAX_CHUNK = 256 * 1024, /* bytes of a file chunk (CLUSTER_FILE_CHUNK) */
    POOL_MSG_MAX_LIST = 10000,     /* entries of msgs[], present[], sessions[] */
};

/* "ROOM_REQ", ... for logs; "UNKNOWN" for any other value. Never NULL. */
const char *pool_msg_type_name(uint8_t type);

/* 1 ROOM_REQ. The decoded req->kind is one of enum room_req_kind. */
struct pool_room_req {
    uint64_t req_id;
    struct room_req req;
    struct room_file file; /* req.file points here when the request carries one */
    struct room_edit edit; /* req.edit points here for EDIT and PURGE */
};
void pool_room_req_encode(struct pc_buf *out, uint64_t req_id, const struct room_req *req);
int pool_room_req_decode(const void *p, size_t len, struct pc_arena *arena,
                         struct pool_room_req *out);

/* 2 ROOM_RES. res->status is 0 or a negative PC_E code (any value <= 0 that fits an int
 * is accepted); msgs and present are NULL when their count is 0. */
struct pool_room_res {
    uint64_t req_id;
    struct room_res res;
};
void pool_room_res_encode(struct pc_buf *out, uint64_t req_id, const struct room_res *res);
int pool_room_res_decode(const void *p, size_t len, struct pc_arena *arena,
                         struct pool_room_res *out);

/* 3 ROOM_EVENT. MESSAGE carries ev->msg (must be non-NULL to encode) and decodes with
 * user = NULL; ENTERED/LEFT carry ev->user and decode with msg = NULL. */
void pool_room_event_encode(struct pc_buf *out, const struct room_event *ev);
int pool_room_event_decode(const void *p, size_t len, struct pc_arena *arena,
                           struct room_event *out);

/* 4 META_REQ: the op travels as one length-prefixed blob of meta_op_encode's bytes. The
 * decoded op owns its strings (no arena): free with meta_op_clear. On failure the op is
 * already cleared. */
struct pool_meta_req {
    uint64_t req_id;
    struct meta_op op;
};
void pool_meta_req_encode(struct pc_buf *out, uint64_t req_id, const struct meta_op *op);
int pool_meta_req_decode(const void *p, size_t len, struct pool_meta_req *out);

/* 5 META_RES. applied_index is the leader's raft index of the op, so that the asker can
 * wait until its own replica has applied it. The result holds no pointers: `arena` is
 * unused (may be NULL) and is there only so that every arena decoder has one shape. */
struct pool_meta_res {
    uint64_t req_id;
    struct meta_result res;
    uint64_t applied_index;
};
void pool_meta_res_encode(struct pc_buf *out, uint64_t req_id, const struct meta_result *res,
                          uint64_t applied_index);
int pool_meta_res_decode(const void *p, size_t len, struct pc_arena *arena,
                         struct pool_meta_res *out);

/* 6 SUBSCRIBE: the sessions a node has in a room, announced to the room's (new) owner,
 * with the last seq the node delivered to them. The owner answers with a ROOM_RES carrying
 * req_id: status 0 and seq = the last seq it will not send (the asker skips to it), then
 * the messages after it as ROOM_EVENTs; or PC_ENOTOWNER. */
struct pool_sub_session {
    uint64_t session;
    const char *user;
};
struct pool_subscribe {
    uint64_t room_no;
    uint64_t last_delivered;
    const struct pool_sub_session *sessions; /* NULL when n_sessions is 0 */
    size_t n_sessions;
    uint64_t req_id;
};
void pool_subscribe_encode(struct pc_buf *out, const struct pool_subscribe *sub);
int pool_subscribe_decode(const void *p, size_t len, struct pc_arena *arena,
                          struct pool_subscribe *out);

/* 7 RESYNC: no fields. The owner's link to the node was down, so the owner dropped that
 * node's sessions (and maybe events meant for it): the node re-sends SUBSCRIBE for every
 * room it has with this owner. */
void pool_resync_encode(struct pc_buf *out);
int pool_resync_decode(const void *p, size_t len);

/* 8 META_SYNC: req_id only. The leader answers with a META_RES carrying req_id, status 0
 * and applied_index = its metadata commit index (or PC_ENOTOWNER). */
void pool_meta_sync_encode(struct pc_buf *out, uint64_t req_id);
/* NODE_STATE: sent to every peer when it changes and when a link comes up. */
enum { POOL_NODE_DISK_FULL = 1 };
void pool_node_state_encode(struct pc_buf *out, unsigned flags);
int pool_node_state_decode(const void *p, size_t len, unsigned *flags);
int pool_meta_sync_decode(const void *p, size_t len, uint64_t *req_id);

#endif
