/* Room message logs: sequence numbers, stored message records, history reads. */
#ifndef ROOMLOG_H
#define ROOMLOG_H

#include <stddef.h>
#include <stdint.h>
#include <uthash.h>

#include "cluster/cluster.h"
#include "common/pc_arena.h"

struct store;
struct store_batch;

/* Per room: the last sequence number handed out and the last one known durable. They differ
 * only while a commit is in flight. Loaded lazily from the store (key 'l' + room). */
struct roomlog_room {
    UT_hash_handle hh;
    uint64_t room_no;
    uint64_t last;    /* last assigned */
    uint64_t durable; /* last written durably: visible in history, safe to deliver */
    uint64_t floor;   /* messages up to here are purged (key 'p' + room; 0 = none) */
};

struct roomlog {
    struct store *st;
    struct roomlog_room *rooms;
};

void roomlog_init(struct roomlog *log, struct store *st);
void roomlog_free(struct roomlog *log);

/* The room's counters, loading them on first use. */
struct roomlog_room *roomlog_room(struct roomlog *log, uint64_t room_no);
/* Drops the cached counters (reloaded from the store on next use). */
void roomlog_forget(struct roomlog *log, uint64_t room_no);

/* Assigns the next sequence number and adds the message and the room's new last seq to the
 * batch. Returns the seq. */
uint64_t roomlog_append(struct roomlog *log, struct store_batch *b, uint64_t room_no,
                        int64_t ts_us, const char *author, const char *text);

uint64_t roomlog_append_flags(struct roomlog *log, struct store_batch *b, uint64_t room_no,
                              int64_t ts_us, const char *author, const char *text, uint8_t flags);

/* Encodes/decodes a stored message value (strings copied into arena on decode). */
void roomlog_encode_msg(int64_t ts_us, const char *author, const char *text, struct pc_buf *out);
void roomlog_encode_msg_flags(int64_t ts_us, const char *author, const char *text, uint8_t flags,
                              struct pc_buf *out);
int roomlog_decode_msg(const void *p, size_t len, struct room_msg *msg, struct pc_arena *arena);

/* Reads up to count messages of a room with seq < before (0 = no bound) and seq <= upto
 * (0 = no bound), oldest first, into an arena-allocated array. Uses the key order: a seek to
 * the bound and a backwards walk, so the cost is independent of the room's size. */
int roomlog_read(struct store *st, uint64_t room_no, uint64_t before, uint64_t upto,
                 uint32_t count, struct pc_arena *arena, struct room_msg **out, size_t *n);

#endif
