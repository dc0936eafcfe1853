/* bench_proc: CPU time and resident memory of the pool's node processes, from /proc. */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One reading of one process. ok is false when the process is gone or /proc unreadable. */
struct bench_proc_sample {
    bool ok;
    uint64_t cpu_ns; /* user + system time since the process started */
    uint64_t rss_kb; /* VmRSS */
    uint64_t hwm_kb; /* VmHWM: the peak RSS */
};

bool bench_proc_sample(pid_t pid, struct bench_proc_sample *out);

/* Reads the node pids of a deploy/pool or tests/bench/run directory: <dir>/n<i>/pchatd.pid
 * for i = 1…max. Returns how many were found (pids[i-1] = 0 for a missing node). */
size_t bench_proc_pids_from_run_dir(const char *dir, pid_t *pids, size_t max);

/* Parses "123,456,789". Returns the count, or -1 with a message in why. */
int bench_proc_parse_pids(const char *list, pid_t *pids, size_t max, char *why, size_t cap);

#endif
