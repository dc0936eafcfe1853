/* The operations a shard raft group orders: one raft entry carries a batch of them. */
#ifndef SHARD_OP_H
#define SHARD_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pc_buf.h"
#include "compliance/compl_event.h"

struct pc_arena;

enum shard_op_kind {
    SHARD_OP_POST = 1,  /* append a message to a room */
    SHARD_OP_EVENT = 2, /* store a compliance event (join, part, read) as proposed */
    SHARD_OP_FILE_CHUNK = 3, /* store one chunk of a file being uploaded to a room */
    SHARD_OP_EDIT = 4,  /* an administrator removes or replaces message target_seq */
    SHARD_OP_PURGE = 5, /* delete the room's messages up to target_seq (clear, retention) */
    SHARD_OP_IMPORT = 6, /* store an exported message as message target_seq (cluster.h) */
    SHARD_OP_FILE_DROP = 7, /* delete the chunks of file_no if no message announced it: an
                               upload abandoned half-way (cluster/pool_uploads.c) */
};

/* Everything apply needs travels inside the op, chosen by the proposer (the shard leader):
 * apply is deterministic and never reads a clock or another group's state, so every
 * replica stores the same bytes. */
struct shard_op {
    enum shard_op_kind kind;
    uint64_t tag;          /* opaque to the FSM: lets the leader match results to requests */
    uint64_t room_no;      /* POST; EVENT: the event's room (filled by decode) */
    int64_t ts_us;         /* POST: server time stamped by the proposer */
    const char *author;    /* POST */
    const char *text;      /* POST */
    const char *room_guid; /* POST: for the compliance record ("" allowed); the room may */
    const char *room_name; /*   be renamed or gone when the event is read */
    const void *event;     /* EVENT: compl_event_encode bytes */
    size_t event_len;
    struct compl_event ev; /* EVENT: decoded view (filled by decode) */
    uint64_t seq;          /* POST: the seq apply assigned (output) */
    /* FILE_CHUNK: chunk `chunk` of file `file_no` (bytes borrowed like EVENT's); the
     * uploader is `author`. POST with has_file: the message announces the file, and apply
     * stores the file's record (name, sha256 hex, size, chunks) with it. */
    uint64_t file_no;
    uint32_t chunk;
    const void *data;
    size_t data_len;
    bool has_file;
    /* EDIT and PURGE (author = who asked, ts_us = when, room_guid/name for the compliance
     * record; text = EDIT: the notice that replaces the message, PURGE: why). The message
     * choice was made by the proposer: apply only executes it. */
    uint64_t target_seq;
    bool remove;           /* EDIT: remove the text instead of replacing it; IMPORT: the
                              message was removed (a tombstone keeps its id) */
    uint8_t flags;         /* IMPORT: ROOM_MSG_* of the exported message */
    const char *file_name;
    const char *file_sha;
    uint64_t file_size;
    uint32_t file_chunks;
};

/* Limits enforced by decode (a batch is untrusted bytes). */
#define SHARD_MAX_OPS 65536
#define SHARD_MAX_TEXT (1u << 20)
#define SHARD_MAX_URI 256
#define SHARD_MAX_NAME 1024
#define SHARD_MAX_CHUNK (256u * 1024) /* = CLUSTER_FILE_CHUNK */

/* Serialises a batch proposed by node (its label goes into the compliance records). */
void shard_ops_encode(const char *node, const struct shard_op *ops, size_t n, struct pc_buf *out);

/* Parses a batch from untrusted bytes. Strings are copied into arena; EVENT bytes point into
 * p (borrowed: p must outlive the ops). PC_ECORRUPT on any defect. */
int shard_ops_decode(const void *p, size_t len, struct pc_arena *arena, const char **node,
                     struct shard_op **ops, size_t *n);

#endif
