/* pchat-bench: a load generator speaking real SIP/XCCOS to a pchat pool (pchat-bench --help). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/pchat-bench/bench_proc.h"
#include "cmd/pchat-bench/bench_report.h"
#include "cmd/pchat-bench/bench_run.h"
#include "common/pc_log.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

static const char usage[] =
    "usage: pchat-bench [options]\n"
    "Signs in U users (one SIP/XCCOS session each, spread over the nodes), has user i join\n"
    "room i mod R, optionally fetch history, then post for T seconds and reports posts acked/s,\n"
    "deliveries/s, post->delivery latency, join/history latency, 503s, errors, node CPU/RSS.\n"
    "  --servers H:P[,P…]   nodes' SIP TCP address(es), e.g. 127.0.0.1:5060,5070,5080\n"
    "  --pids P,P,…         node pids, in --servers order (CPU and RSS from /proc)\n"
    "  --run-dir DIR        …or read them from DIR/n<i>/pchatd.pid (deploy/pool, tests/bench/run)\n"
    "  --users U            sessions (default 100)\n"
    "  --rooms R            rooms joined (default 10; 0 = sign in and hold only)\n"
    "  --room-prefix P      rooms are P-1 … P-R, created beforehand (default bench)\n"
    "  --user-prefix P      users are P<i>@DOMAIN (default benchu)\n"
    "  --domain D           (default example.test)\n"
    "  --mode open|closed   open: fixed rate, latency from the intended send time;\n"
    "                       closed: saturation, --window posts in flight per user (default open)\n"
    "  --rate R             open loop: posts/s per user (default 1)\n"
    "  --window W           closed loop: posts in flight per user, 1…64 (default 1)\n"
    "  --posters N          only the first N users post (default all)\n"
    "  --duration T         seconds of posting, warm-up included (default 10; 0 = none)\n"
    "  --warmup S           first seconds not counted (default 1)\n"
    "  --idle S             hold the sessions S seconds after joining (default 0)\n"
    "  --msg-bytes N        text length of each post (default 100)\n"
    "  --history N          after joining, ask the last N messages (default 0)\n"
    "  --connect-window N   sign-ins in progress at once (default 200)\n"
    "  --join-window N      joins in progress at once (default 64)\n"
    "  --label NAME         scenario name in the report (default bench)\n"
    "  --json FILE          also write the results as JSON (- = stdout)\n"
    "  --procs N            split the sessions over N processes (default 1): one process\n"
    "                       reads well over 100,000 deliveries/s; they start posting together\n"
    "Raise `ulimit -n` above U for many sessions (pchat-bench tries to itself).\n";

static int parse_servers(struct bench_config *cfg, const char *arg, char *host, size_t cap)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || (size_t)(colon - arg) >= cap) {
        fprintf(stderr, "pchat-bench: --servers wants HOST:PORT[,PORT…], not '%s'\n", arg);
        return -1;
    }
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = '\0';
    const char *p = colon + 1;
    cfg->n_ports = 0;
    while (*p != '\0') {
        char tok[16];
        size_t n = strcspn(p, ",");
        unsigned long long v = 0;
        if (n == 0 || n >= sizeof tok) {
            fprintf(stderr, "pchat-bench: --servers: bad port list in '%s'\n", arg);
            return -1;
        }
        memcpy(tok, p, n);
        tok[n] = '\0';
        if (!pc_parse_u64(tok, 1, 65535, &v) || cfg->n_ports == BENCH_MAX_NODES) {
            fprintf(stderr, "pchat-bench: --servers: '%s' is not a port (or more than %d)\n", tok,
                    BENCH_MAX_NODES);
            return -1;
        }
        cfg->ports[cfg->n_ports++] = (int)v;
        p += n;
        if (*p == ',')
            p++;
    }
    return cfg->n_ports > 0 ? 0 : -1;
}

/* Reads exactly len bytes (a child's result can exceed the pipe's buffer). */
static bool read_full(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Runs the workload in n child processes, each with every n-th session, and merges their
 * results into res. The children start posting together: each says 'R' when its
 * sessions are in place, and the parent answers all of them once every one has. */
static int run_procs(struct bench_config *cfg, unsigned n, struct bench_result *res)
{
    char run_id[9];
    pc_random_hex(run_id, 4);
    cfg->run_id = run_id;
    cfg->n_procs = n;
    int up[64], down[64];
    pid_t kids[64];
    for (unsigned k = 0; k < n; k++) {
        int a[2], b[2];
        if (pipe(a) != 0 || pipe(b) != 0) {
            perror("pchat-bench: pipe");
            return -1;
        }
        fflush(NULL);
        kids[k] = fork();
        if (kids[k] < 0) {
            perror("pchat-bench: fork");
            return -1;
        }
        if (kids[k] == 0) {
            close(a[0]);
            close(b[1]);
            cfg->proc_index = k;
            cfg->sync_out = a[1];
            cfg->sync_in = b[0];
            bench_run(cfg, res);
            /* A child that stopped early never said 'R': say it now so nobody waits. */
            if (res->error[0] != '\0' && write(a[1], "E", 1) != 1)
                _exit(1);
            _exit(write_full(a[1], res, sizeof *res) ? 0 : 1);
        }
        close(a[1]);
        close(b[0]);
        up[k] = a[0];
        down[k] = b[1];
    }
    for (unsigned k = 0; k < n; k++) {
        char c = 0;
        if (!read_full(up[k], &c, 1))
            fprintf(stderr, "pchat-bench: process %u died before its sessions were in place\n", k);
    }
    fprintf(stderr, "pchat-bench: all %u processes are in place; go\n", n);
    uint64_t start_ns = pc_mono_ns(); /* one window for all: see bench_config.sync_in */
    for (unsigned k = 0; k < n; k++)
        if (write(down[k], &start_ns, sizeof start_ns) != sizeof start_ns)
            fprintf(stderr, "pchat-bench: process %u is gone\n", k);
    int rc = 0;
    struct bench_result *part = calloc(1, sizeof *part);
    for (unsigned k = 0; k < n; k++) {
        if (part == NULL || !read_full(up[k], part, sizeof *part)) {
            snprintf(res->error, sizeof res->error, "process %u of %u did not report", k, n);
            rc = -1;
        } else {
            /* Each share on its own: a process that falls behind shows here. */
            static struct bench_hist all;
            all = part->session_mean_listeners;
            bench_hist_merge(&all, &part->session_mean_posters);
            fprintf(stderr, "pchat-bench: process %u: %llu deliveries, its sessions' mean latency "
                            "p50 %.1f ms, max %.1f ms\n", k, (unsigned long long)part->delivered,
                    (double)bench_hist_quantile(&all, 0.5) / 1e6, (double)all.max_ns / 1e6);
            if (k == 0)
                *res = *part;
            else
                bench_result_merge(res, part);
        }
        close(up[k]);
        close(down[k]);
        waitpid(kids[k], NULL, 0);
    }
    free(part);
    return rc != 0 || res->error[0] != '\0' ? -1 : 0;
}

static bool num(const char *opt, const char *arg, double min, double max, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "pchat-bench: %s wants a number from %g to %g, not '%s'\n", opt, min, max,
                arg);
        return false;
    }
    *out = v;
    return true;
}

/* Thousands of sessions need as many descriptors; raise the soft limit to the hard one. */
static void raise_fd_limit(unsigned users)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)users + 64)
        fprintf(stderr, "pchat-bench: warning: open-file limit %llu is below %u sessions; raise "
                        "it (ulimit -n) or some sign-ins will fail\n",
                (unsigned long long)rl.rlim_cur, users);
}

int main(int argc, char **argv)
{
    static char host[64] = "127.0.0.1";
    struct bench_config cfg = {
        .label = "bench",
        .host = host,
        .ports = {5060},
        .n_ports = 1,
        .users = 100,
        .rooms = 10,
        .room_prefix = "bench",
        .user_prefix = "benchu",
        .domain = "example.test",
        .rate = 1,
        .window = 1,
        .duration_s = 10,
        .warmup_s = 1,
        .msg_bytes = 100,
        .connect_window = 200,
        .join_window = 64,
        .signin_timeout_ms = 60000,
        .drain_s = 5,
        .n_procs = 1,
        .sync_in = -1,
        .sync_out = -1,
    };
    unsigned procs = 1;
    const char *json_path = NULL, *run_dir = NULL, *pids = NULL;
    enum { O_SERVERS = 1000, O_PIDS, O_RUNDIR, O_USERS, O_ROOMS, O_RPREFIX, O_UPREFIX, O_DOMAIN,
           O_MODE, O_RATE, O_WINDOW, O_POSTERS, O_DURATION, O_WARMUP, O_IDLE, O_BYTES, O_HISTORY,
           O_CWIN, O_JWIN, O_LABEL, O_JSON, O_PROCS };
    static const struct option opts[] = {
        {"servers", required_argument, NULL, O_SERVERS},
        {"pids", required_argument, NULL, O_PIDS},
        {"run-dir", required_argument, NULL, O_RUNDIR},
        {"users", required_argument, NULL, O_USERS},
        {"rooms", required_argument, NULL, O_ROOMS},
        {"room-prefix", required_argument, NULL, O_RPREFIX},
        {"user-prefix", required_argument, NULL, O_UPREFIX},
        {"domain", required_argument, NULL, O_DOMAIN},
        {"mode", required_argument, NULL, O_MODE},
        {"rate", required_argument, NULL, O_RATE},
        {"window", required_argument, NULL, O_WINDOW},
        {"posters", required_argument, NULL, O_POSTERS},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"idle", required_argument, NULL, O_IDLE},
        {"msg-bytes", required_argument, NULL, O_BYTES},
        {"history", required_argument, NULL, O_HISTORY},
        {"connect-window", required_argument, NULL, O_CWIN},
        {"join-window", required_argument, NULL, O_JWIN},
        {"label", required_argument, NULL, O_LABEL},
        {"json", required_argument, NULL, O_JSON},
        {"procs", required_argument, NULL, O_PROCS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    double v;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        bool ok = true;
        switch (o) {
        case O_SERVERS: ok = parse_servers(&cfg, optarg, host, sizeof host) == 0; break;
        case O_PIDS: pids = optarg; break;
        case O_RUNDIR: run_dir = optarg; break;
        case O_USERS: ok = num("--users", optarg, 1, 1000000, &v); cfg.users = (unsigned)v; break;
        case O_ROOMS: ok = num("--rooms", optarg, 0, 100000, &v); cfg.rooms = (unsigned)v; break;
        case O_RPREFIX: cfg.room_prefix = optarg; break;
        case O_UPREFIX: cfg.user_prefix = optarg; break;
        case O_DOMAIN: cfg.domain = optarg; break;
        case O_MODE:
            if (strcmp(optarg, "open") == 0)
                cfg.closed_loop = false;
            else if (strcmp(optarg, "closed") == 0)
                cfg.closed_loop = true;
            else {
                fprintf(stderr, "pchat-bench: --mode is open or closed, not '%s'\n", optarg);
                ok = false;
            }
            break;
        case O_RATE: ok = num("--rate", optarg, 0.001, 100000, &cfg.rate); break;
        case O_WINDOW: ok = num("--window", optarg, 1, 64, &v); cfg.window = (unsigned)v; break;
        case O_POSTERS: ok = num("--posters", optarg, 0, 1000000, &v); cfg.posters = (unsigned)v; break;
        case O_DURATION: ok = num("--duration", optarg, 0, 3600, &cfg.duration_s); break;
        case O_WARMUP: ok = num("--warmup", optarg, 0, 3600, &cfg.warmup_s); break;
        case O_IDLE: ok = num("--idle", optarg, 0, 3600, &cfg.idle_s); break;
        case O_BYTES: ok = num("--msg-bytes", optarg, 40, 8000, &v); cfg.msg_bytes = (unsigned)v; break;
        case O_HISTORY: ok = num("--history", optarg, 0, 500, &v); cfg.history = (unsigned)v; break;
        case O_CWIN: ok = num("--connect-window", optarg, 1, 100000, &v); cfg.connect_window = (unsigned)v; break;
        case O_JWIN: ok = num("--join-window", optarg, 1, 100000, &v); cfg.join_window = (unsigned)v; break;
        case O_LABEL: cfg.label = optarg; break;
        case O_JSON: json_path = optarg; break;
        case O_PROCS: ok = num("--procs", optarg, 1, 64, &v); procs = (unsigned)v; break;
        case 'h': fputs(usage, stdout); return 0;
        default: ok = false; break;
        }
        if (!ok) {
            fprintf(stderr, "pchat-bench --help lists the options\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pchat-bench: unexpected argument '%s' (pchat-bench --help)\n", argv[optind]);
        return 2;
    }
    if (cfg.warmup_s >= cfg.duration_s && cfg.duration_s > 0) {
        fprintf(stderr, "pchat-bench: --warmup (%g s) must be shorter than --duration (%g s)\n",
                cfg.warmup_s, cfg.duration_s);
        return 2;
    }
    char why[200];
    if (pids != NULL) {
        int n = bench_proc_parse_pids(pids, cfg.pids, BENCH_MAX_NODES, why, sizeof why);
        if (n < 0) {
            fprintf(stderr, "pchat-bench: %s\n", why);
            return 2;
        }
        cfg.n_pids = (size_t)n;
    } else if (run_dir != NULL) {
        if (bench_proc_pids_from_run_dir(run_dir, cfg.pids, BENCH_MAX_NODES) == 0)
            fprintf(stderr, "pchat-bench: warning: no %s/n<i>/pchatd.pid found; no node CPU/RSS\n",
                    run_dir);
        cfg.n_pids = cfg.n_ports;
    }
    /* pcc logs undecodable input at warn; the counters say what matters. */
    pc_log_init("bench", PC_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(cfg.users);

    struct bench_result *res = calloc(1, sizeof *res);
    if (res == NULL) {
        fprintf(stderr, "pchat-bench: out of memory\n");
        return 1;
    }
    int rc = procs > 1 ? run_procs(&cfg, procs, res) : bench_run(&cfg, res);
    bench_result_finish(res, cfg.rooms);
    bench_report_table(stdout, &cfg, res);
    fflush(stdout);
    if (json_path != NULL && bench_report_json(json_path, &cfg, res, why, sizeof why) != 0) {
        fprintf(stderr, "pchat-bench: %s\n", why);
        rc = -1;
    }
    if (rc != 0 && res->error[0] != '\0')
        fprintf(stderr, "pchat-bench: %s\n", res->error);
    free(res);
    return rc == 0 ? 0 : 1;
}
