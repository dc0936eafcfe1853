/* How long the event loop is busy per pass. Everything a node does for its clients runs on
 * one libuv loop, so one long pass (a slow callback, a blocking call) delays every session
 * of the node by that much: the pass times are the node's own share of a client's latency.
 *
 * A pass is from one poll for I/O to the next, minus the time spent waiting in that poll
 * (libuv's idle-time metric): the callbacks that ran, timers and I/O together. One watch
 * per process, for the loop given to pc_loop_watch_start. */
#ifndef PC_LOOP_WATCH_H
#define PC_LOOP_WATCH_H

#include <stdint.h>
#include <uv.h>

/* Upper bounds (ms) of the pass-time histogram's buckets; the last bucket is open. */
#define PC_LOOP_WATCH_BUCKETS 8
extern const unsigned pc_loop_watch_bounds_ms[PC_LOOP_WATCH_BUCKETS];

struct pc_loop_stats {
    uint64_t passes;
    uint64_t busy_us;                                  /* summed over all passes */
    uint64_t longest_us;                               /* the longest pass so far */
    uint64_t bucket[PC_LOOP_WATCH_BUCKETS + 1];        /* passes ≤ bound k (not cumulative) */
};

/* Must be called before the loop first runs (it turns on libuv's idle-time metric). Passes
 * of warn_ms or more are logged as warnings (at most one line a second, with the count of
 * the others). 0 on success, else a libuv error. */
int pc_loop_watch_start(uv_loop_t *loop, unsigned warn_ms);
/* Closes the watch's handles (for a clean loop shutdown). */
void pc_loop_watch_stop(void);
void pc_loop_watch_stats(struct pc_loop_stats *out);
/* out = now - then (passes, busy time, buckets; the longest stays now's, which is over the
 * whole run): the passes of a window. */
void pc_loop_stats_since(const struct pc_loop_stats *now, const struct pc_loop_stats *then,
                         struct pc_loop_stats *out);
/* dst += src (the longest is the larger): the passes of several processes together. */
void pc_loop_stats_add(struct pc_loop_stats *dst, const struct pc_loop_stats *src);
/* Passes longer than ms, which must be one of pc_loop_watch_bounds_ms. */
uint64_t pc_loop_passes_over(const struct pc_loop_stats *ls, unsigned ms);

#endif
