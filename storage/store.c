#include "storage/store.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

static const char *cf_names[STORE_CF_COUNT] = {"meta", "msgs", "state", "compl", "files"};

struct store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[STORE_CF_COUNT + 1];
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT + 1]; /* [0] = "default" */
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_writeoptions_t *wo_nosync;
    rocksdb_readoptions_t *ro;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_slicetransform_t *msg_prefix;
    rocksdb_filterpolicy_t *bloom;
    /* Writes that failed because the disk was full (read by the node's disk guard). The
     * loop thread is the only writer; relaxed reads from elsewhere are fine for a counter. */
    uint64_t enospc;
    /* Closed by the node's disk guard when the disk is nearly full: writes fail with
     * PC_ENOSPC before RocksDB sees them (Debian's RocksDB 7.8.3 aborts the process when a
     * WAL write fails with ENOSPC). */
    bool gate_closed;
    uint64_t gated;
    /* Writes also fail at once while the filesystem has less than this free (checked with
     * one statvfs per write: the guard's periodic check can miss a disk that raft's log
     * fills within a fraction of a second). 0 = no check. */
    uint64_t floor_bytes;
    char *path;
};

struct store_batch {
    rocksdb_writebatch_t *wb;
    struct store *st; /* the store whose column-family handles the batch uses */
};

struct store_iter {
    struct store *st;
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
    char *lower, *upper;
};

const char *store_cf_name(enum store_cf cf)
{
    return cf_names[cf];
}

static int map_error(struct store *st, const char *what, char *err)
{
    int rc = PC_EIO;
    if (strstr(err, "No space left") != NULL || strstr(err, "ENOSPC") != NULL) {
        rc = PC_ENOSPC;
        st->enospc++;
    } else if (strstr(err, "Corruption") != NULL) {
        rc = PC_ECORRUPT;
    }
    pc_error("storage: %s failed: %s%s", what, err,
             rc == PC_ENOSPC ? " (the data disk is full: free space on it; writes resume by "
                               "themselves)" : "");
    free(err);
    return rc;
}

int store_open(const char *path, const struct store_options *opt, struct store **out,
               char *errmsg, size_t errlen)
{
    struct store *st = pc_calloc(1, sizeof *st);
    char *err = NULL;

    /* No fallocate: RocksDB would reserve 1.1 × write_buffer_size (about 70 MiB) for every
     * WAL file up front, so a small or nearly full disk looks full at once and free space
     * says nothing about how much is really used; the node's disk-full guard
     * (cluster/pool_disk.c) reads free space. The C API has no setter for it. */
    rocksdb_options_t *base = rocksdb_options_create();
    st->opts = rocksdb_options_create();
    rocksdb_get_options_from_string(base, "allow_fallocate=false", st->opts, &err);
    rocksdb_options_destroy(base);
    if (err != NULL) {
        pc_warn("storage: allow_fallocate=false not taken (%s): WAL files are preallocated", err);
        free(err);
        err = NULL;
    }
    rocksdb_options_set_create_if_missing(st->opts, opt->create_if_missing);
    rocksdb_options_set_create_missing_column_families(st->opts, 1);
    rocksdb_options_increase_parallelism(st->opts, 2);
    rocksdb_options_set_compression(st->opts, rocksdb_lz4_compression);
    /* All column families must flush together so that a crash never leaves e.g. the
     * applied index ahead of the messages it covers. */
    rocksdb_options_set_atomic_flush(st->opts, 1);
    rocksdb_options_set_max_open_files(st->opts, 512);
    /* Each column family would fill its own 64 MiB memtable before a flush: the soak saw
     * 141 MiB of memtables per node. One budget for all of them bounds it. */
    rocksdb_options_set_db_write_buffer_size(st->opts, 64u << 20);

    st->table = rocksdb_block_based_options_create();
    st->cache = rocksdb_cache_create_lru((opt->block_cache_mb ? opt->block_cache_mb : 32) << 20);
    rocksdb_block_based_options_set_block_cache(st->table, st->cache);
    st->bloom = rocksdb_filterpolicy_create_bloom(10);
    rocksdb_block_based_options_set_filter_policy(st->table, st->bloom);

    const char *names[STORE_CF_COUNT + 1];
    names[0] = "default";
    st->cf_opts[0] = rocksdb_options_create_copy(st->opts);
    for (int i = 0; i < STORE_CF_COUNT; i++) {
        names[i + 1] = cf_names[i];
        st->cf_opts[i + 1] = rocksdb_options_create_copy(st->opts);
        rocksdb_options_set_block_based_table_factory(st->cf_opts[i + 1], st->table);
    }
    /* Message keys start with an 8-byte room number: a prefix bloom makes "the newest N
     * messages of room R" a cheap seek even with millions of rooms. */
    /* The options take ownership of the transform (and the table options of the filter). */
    st->msg_prefix = rocksdb_slicetransform_create_fixed_prefix(8);
    rocksdb_options_set_prefix_extractor(st->cf_opts[1 + STORE_CF_MSGS], st->msg_prefix);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->cf_opts[1 + STORE_CF_MSGS], 0.1);

    st->db = rocksdb_open_column_families(st->opts, path, STORE_CF_COUNT + 1, names,
                                          (const rocksdb_options_t *const *)st->cf_opts, st->cf,
                                          &err);
    if (err != NULL) {
        snprintf(errmsg, errlen, "cannot open the database at %s: %s", path, err);
        int rc = strstr(err, "No space") ? PC_ENOSPC : PC_EIO;
        free(err);
        st->db = NULL;
        store_close(st);
        return rc;
    }
    st->path = pc_strdup(path);
    st->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wo_sync, 1);
    st->wo_nosync = rocksdb_writeoptions_create();
    st->ro = rocksdb_readoptions_create();
    *out = st;
    return 0;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    if (st->db != NULL) {
        for (int i = 0; i <= STORE_CF_COUNT; i++)
            rocksdb_column_family_handle_destroy(st->cf[i]);
        rocksdb_close(st->db);
    }
    for (int i = 0; i <= STORE_CF_COUNT; i++)
        if (st->cf_opts[i] != NULL)
            rocksdb_options_destroy(st->cf_opts[i]);
    if (st->wo_sync)
        rocksdb_writeoptions_destroy(st->wo_sync);
    if (st->wo_nosync)
        rocksdb_writeoptions_destroy(st->wo_nosync);
    if (st->ro)
        rocksdb_readoptions_destroy(st->ro);
    rocksdb_block_based_options_destroy(st->table);
    rocksdb_cache_destroy(st->cache);
    rocksdb_options_destroy(st->opts);
    pc_free(st->path);
    pc_free(st);
}

struct store_batch *store_batch_new(struct store *st)
{
    struct store_batch *b = pc_calloc(1, sizeof *b);
    b->st = st;
    b->wb = rocksdb_writebatch_create();
    return b;
}

void store_batch_free(struct store_batch *b)
{
    if (b == NULL)
        return;
    rocksdb_writebatch_destroy(b->wb);
    pc_free(b);
}

void store_batch_clear(struct store_batch *b)
{
    rocksdb_writebatch_clear(b->wb);
}

size_t store_batch_count(const struct store_batch *b)
{
    return (size_t)rocksdb_writebatch_count(b->wb);
}

static rocksdb_column_family_handle_t *cf_handle(struct store_batch *b, enum store_cf cf)
{
    return b->st->cf[cf + 1];
}

void store_batch_put(struct store_batch *b, enum store_cf cf, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    rocksdb_writebatch_put_cf(b->wb, cf_handle(b, cf), key, klen, val, vlen);
}

void store_batch_delete(struct store_batch *b, enum store_cf cf, const void *key, size_t klen)
{
    rocksdb_writebatch_delete_cf(b->wb, cf_handle(b, cf), key, klen);
}

void store_batch_delete_range(struct store_batch *b, enum store_cf cf, const void *start,
                              size_t slen, const void *end, size_t elen)
{
    rocksdb_writebatch_delete_range_cf(b->wb, cf_handle(b, cf), start, slen, end, elen);
}

int store_write(struct store *st, struct store_batch *b, bool sync)
{
    if (st->gate_closed) {
        st->gated++;
        return PC_ENOSPC;
    }
    if (st->floor_bytes > 0) {
        struct statvfs sv;
        if (statvfs(st->path, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < st->floor_bytes) {
            st->gated++;
            return PC_ENOSPC;
        }
    }
    char *err = NULL;
    rocksdb_write(st->db, sync ? st->wo_sync : st->wo_nosync, b->wb, &err);
    if (err != NULL)
        return map_error(st, "write", err);
    return 0;
}

int store_get(struct store *st, enum store_cf cf, const void *key, size_t klen,
              struct pc_buf *out)
{
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ro, st->cf[cf + 1], key, klen, &vlen, &err);
    if (err != NULL)
        return map_error(st, "read", err);
    if (v == NULL)
        return PC_ENOTFOUND;
    pc_buf_reset(out);
    pc_buf_append(out, v, vlen);
    free(v);
    return 0;
}

struct store_iter *store_iter_new(struct store *st, enum store_cf cf, const void *lower,
                                  size_t llen, const void *upper, size_t ulen)
{
    struct store_iter *it = pc_calloc(1, sizeof *it);
    it->st = st;
    it->ro = rocksdb_readoptions_create();
    /* Bounds let RocksDB skip whole files and stop at the room's last message; they must
     * outlive the iterator, hence the copies. */
    if (lower != NULL) {
        it->lower = pc_memdup(lower, llen);
        rocksdb_readoptions_set_iterate_lower_bound(it->ro, it->lower, llen);
    }
    if (upper != NULL) {
        it->upper = pc_memdup(upper, ulen);
        rocksdb_readoptions_set_iterate_upper_bound(it->ro, it->upper, ulen);
    }
    if (cf == STORE_CF_MSGS)
        rocksdb_readoptions_set_total_order_seek(it->ro, lower == NULL || upper == NULL);
    it->it = rocksdb_create_iterator_cf(st->db, it->ro, st->cf[cf + 1]);
    return it;
}

void store_iter_seek(struct store_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

void store_iter_seek_for_prev(struct store_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek_for_prev(it->it, key, klen);
}

void store_iter_first(struct store_iter *it)
{
    rocksdb_iter_seek_to_first(it->it);
}

void store_iter_last(struct store_iter *it)
{
    rocksdb_iter_seek_to_last(it->it);
}

bool store_iter_valid(struct store_iter *it)
{
    return rocksdb_iter_valid(it->it) != 0;
}

void store_iter_next(struct store_iter *it)
{
    rocksdb_iter_next(it->it);
}

void store_iter_prev(struct store_iter *it)
{
    rocksdb_iter_prev(it->it);
}

struct pc_str store_iter_key(struct store_iter *it)
{
    size_t len;
    const char *k = rocksdb_iter_key(it->it, &len);
    return (struct pc_str){k, len};
}

struct pc_str store_iter_value(struct store_iter *it)
{
    size_t len;
    const char *v = rocksdb_iter_value(it->it, &len);
    return (struct pc_str){v, len};
}

int store_iter_status(struct store_iter *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it->it, &err);
    if (err != NULL)
        return map_error(it->st, "iterate", err);
    return 0;
}

void store_iter_free(struct store_iter *it)
{
    if (it == NULL)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    pc_free(it->lower);
    pc_free(it->upper);
    pc_free(it);
}

int store_sync(struct store *st)
{
    char *err = NULL;
    rocksdb_flush_wal(st->db, 1, &err);
    if (err != NULL)
        return map_error(st, "WAL sync", err);
    return 0;
}

uint64_t store_latest_sequence(struct store *st)
{
    return rocksdb_get_latest_sequence_number(st->db);
}

uint64_t store_property(struct store *st, enum store_cf cf, const char *name)
{
    uint64_t v = 0;
    if (rocksdb_property_int_cf(st->db, st->cf[cf + 1], name, &v) != 0)
        return 0;
    return v;
}

void store_memory(struct store *st, struct store_memory *out)
{
    *out = (struct store_memory){.block_cache = rocksdb_cache_get_usage(st->cache)};
    for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
        out->memtables += store_property(st, (enum store_cf)cf, "rocksdb.cur-size-all-mem-tables");
        out->table_readers += store_property(st, (enum store_cf)cf, "rocksdb.estimate-table-readers-mem");
    }
}

int store_checkpoint(struct store *st, const char *dir)
{
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(st->db, &err);
    if (err != NULL)
        return map_error(st, "checkpoint", err);
    rocksdb_checkpoint_create(cp, dir, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    if (err != NULL)
        return map_error(st, "checkpoint", err);
    return 0;
}

uint64_t store_enospc_count(const struct store *st)
{
    return st->enospc;
}

void store_set_free_floor(struct store *st, uint64_t bytes)
{
    st->floor_bytes = bytes;
}

void store_set_write_gate(struct store *st, bool closed)
{
    st->gate_closed = closed;
}

uint64_t store_gated_count(const struct store *st)
{
    return st->gated;
}
