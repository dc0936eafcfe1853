/* The loop's pass times (pc_loop_watch.h). A prepare handle runs just before each poll:
 * the time since the previous one, less what libuv counted as waiting in the poll between
 * them, is the pass just ended. */
#include "common/pc_loop_watch.h"

#include <stdbool.h>

#include "common/pc_log.h"

const unsigned pc_loop_watch_bounds_ms[PC_LOOP_WATCH_BUCKETS] = {1, 2, 5, 10, 25, 50, 100, 250};

static struct {
    bool on, started;
    uv_prepare_t prepare;
    unsigned warn_ms;
    uint64_t last_ns, last_idle_ns;
    struct pc_loop_stats stats;
    uint64_t warned_ns;  /* when the last warning was written */
    uint64_t unwarned;   /* long passes since then, not logged one by one */
} w;

static void record(uint64_t busy_us)
{
    w.stats.passes++;
    w.stats.busy_us += busy_us;
    if (busy_us > w.stats.longest_us)
        w.stats.longest_us = busy_us;
    size_t k = 0;
    while (k < PC_LOOP_WATCH_BUCKETS && busy_us > pc_loop_watch_bounds_ms[k] * 1000ULL)
        k++;
    w.stats.bucket[k]++;
}

static void on_prepare(uv_prepare_t *p)
{
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(p->loop);
    uint64_t elapsed = now - w.last_ns, waited = idle - w.last_idle_ns;
    uint64_t busy_us = (elapsed > waited ? elapsed - waited : 0) / 1000;
    w.last_ns = now;
    w.last_idle_ns = idle;
    if (!w.started) { /* the first pass holds the program's start-up, not the loop's work */
        w.started = true;
        return;
    }
    record(busy_us);
    if (w.warn_ms == 0 || busy_us < w.warn_ms * 1000ULL)
        return;
    if (now - w.warned_ns < 1000000000ULL) {
        w.unwarned++;
        return;
    }
    if (w.unwarned == 0)
        pc_warn("event loop: one pass took %llu ms (every session of this node waited that long)",
                (unsigned long long)(busy_us / 1000));
    else
        pc_warn("event loop: one pass took %llu ms (every session of this node waited that long), "
                "and %llu more over %u ms in the second before", (unsigned long long)(busy_us / 1000),
                (unsigned long long)w.unwarned, w.warn_ms);
    w.warned_ns = now;
    w.unwarned = 0;
}

int pc_loop_watch_start(uv_loop_t *loop, unsigned warn_ms)
{
    int rc = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    if (rc == 0)
        rc = uv_prepare_init(loop, &w.prepare);
    if (rc != 0)
        return rc;
    w.on = true;
    w.started = false;
    w.warn_ms = warn_ms;
    w.last_ns = uv_hrtime();
    w.last_idle_ns = uv_metrics_idle_time(loop);
    uv_prepare_start(&w.prepare, on_prepare);
    uv_unref((uv_handle_t *)&w.prepare); /* watching alone keeps no loop running */
    return 0;
}

void pc_loop_watch_stop(void)
{
    if (!w.on)
        return;
    w.on = false;
    uv_close((uv_handle_t *)&w.prepare, NULL);
}

void pc_loop_watch_stats(struct pc_loop_stats *out)
{
    *out = w.stats;
}

uint64_t pc_loop_passes_over(const struct pc_loop_stats *ls, unsigned ms)
{
    uint64_t n = 0;
    for (int k = PC_LOOP_WATCH_BUCKETS; k >= 1 && pc_loop_watch_bounds_ms[k - 1] >= ms; k--)
        n += ls->bucket[k];
    return n;
}

void pc_loop_stats_since(const struct pc_loop_stats *now, const struct pc_loop_stats *then,
                         struct pc_loop_stats *out)
{
    out->passes = now->passes - then->passes;
    out->busy_us = now->busy_us - then->busy_us;
    out->longest_us = now->longest_us;
    for (int k = 0; k <= PC_LOOP_WATCH_BUCKETS; k++)
        out->bucket[k] = now->bucket[k] - then->bucket[k];
}

void pc_loop_stats_add(struct pc_loop_stats *dst, const struct pc_loop_stats *src)
{
    dst->passes += src->passes;
    dst->busy_us += src->busy_us;
    if (src->longest_us > dst->longest_us)
        dst->longest_us = src->longest_us;
    for (int k = 0; k <= PC_LOOP_WATCH_BUCKETS; k++)
        dst->bucket[k] += src->bucket[k];
}
