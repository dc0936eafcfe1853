/* The node's one RocksDB database: column families, atomic batches, reads, iterators. */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pc_buf.h"
#include "common/pc_str.h"

/* Column families. The key layout of each is documented in storage/KEYS.md. */
enum store_cf {
    STORE_CF_META,  /* replicated metadata: categories, rooms, users, invitations */
    STORE_CF_MSGS,  /* room message logs, key = room number + sequence number */
    STORE_CF_STATE, /* applied raft indexes, per-room counters */
    STORE_CF_COMPL, /* compliance event log, read by the dispatcher */
    STORE_CF_FILES, /* file blobs posted to rooms, in chunks */
    STORE_CF_COUNT
};

struct store;
struct store_batch;
struct store_iter;

struct store_options {
    bool create_if_missing;
    size_t block_cache_mb; /* 0 = RocksDB default */
};

/* Opens (creating if allowed) the database at path with every column family.
 * On failure returns a PC_E* code and a one-line reason in errmsg. */
int store_open(const char *path, const struct store_options *opt, struct store **out,
               char *errmsg, size_t errlen);
void store_close(struct store *st);

/* Batches collect changes that are then written atomically by store_write to the store
 * they were made for. A batch is owned by one thread at a time. */
struct store_batch *store_batch_new(struct store *st);
void store_batch_free(struct store_batch *b);
void store_batch_clear(struct store_batch *b);
size_t store_batch_count(const struct store_batch *b);
void store_batch_put(struct store_batch *b, enum store_cf cf, const void *key, size_t klen,
                     const void *val, size_t vlen);
void store_batch_delete(struct store_batch *b, enum store_cf cf, const void *key, size_t klen);
/* Deletes keys in [start, end). */
void store_batch_delete_range(struct store_batch *b, enum store_cf cf, const void *start,
                              size_t slen, const void *end, size_t elen);

/* Writes the batch atomically. sync = fsync the WAL before returning (durable against
 * power loss). Blocking: call it from a worker thread when sync is set. Thread-safe.
 * Returns PC_ENOSPC when the disk is full, PC_EIO otherwise; the reason goes to the log. */
int store_write(struct store *st, struct store_batch *b, bool sync);

/* Reads one value into out (replacing its content). PC_ENOTFOUND if absent. */
int store_get(struct store *st, enum store_cf cf, const void *key, size_t klen,
              struct pc_buf *out);

/* Iterates keys in [lower, upper) (either bound may be NULL = unbounded); the bounds are
 * copied. Position with seek/seek_for_prev/first/last, then valid/next/prev. */
struct store_iter *store_iter_new(struct store *st, enum store_cf cf, const void *lower,
                                  size_t llen, const void *upper, size_t ulen);
void store_iter_seek(struct store_iter *it, const void *key, size_t klen);
void store_iter_seek_for_prev(struct store_iter *it, const void *key, size_t klen);
void store_iter_first(struct store_iter *it);
void store_iter_last(struct store_iter *it);
bool store_iter_valid(struct store_iter *it);
void store_iter_next(struct store_iter *it);
void store_iter_prev(struct store_iter *it);
struct pc_str store_iter_key(struct store_iter *it);
struct pc_str store_iter_value(struct store_iter *it);
/* PC_EIO if the iteration stopped on an error rather than at the end. */
int store_iter_status(struct store_iter *it);
void store_iter_free(struct store_iter *it);

/* Makes every write so far durable (WAL fsync). */
int store_sync(struct store *st);

/* RocksDB's sequence number of the latest write: unchanged = nothing was written since
 * (the search indexer skips its pass then). Thread-safe. */
uint64_t store_latest_sequence(struct store *st);

/* Integer RocksDB property of a column family ("rocksdb.total-sst-files-size"); 0 if none. */
uint64_t store_property(struct store *st, enum store_cf cf, const char *name);

/* What RocksDB holds in memory, over every column family: memtables (flushed at
 * write_buffer_size each), the block cache (bounded by block_cache_mb) and the index and
 * filter blocks of open table files (grow with the data). */
struct store_memory {
    uint64_t memtables, block_cache, table_readers;
};
void store_memory(struct store *st, struct store_memory *out);

/* Hard-link checkpoint of the whole database into dir (which must not exist). */
int store_checkpoint(struct store *st, const char *dir);

/* How many operations failed with "No space left on device" since the store was opened
 * (the node's disk guard watches it: an ENOSPC it did not foresee). */
uint64_t store_enospc_count(const struct store *st);

/* While closed, store_write fails at once with PC_ENOSPC and RocksDB sees nothing: the
 * node's disk guard closes it when the data disk is nearly full, so that RocksDB never runs
 * out of space in the middle of a WAL write. store_gated_count: writes refused so. */
void store_set_write_gate(struct store *st, bool closed);
/* Writes also fail at once (PC_ENOSPC, counted as gated) while the database's filesystem has
 * less than bytes free: one statvfs per write. 0 = off. */
void store_set_free_floor(struct store *st, uint64_t bytes);
uint64_t store_gated_count(const struct store *st);

const char *store_cf_name(enum store_cf cf);

#endif
