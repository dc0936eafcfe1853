/* The data disk guard. libraft 0.22.1's raft_uv never reports a full disk to us: a failed
 * segment allocation or write is retried every disk_retry ms, the append's callback waits
 * until then, and the instance only sets an internal "errored" flag nobody reads. RocksDB
 * turns an ENOSPC of its WAL into a background error. So this node watches free space
 * itself (statvfs of data_dir every POOL_DISK_CHECK_MS) and refuses the writes it would
 * propose (posts, file chunks, edits, metadata changes) while the disk holds less than
 * [node] min_free_space: they are answered PC_ENOSPC (SIP 503 with Retry-After, HTTP 507)
 * instead of waiting in a log that cannot grow. Reads, joins and deliveries go on. The
 * state ends by itself once free space is back above the bound plus a margin, so that a
 * disk hovering at the bound does not flap. A RocksDB write that failed with ENOSPC
 * anyway (the guard off, or something else filled the disk faster than we looked) enters
 * the state too. docs/OPERATIONS.md says what an operator sees and does. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cluster/pool_int.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "storage/store.h"

enum {
    DISK_MIN_MARGIN = 2 << 20,    /* free space above the bound before writes resume */
    DISK_ENOSPC_HOLD_MS = 2000,   /* a store ENOSPC keeps the state at least this long */
};

static const char *human(uint64_t bytes, char *buf, size_t cap)
{
    if (bytes >= (1ull << 30))
        snprintf(buf, cap, "%.1f GiB", (double)bytes / (1ull << 30));
    else if (bytes >= (1ull << 20))
        snprintf(buf, cap, "%.1f MiB", (double)bytes / (1ull << 20));
    else
        snprintf(buf, cap, "%llu KiB", (unsigned long long)(bytes >> 10));
    return buf;
}

static uint64_t resume_bytes(const struct cluster *cl)
{
    uint64_t min = cl->cfg.min_free_bytes;
    uint64_t margin = min / 4 > DISK_MIN_MARGIN ? min / 4 : DISK_MIN_MARGIN;
    return min + margin;
}

void disk_check(struct cluster *cl, uint64_t now, bool force)
{
    struct pool_disk *d = &cl->disk;
    if (!force && now < d->next_check_ms)
        return;
    d->next_check_ms = now + POOL_DISK_CHECK_MS;

    bool store_enospc = false;
    uint64_t enospc = store_enospc_count(cl->st);
    const char *noted = d->noted;
    d->noted = NULL;
    if (enospc != d->enospc_seen || noted != NULL) {
        d->enospc_seen = enospc;
        d->enospc_until_ms = now + DISK_ENOSPC_HOLD_MS;
        store_enospc = true;
    }

    struct statvfs sv;
    if (statvfs(cl->cfg.data_dir, &sv) != 0) {
        if (!d->statvfs_failed)
            pc_warn("disk: cannot read the free space of %s (%s); the disk-full guard only "
                    "reacts to failed writes until it can", cl->cfg.data_dir, strerror(errno));
        d->statvfs_failed = true;
    } else {
        d->statvfs_failed = false;
        d->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
        d->total_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    }

    char f[32], t[32], m[32];
    if (!d->full) {
        bool low = cl->cfg.min_free_bytes > 0 && !d->statvfs_failed &&
                   d->free_bytes < cl->cfg.min_free_bytes;
        if (!low && !store_enospc)
            return;
        d->full = true;
        d->full_since_ms = now;
        d->events++;
        if (low)
            pc_error("disk: DISK FULL: the data disk of %s has %s free of %s, below [node] "
                     "min_free_space = %s; this node refuses new posts, uploads and changes "
                     "(SIP 503 \"disk full\") until space returns. Free space on that "
                     "filesystem: writes resume by themselves, no restart needed",
                     cl->cfg.data_dir, human(d->free_bytes, f, sizeof f),
                     human(d->total_bytes, t, sizeof t),
                     human(cl->cfg.min_free_bytes, m, sizeof m));
        else
            pc_error("disk: DISK FULL: %s in %s (%s free); this node refuses new posts, uploads "
                     "and changes (SIP 503 \"disk full\") until space returns. Free space on "
                     "that filesystem, and raise [node] min_free_space so that the guard acts "
                     "first", noted != NULL ? noted : "a database write failed with \"no space "
                     "left on device\"", cl->cfg.data_dir, human(d->free_bytes, f, sizeof f));
        return;
    }
    if (store_enospc || now < d->enospc_until_ms || d->statvfs_failed)
        return;
    if (d->free_bytes < resume_bytes(cl))
        return;
    d->full = false;
    pc_notice("disk: space is back on the data disk of %s (%s free of %s): writes are accepted "
              "again after %.1f s of refusing them (%llu refused)", cl->cfg.data_dir,
              human(d->free_bytes, f, sizeof f), human(d->total_bytes, t, sizeof t),
              (double)(now - d->full_since_ms) / 1000.0, (unsigned long long)d->refused);
}

void disk_note_enospc(struct cluster *cl, const char *what)
{
    cl->disk.noted = what;
    disk_check(cl, pc_mono_ms(), true);
}

bool disk_refuse_write(struct cluster *cl)
{
    if (!cl->disk.full)
        return false;
    cl->disk.refused++;
    return true;
}
