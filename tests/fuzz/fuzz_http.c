/* Fuzz target: the bytes a client sends to a node's HTTP port, through the real stack:
 * libmicrohttpd's request parser and our driver of it (web/http.c), routing and
 * authentication (web/web.c, web_auth.c), the JSON bodies of sign-in, room management and
 * the admin API (chat_manage, chat_admin), search parameters (web_search.c), uploads and
 * downloads (web_files.c) and /metrics, against a one-node pool that runs in this process
 * (raft, RocksDB and the search index in a temporary directory).
 *
 * One input is one client connection: a loopback TCP connection whose server end is handed
 * to the HTTP server as an accepted one (what the TLS bridge does too). The input is
 * written, the client's sending side is shut, and the loop runs until the server closes
 * the connection, or 2 s pass (then the client end is closed and the next input starts).
 *
 * "@TOKEN@" in an input stands for the node's local administrator token, so the seeds
 * (tests/fuzz/corpus/http) and what the fuzzer derives from them get past authentication
 * and reach the admin and room APIs, not only the 401 path. The pool's state (rooms,
 * users, files) carries over from input to input, as it does on a real node. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "chat/chat.h"
#include "cluster/cluster.h"
#include "common/pc_buf.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "search/search.h"
#include "web/web_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PLACEHOLDER "@TOKEN@"
#define INPUT_MS 2000

static struct {
    uv_loop_t loop;
    char dir[64];
    struct chat_service *svc;
    struct cluster *cl;
    struct search *search;
    struct web_service *web;
} node;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_dir(void)
{
    nftw(node.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A run that crashed (the crash is what a fuzzer looks for) never reached atexit: its
 * directory, named after its process, is removed once that process is gone. */
static void remove_stale(const char *base)
{
    DIR *d = opendir(base);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        if (sscanf(e->d_name, "pchat-fuzz-http-%d", &pid) != 1 || pid <= 0 ||
            kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(node.dir, sizeof node.dir, "%s/%s", base, e->d_name);
        remove_dir();
    }
    closedir(d);
}

/* A free loopback port for the cluster listener (the pool has this node alone, but raft's
 * transport listens all the same). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("fuzz_http: free port");
        exit(1);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, err);
    remove_dir();
    exit(1);
}

static void start_node(void)
{
    /* Only errors: a fuzzing run would otherwise write a line per refused request.
     * PCHAT_FUZZ_LOG=info shows what the node did with an input (replaying a crash). */
    const char *level = getenv("PCHAT_FUZZ_LOG");
    int min = level != NULL ? pc_log_level_parse(level) : -1;
    pc_log_init("fuzz", min >= 0 ? (enum pc_log_level)min : PC_LOG_ERROR);
    uv_loop_init(&node.loop);
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale(base);
    snprintf(node.dir, sizeof node.dir, "%s/pchat-fuzz-http-%d", base, (int)getpid());
    remove_dir(); /* left by a crashed run whose process id this one reuses */
    if (mkdir(node.dir, 0700) != 0)
        die("mkdir", strerror(errno));
    atexit(remove_dir);

    struct chat_config cc;
    chat_config_defaults(&cc);
    cc.domain = "example.test";
    cc.chat_uri = "sip:pchat@example.test";
    cc.node_label = "fuzz";
    cc.sip_address = "127.0.0.1:5060";
    node.svc = chat_service_new(&node.loop, &cc);

    static char address[32];
    snprintf(address, sizeof address, "127.0.0.1:%d", free_port());
    struct cluster_config kc = {.node_label = "fuzz", .data_dir = node.dir, .node_id = 1,
                                .address = address, .election_ms = 200, .heartbeat_ms = 50,
                                .segment_bytes = 1 << 20, .snapshot_entries = 1024,
                                .max_pending_posts = 1000, .max_history = 500,
                                .shard_count = 2, .domain = "example.test"};
    struct cluster_sink sink = chat_cluster_sink(node.svc);
    char err[1024];
    if (cluster_open(&node.loop, &kc, &sink, &node.cl, err, sizeof err) != 0)
        die("cluster_open", err);
    chat_service_attach(node.svc, node.cl);
    uint64_t deadline = pc_mono_ms() + 20000;
    while (!(cluster_meta_ready(node.cl) && cluster_meta_leader(node.cl))) {
        if (pc_mono_ms() > deadline)
            die("start", "the one-node pool elected no leader in 20 s");
        uv_run(&node.loop, UV_RUN_ONCE);
    }

    char path[128];
    snprintf(path, sizeof path, "%s/search.sqlite", node.dir);
    struct search_config sc = {.path = path, .interval_ms = 200, .batch = 2000, .edits_ms = 5000};
    if (search_open(&node.loop, cluster_store(node.cl), &sc, &node.search, err, sizeof err) != 0)
        die("search_open", err);

    /* Port 0: no listener, connections come only through http_server_add_connection. The
     * sign-in limits are low so that inputs guessing passwords cost few scrypt runs. */
    struct web_config wc = {.listen = "127.0.0.1", .port = 0, .data_dir = node.dir,
                            .domain = "example.test", .token_minutes = 60,
                            .max_body = 64 * 1024, .max_conns = 64, .timeout_s = 1,
                            .max_file_bytes = 256 * 1024, .login_rate = 1, .login_burst = 2,
                            .login_concurrency = 1};
    struct web_hooks hooks = {.search = node.search};
    if (web_service_start(&node.loop, &wc, node.svc, node.cl, &hooks, &node.web, err,
                          sizeof err) != 0)
        die("web_service_start", err);
}

/* The input with every placeholder replaced by the local administrator token. */
static void expand(const uint8_t *data, size_t size, struct pc_buf *out)
{
    const char *p = (const char *)data, *end = p + size;
    size_t plen = strlen(PLACEHOLDER);
    while (p < end) {
        const char *hit = memmem(p, (size_t)(end - p), PLACEHOLDER, plen);
        if (hit == NULL) {
            pc_buf_append(out, p, (size_t)(end - p));
            break;
        }
        pc_buf_append(out, p, (size_t)(hit - p));
        pc_buf_append(out, node.web->auth.local_token, strlen(node.web->auth.local_token));
        p = hit + plen;
    }
}

/* A connected pair of loopback TCP sockets (server end, client end): what the server gets
 * from accept(), so libmicrohttpd's socket options (TCP_NODELAY, TCP_CORK) apply as on a
 * real connection. */
static int tcp_pair(int sv[2])
{
    static int lfd = -1;
    static struct sockaddr_in sa;
    if (lfd < 0) {
        socklen_t len = sizeof sa;
        sa = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(lfd, (struct sockaddr *)&sa, &len) != 0 || listen(lfd, 16) != 0)
            die("listen", strerror(errno));
    }
    sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sv[1] < 0)
        return -1;
    if (connect(sv[1], (struct sockaddr *)&sa, sizeof sa) != 0 ||
        (sv[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        close(sv[1]);
        return -1;
    }
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    return 0;
}

/* Reads (and drops) the server's answer; true once the server closed the connection. */
static bool drain(int fd)
{
    char buf[16384];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            return true;
        if (n < 0)
            return errno != EAGAIN && errno != EINTR;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (node.web == NULL)
        start_node();
    struct pc_buf in = {0};
    expand(data, size, &in);
    int sv[2];
    if (tcp_pair(sv) != 0) {
        pc_buf_free(&in);
        return 0;
    }
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (http_server_add_connection(node.web->http, sv[0], (struct sockaddr *)&peer,
                                   sizeof peer) != 0) {
        close(sv[1]);
        pc_buf_free(&in);
        return 0;
    }
    uint64_t deadline = pc_mono_ms() + INPUT_MS;
    size_t off = 0;
    bool closed = false;
    /* The socket buffer may be smaller than the input: write what fits, let the server
     * read, repeat. */
    while (off < in.len && !closed && pc_mono_ms() < deadline) {
        ssize_t n = write(sv[1], in.data + off, in.len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            break;
        closed = drain(sv[1]);
        uv_run(&node.loop, UV_RUN_NOWAIT);
    }
    shutdown(sv[1], SHUT_WR);
    /* Turn the loop without blocking and wait on the client's end instead: blocking in
     * uv_run left the input waiting for the node's next timer (10-20 ms) before
     * libmicrohttpd closed the connection, five times slower overall. */
    while (!closed && pc_mono_ms() < deadline) {
        uv_run(&node.loop, UV_RUN_NOWAIT);
        struct pollfd p = {sv[1], POLLIN, 0};
        poll(&p, 1, 1);
        closed = drain(sv[1]);
    }
    close(sv[1]);
    /* Let the server see the close and free the connection before the next input. */
    uv_run(&node.loop, UV_RUN_NOWAIT);
    pc_buf_free(&in);
    return 0;
}
