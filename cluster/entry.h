/* Raft entry framing: every entry (and FSM snapshot) pchat hands to raft is one of these. */
#ifndef ENTRY_H
#define ENTRY_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

/* Layout: 'p' 'c' | u8 version | u8 kind | be32 payload length | payload | zero padding to a
 * multiple of 8 bytes. Why: libraft 0.15 accepts entries whose length is not a multiple of
 * 8 and loses them on restart, 0.22.1 rejects them and then crashes on the next apply
 * (DESIGN.md §7); the real length inside lets the reader drop the padding. The magic and
 * kind make an entry meant for another state machine (a meta op in a shard group) an error
 * rather than garbage. */
#define ENTRY_HEADER_LEN 8
#define ENTRY_VERSION 1
/* Longest payload: the length field is 32 bits. */
#define ENTRY_MAX_PAYLOAD (UINT32_MAX - 64u)

enum entry_kind {
    ENTRY_META_OP = 1,    /* one encoded meta_op (cluster/meta.h) */
    ENTRY_SHARD_OPS = 2,  /* a batch of shard ops (cluster/shard_op.h) */
    ENTRY_META_SNAP = 3,  /* a metadata FSM snapshot */
    ENTRY_SHARD_SNAP = 4, /* a shard FSM snapshot */
};

/* Frames payload into out->base, allocated with raft_malloc (what raft_apply and an FSM
 * snapshot require); out->len is a multiple of 8. Ownership of out->base is the caller's
 * until given to raft (group_propose). PC_ETOOBIG when len is over ENTRY_MAX_PAYLOAD,
 * PC_ENOMEM when raft_malloc fails. */
int entry_encode(enum entry_kind kind, const void *payload, size_t len, struct raft_buffer *out);

/* Validates an entry from untrusted bytes (a raft log, a peer): exact length, magic,
 * version, known kind, zero padding. On success *payload points into p (borrowed) and
 * kind and len describe it. PC_ECORRUPT on any defect; never reads outside [p, p + n). */
int entry_decode(const void *p, size_t n, enum entry_kind *kind, const void **payload,
                 size_t *len);

#endif
