#include "cmd/pchat-bench/bench_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/pc_str.h"

/* utime and stime are fields 14 and 15 of /proc/<pid>/stat; the command name (field 2)
 * may hold spaces and parentheses, so count fields from the last ')'. */
static bool read_cpu(pid_t pid, uint64_t *cpu_ns)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    p++;
    /* After ") " come field 3 (state) onwards: walk the spaces to fields 14 and 15. */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    while (*p != '\0' && field < 15) {
        while (*p == ' ')
            p++;
        field++;
        if (field == 14)
            ut = strtoull(p, &p, 10);
        else if (field == 15)
            st = strtoull(p, &p, 10);
        else
            p += strcspn(p, " ");
    }
    if (field != 15)
        return false;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    *cpu_ns = (ut + st) * (1000000000ull / (uint64_t)hz);
    return true;
}

static bool read_mem(pid_t pid, uint64_t *rss_kb, uint64_t *hwm_kb)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool got = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            *rss_kb = strtoull(line + 6, NULL, 10);
            got = true;
        } else if (strncmp(line, "VmHWM:", 6) == 0) {
            *hwm_kb = strtoull(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return got;
}

bool bench_proc_sample(pid_t pid, struct bench_proc_sample *out)
{
    memset(out, 0, sizeof *out);
    out->ok = pid > 0 && read_cpu(pid, &out->cpu_ns) && read_mem(pid, &out->rss_kb, &out->hwm_kb);
    return out->ok;
}

size_t bench_proc_pids_from_run_dir(const char *dir, pid_t *pids, size_t max)
{
    size_t found = 0;
    for (size_t i = 0; i < max; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/n%zu/pchatd.pid", dir, i + 1);
        pids[i] = 0;
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char line[32] = "";
        unsigned long long v = 0;
        if (fgets(line, sizeof line, f) != NULL) {
            line[strcspn(line, "\r\n")] = '\0';
            if (pc_parse_u64(line, 1, 0x7fffffff, &v)) {
                pids[i] = (pid_t)v;
                found++;
            }
        }
        fclose(f);
    }
    return found;
}

int bench_proc_parse_pids(const char *list, pid_t *pids, size_t max, char *why, size_t cap)
{
    size_t n = 0;
    const char *p = list;
    while (*p != '\0') {
        char tok[32];
        size_t len = strcspn(p, ",");
        unsigned long long v = 0;
        if (len == 0 || len >= sizeof tok) {
            snprintf(why, cap, "--pids: expected comma-separated process ids, got '%s'", list);
            return -1;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (!pc_parse_u64(tok, 1, 0x7fffffff, &v)) {
            snprintf(why, cap, "--pids: '%s' is not a process id", tok);
            return -1;
        }
        if (n == max) {
            snprintf(why, cap, "--pids: at most %zu processes", max);
            return -1;
        }
        pids[n++] = (pid_t)v;
        p += len;
        if (*p == ',')
            p++;
    }
    return (int)n;
}
