#include "tests/lib/tl.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>

#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

TAILQ_HEAD(tl_event_list, pcc_event);

static uv_loop_t *loop;

uv_loop_t *tl_loop(void)
{
    if (loop == NULL) {
        loop = pc_malloc(sizeof *loop);
        uv_loop_init(loop);
        signal(SIGPIPE, SIG_IGN);
        if (getenv("PCHAT_TEST_DEBUG") == NULL)
            pc_log_init("test", PC_LOG_ERROR);
    }
    return loop;
}

int tl_port_base(void)
{
    const char *env = getenv("PCHAT_TEST_PORT_BASE");
    if (env != NULL)
        return atoi(env);
    /* Spread concurrent test processes over 10000-31999 in steps of 150: below Linux's
     * ephemeral range (32768-60999), where the many client and peer connections of a test
     * take their local ports and could hold a port a node is about to listen on. */
    return 10000 + (int)((unsigned)getpid() % 146) * 150;
}

static const char *build_dir(void)
{
    const char *b = getenv("PCHAT_BUILD");
    return b != NULL ? b : "build";
}

/* PCHAT_TEST_CLUSTER_TLS=1 runs every test node's cluster port with mutual TLS: one test pool
 * CA (deploy/pool-ca, in a temp dir removed at exit) and a certificate per node id, made on
 * first use. Any pool test then also tests the TLS transport (failover, joins, restarts). */
static char tls_dir[64];

static void remove_tls_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tls_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tls_dir);
}

static void cluster_tls_conf(FILE *f, const char *extra_conf)
{
    const char *env = getenv("PCHAT_TEST_CLUSTER_TLS");
    if (env == NULL || strcmp(env, "1") != 0)
        return;
    char cmd[512], path[128];
    if (tls_dir[0] == '\0') {
        snprintf(tls_dir, sizeof tls_dir, "/tmp/pchat-test-ca-XXXXXX");
        assert_non_null(mkdtemp(tls_dir));
        atexit(remove_tls_dir);
        snprintf(cmd, sizeof cmd, "deploy/pool-ca init %s/ca >/dev/null", tls_dir);
        assert_int_equal(system(cmd), 0);
    }
    int id = 1; /* pchatd's default [node] id */
    const char *at = extra_conf != NULL ? strstr(extra_conf, "\nid = ") : NULL;
    if (extra_conf != NULL && strncmp(extra_conf, "id = ", 5) == 0)
        id = atoi(extra_conf + 5);
    else if (at != NULL)
        id = atoi(at + 6);
    snprintf(path, sizeof path, "%s/ca/node%d.pem", tls_dir, id);
    if (access(path, R_OK) != 0) {
        snprintf(cmd, sizeof cmd, "deploy/pool-ca issue %s/ca %d >/dev/null", tls_dir, id);
        assert_int_equal(system(cmd), 0);
    }
    fprintf(f, "[cluster]\ntls_ca = %s/ca/ca.pem\ntls_cert = %s/ca/node%d.pem\n"
            "tls_key = %s/ca/node%d.key\n", tls_dir, tls_dir, id, tls_dir, id);
}

void tl_node_init(struct tl_node *n, int sip_port, const char *extra_conf)
{
    memset(n, 0, sizeof *n);
    snprintf(n->dir, sizeof n->dir, "/tmp/pchat-test-XXXXXX");
    assert_non_null(mkdtemp(n->dir));
    n->sip_port = sip_port;
    n->web_port = sip_port + TL_WEB_PORT_OFFSET;
    snprintf(n->log_path, sizeof n->log_path, "%s/pchatd.log", n->dir);
    snprintf(n->admin_path, sizeof n->admin_path, "%s/admin.sock", n->dir);
    snprintf(n->conf_path, sizeof n->conf_path, "%s/pchatd.conf", n->dir);
    FILE *f = fopen(n->conf_path, "w");
    assert_non_null(f);
    fprintf(f,
            "[node]\nname = t%d\ndata_dir = %s/data\nadmin_socket = %s\nlog_level = info\n"
            "[sip]\ntcp_port = %d\n[seed]\ndemo = yes\n[cluster]\nlisten = 127.0.0.1:%d\n"
            "[web]\nport = %d\n",
            sip_port, n->dir, n->admin_path, sip_port, sip_port + TL_CLUSTER_PORT_OFFSET,
            n->web_port);
    if (extra_conf != NULL)
        fprintf(f, "%s\n", extra_conf);
    cluster_tls_conf(f, extra_conf);
    fclose(f);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a node's temp dir, unless PCHAT_TEST_KEEP asks to keep it for a look. */
static void remove_node_dir(const char *dir)
{
    if (dir[0] != '\0' && getenv("PCHAT_TEST_KEEP") == NULL)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Every node this process started and has not yet reaped. A cmocka assertion leaves its
 * test at once, before the test stops its nodes; without this the next test of the same
 * program would find their ports taken and fail too. */
static struct spawned {
    pid_t pid;
    int sip_port;
    char dir[sizeof ((struct tl_node *)0)->dir];
} spawned[64];

static void spawned_forget(pid_t pid)
{
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++)
        if (spawned[i].pid == pid)
            spawned[i].pid = 0;
}

static void spawned_remember(const struct tl_node *n)
{
    spawned_forget(n->pid); /* a reused pid */
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++)
        if (spawned[i].pid == 0) {
            spawned[i].pid = n->pid;
            spawned[i].sip_port = n->sip_port;
            snprintf(spawned[i].dir, sizeof spawned[i].dir, "%s", n->dir);
            return;
        }
}

static bool ports_overlap(int a, int b)
{
    int pa[] = {a, a + TL_CLUSTER_PORT_OFFSET, a + TL_WEB_PORT_OFFSET};
    int pb[] = {b, b + TL_CLUSTER_PORT_OFFSET, b + TL_WEB_PORT_OFFSET};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (pa[i] == pb[j])
                return true;
    return false;
}

/* Kills the nodes an earlier, failed test of this process left holding n's ports. Only
 * children still alive are touched (waitpid says so), never a process of someone else. */
static void kill_left_behind(const struct tl_node *n)
{
    for (size_t i = 0; i < sizeof spawned / sizeof spawned[0]; i++) {
        struct spawned *s = &spawned[i];
        if (s->pid == 0 || !ports_overlap(s->sip_port, n->sip_port))
            continue;
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == 0) {
            fprintf(stderr, "tl: stopping pchatd %d (port %d), left running by a failed test\n",
                    (int)s->pid, s->sip_port);
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            remove_node_dir(s->dir);
        }
        s->pid = 0;
    }
}

void tl_node_spawn(struct tl_node *n)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/bin/pchatd", build_dir());
    kill_left_behind(n);
    if (port_open(n->sip_port))
        fail_msg("port %d is already taken (a stray pchatd from an earlier run?): "
                 "stop it or set PCHAT_TEST_PORT_BASE", n->sip_port);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A test that fails half-way must not leave nodes behind holding ports. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(n->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, "pchatd", "-c", n->conf_path, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    n->pid = pid;
    spawned_remember(n);
    n->log_mark = 0;
    struct stat st;
    if (stat(n->log_path, &st) == 0)
        n->log_mark = (long)st.st_size;
}

void tl_node_wait_ready(struct tl_node *n, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    while (pc_mono_ms() < deadline) {
        int status;
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            tl_node_dump_log(n);
            fail_msg("pchatd exited at start-up (status %d)", status);
        }
        /* Ready = listening and the demo content is in place (this start's log only). */
        if (port_open(n->sip_port) && tl_node_log_contains_since(n, "seed: demo"))
            return;
        usleep(20000);
    }
    tl_node_dump_log(n);
    fail_msg("pchatd did not start within %u ms", ms);
}

void tl_node_start(struct tl_node *n)
{
    tl_node_spawn(n);
    tl_node_wait_ready(n, 10000);
}

void tl_pool_init(struct tl_node *nodes, int n, int first_sip_port, const char *extra_conf)
{
    char peers[1024] = "";
    for (int i = 0; i < n; i++) {
        char item[64];
        snprintf(item, sizeof item, "%s%d=127.0.0.1:%d", i ? "," : "", i + 1,
                 first_sip_port + i + TL_CLUSTER_PORT_OFFSET);
        strcat(peers, item);
    }
    for (int i = 0; i < n; i++) {
        char conf[4096];
        snprintf(conf, sizeof conf, "[node]\nid = %d\nname = n%d\n[cluster]\npeers = %s\n%s", i + 1,
                 i + 1, peers, extra_conf != NULL ? extra_conf : "");
        tl_node_init(&nodes[i], first_sip_port + i, conf);
    }
}

void tl_pool_start(struct tl_node *nodes, int n)
{
    /* Together: no node is ready before a majority is up to elect a metadata leader. */
    for (int i = 0; i < n; i++)
        tl_node_spawn(&nodes[i]);
    for (int i = 0; i < n; i++)
        tl_node_wait_ready(&nodes[i], 20000);
}

static int wait_exit(pid_t pid, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    int status;
    while (pc_mono_ms() < deadline) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

void tl_node_stop(struct tl_node *n)
{
    if (n->pid == 0)
        return;
    kill(n->pid, SIGTERM);
    int status = wait_exit(n->pid, 20000);
    spawned_forget(n->pid);
    n->pid = 0;
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tl_node_dump_log(n);
        fail_msg("pchatd did not exit cleanly on SIGTERM (status %d)", status);
    }
}

void tl_node_kill(struct tl_node *n)
{
    if (n->pid == 0)
        return;
    kill(n->pid, SIGKILL);
    int status;
    waitpid(n->pid, &status, 0);
    spawned_forget(n->pid);
    n->pid = 0;
}

void tl_node_cleanup(struct tl_node *n)
{
    remove_node_dir(n->dir);
}

void tl_node_dump_log(const struct tl_node *n)
{
    FILE *f = fopen(n->log_path, "r");
    if (f == NULL)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 8000 ? size - 8000 : 0, SEEK_SET);
    char buf[8001];
    size_t r = fread(buf, 1, 8000, f);
    buf[r] = '\0';
    fclose(f);
    fprintf(stderr, "---- tail of %s ----\n%s---- end ----\n", n->log_path, buf);
}

static bool log_contains_from(const struct tl_node *n, long offset, const char *s)
{
    FILE *f = fopen(n->log_path, "r");
    if (f == NULL)
        return false;
    fseek(f, offset, SEEK_SET);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, s) != NULL;
    fclose(f);
    return found;
}

bool tl_node_log_contains_since(const struct tl_node *n, const char *s)
{
    return log_contains_from(n, n->log_mark, s);
}

bool tl_node_log_contains(const struct tl_node *n, const char *s)
{
    return log_contains_from(n, 0, s);
}

int tl_pchatctl(const struct tl_node *n, char *out, size_t cap, const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/bin/pchatctl -S %s %s 2>&1", build_dir(), n->admin_path, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t r = fread(out, 1, cap - 1, p);
    out[r] = '\0';
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- clients ---------------------------------------------------------------------------- */

static void wake(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until ms passed or an I/O callback ran. */
static void run_once(unsigned ms)
{
    uv_timer_t t;
    /* The loop's clock is cached: without a refresh the timer may count from a stale time,
     * fire at once, and leave UV_RUN_ONCE blocking with no timer at all. */
    uv_update_time(tl_loop());
    uv_timer_init(tl_loop(), &t);
    uv_timer_start(&t, wake, ms, 0);
    uv_run(tl_loop(), UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(tl_loop(), UV_RUN_NOWAIT);
}

void tl_spin(unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    while (pc_mono_ms() < deadline)
        run_once((unsigned)(deadline - pc_mono_ms()) + 1);
}

static void pull(struct tl_client *c)
{
    struct pcc_event *ev;
    while ((ev = pcc_next_event(c->pcc)) != NULL)
        TAILQ_INSERT_TAIL(c->pending, ev, link);
}

typedef bool (*tl_match)(const struct pcc_event *ev, const void *arg);

static struct pcc_event *wait_for(struct tl_client *c, tl_match match, const void *arg, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    for (;;) {
        pull(c);
        struct pcc_event *ev;
        TAILQ_FOREACH(ev, c->pending, link)
            if (match(ev, arg)) {
                TAILQ_REMOVE(c->pending, ev, link);
                return ev;
            }
        uint64_t now = pc_mono_ms();
        if (now >= deadline)
            return NULL;
        run_once((unsigned)(deadline - now));
    }
}

static bool is_ready_or_closed(const struct pcc_event *ev, const void *arg)
{
    (void)arg;
    return ev->kind == PCC_EV_READY || ev->kind == PCC_EV_CLOSED;
}

/* Where clients reach a port other than on loopback (tl_client_host). A handful at most. */
static struct {
    int port;
    char host[64];
} port_hosts[16];
static size_t n_port_hosts;

void tl_client_host(int port, const char *host)
{
    for (size_t i = 0; i < n_port_hosts; i++)
        if (port_hosts[i].port == port) {
            pc_strlcpy(port_hosts[i].host, host, sizeof port_hosts[i].host);
            return;
        }
    assert_true(n_port_hosts < sizeof port_hosts / sizeof port_hosts[0]);
    port_hosts[n_port_hosts].port = port;
    pc_strlcpy(port_hosts[n_port_hosts].host, host, sizeof port_hosts[n_port_hosts].host);
    n_port_hosts++;
}

static const char *host_of(int port)
{
    for (size_t i = 0; i < n_port_hosts; i++)
        if (port_hosts[i].port == port)
            return port_hosts[i].host;
    return "127.0.0.1";
}

struct tl_client *tl_client_try(int port, const char *user, char *why, size_t cap)
{
    return tl_client_try_password(port, user, NULL, why, cap);
}

struct tl_client *tl_client_try_password(int port, const char *user, const char *password,
                                         char *why, size_t cap)
{
    struct tl_client *c = pc_calloc(1, sizeof *c);
    c->pending = pc_malloc(sizeof *c->pending);
    TAILQ_INIT(c->pending);
    pc_strlcpy(c->user, user, sizeof c->user);
    struct pcc_config cfg = {.host = host_of(port), .port = port, .user = user, .password = password};
    c->pcc = pcc_start(tl_loop(), &cfg);
    struct pcc_event *ev = wait_for(c, is_ready_or_closed, NULL, 10000);
    bool ok = ev != NULL && ev->kind == PCC_EV_READY;
    if (!ok && why != NULL)
        snprintf(why, cap, "%s", ev ? ev->reason : "timeout");
    pcc_event_free(ev);
    if (!ok) {
        tl_client_close(c);
        return NULL;
    }
    return c;
}

struct tl_client *tl_client_new(int port, const char *user)
{
    char why[256];
    struct tl_client *c = tl_client_try(port, user, why, sizeof why);
    if (c == NULL)
        fail_msg("%s could not sign in: %s", user, why);
    return c;
}

void tl_drain(struct tl_client *c)
{
    pull(c);
    struct pcc_event *ev;
    while ((ev = TAILQ_FIRST(c->pending)) != NULL) {
        TAILQ_REMOVE(c->pending, ev, link);
        pcc_event_free(ev);
    }
}

void tl_client_close(struct tl_client *c)
{
    if (c == NULL)
        return;
    tl_drain(c);
    pcc_close(c->pcc, true);
    pc_free(c->pending);
    pc_free(c);
    uv_run(tl_loop(), UV_RUN_NOWAIT);
}

static bool is_reply(const struct pcc_event *ev, const void *arg)
{
    return ev->kind == PCC_EV_XCCOS && ev->msg.kind == XCCOS_KIND_RPL && ev->msg.cmd_envid != NULL &&
           strcmp(ev->msg.cmd_envid, arg) == 0;
}

struct pcc_event *tl_wait_reply(struct tl_client *c, const char *envid, unsigned ms)
{
    struct pcc_event *ev = wait_for(c, is_reply, envid, ms);
    if (ev == NULL)
        fail_msg("%s: no reply to command %s within %u ms", c->user, envid, ms);
    return ev;
}

static bool is_sip(const struct pcc_event *ev, const void *arg)
{
    return ev->kind == PCC_EV_SIP_RESPONSE && ev->cseq == *(const uint32_t *)arg;
}

int tl_wait_sip(struct tl_client *c, uint32_t cseq, unsigned ms, char *reason, size_t cap)
{
    struct pcc_event *ev = wait_for(c, is_sip, &cseq, ms);
    if (ev == NULL)
        return 0;
    int status = ev->status;
    if (reason != NULL)
        snprintf(reason, cap, "%s", ev->reason);
    pcc_event_free(ev);
    return status;
}

struct chat_match {
    const char *room;
    const char *text;
};

static bool is_chat(const struct pcc_event *ev, const void *arg)
{
    const struct chat_match *m = arg;
    return ev->kind == PCC_EV_XCCOS && ev->msg.kind == XCCOS_KIND_GRPCHAT &&
           (m->room == NULL || (ev->msg.chat.chan_uri && strcmp(ev->msg.chat.chan_uri, m->room) == 0)) &&
           (m->text == NULL || (ev->msg.chat.text && strcmp(ev->msg.chat.text, m->text) == 0));
}

struct pcc_event *tl_wait_chat(struct tl_client *c, const char *room_uri, const char *text,
                               unsigned ms)
{
    struct chat_match m = {room_uri, text};
    return wait_for(c, is_chat, &m, ms);
}

struct notice_match {
    bool entered;
    const char *user;
};

static bool is_notice(const struct pcc_event *ev, const void *arg)
{
    const struct notice_match *m = arg;
    return ev->kind == PCC_EV_XCCOS && ev->msg.kind == XCCOS_KIND_NTC &&
           (ev->msg.op == XCCOS_OP_JOIN) == m->entered && ev->msg.presence.user_uri != NULL &&
           strcasecmp(ev->msg.presence.user_uri, m->user) == 0;
}

struct pcc_event *tl_wait_notice(struct tl_client *c, bool entered, const char *user, unsigned ms)
{
    struct notice_match m = {entered, user};
    return wait_for(c, is_notice, &m, ms);
}

static bool is_traffic(const struct pcc_event *ev, const void *arg)
{
    (void)arg;
    return ev->kind == PCC_EV_XCCOS &&
           (ev->msg.kind == XCCOS_KIND_GRPCHAT || ev->msg.kind == XCCOS_KIND_NTC);
}

bool tl_quiet(struct tl_client *c, unsigned ms)
{
    tl_spin(ms);
    pull(c);
    struct pcc_event *ev;
    TAILQ_FOREACH(ev, c->pending, link)
        if (is_traffic(ev, NULL))
            return false;
    return true;
}

static bool is_closed(const struct pcc_event *ev, const void *arg)
{
    (void)arg;
    return ev->kind == PCC_EV_CLOSED;
}

int tl_wait_closed(struct tl_client *c, unsigned ms)
{
    struct pcc_event *ev = wait_for(c, is_closed, NULL, ms);
    if (ev == NULL)
        return 0;
    int s = ev->status;
    pcc_event_free(ev);
    return s;
}

struct pcc_event *tl_search(struct tl_client *c, const char *criteria)
{
    char envid[24];
    assert_true(pcc_search(c->pcc, criteria, envid) > 0);
    return tl_wait_reply(c, envid, 5000);
}

const char *tl_room_uri(struct tl_client *c, const char *name, char *buf, size_t cap)
{
    struct pcc_event *ev = tl_search(c, name);
    const char *r = NULL;
    for (size_t i = 0; i < ev->msg.n_rooms; i++)
        if (ev->msg.rooms[i].name != NULL && strcasecmp(ev->msg.rooms[i].name, name) == 0) {
            snprintf(buf, cap, "%s", ev->msg.rooms[i].uri);
            r = buf;
        }
    pcc_event_free(ev);
    return r;
}

struct pcc_event *tl_join(struct tl_client *c, const char *room_uri)
{
    char envid[24];
    assert_true(pcc_join(c->pcc, &room_uri, 1, envid) > 0);
    return tl_wait_reply(c, envid, 5000);
}

struct pcc_event *tl_history(struct tl_client *c, const char *room_uri, unsigned count,
                             uint64_t before)
{
    char envid[24];
    assert_true(pcc_history(c->pcc, room_uri, count, before, envid) > 0);
    return tl_wait_reply(c, envid, 5000);
}

int tl_post(struct tl_client *c, const char *room_uri, const char *text)
{
    uint32_t cseq = pcc_post(c->pcc, room_uri, text);
    assert_true(cseq > 0);
    return tl_wait_sip(c, cseq, 10000, NULL, 0);
}

/* ---- raw TCP -------------------------------------------------------------------------------- */

int tl_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

void tl_raw_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, data, len, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        data += w;
        len -= (size_t)w;
    }
}

size_t tl_raw_read(int fd, char *buf, size_t cap, unsigned ms, bool *closed)
{
    size_t n = 0;
    *closed = false;
    uint64_t deadline = pc_mono_ms() + ms;
    while (n + 1 < cap) {
        uint64_t now = pc_mono_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            break;
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) {
            *closed = true;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* ---- metrics ------------------------------------------------------------------------------ */

static size_t metric_write(char *p, size_t size, size_t n, void *ud)
{
    pc_buf_append(ud, p, size * n);
    return size * n;
}

void tl_admin_token(const struct tl_node *n, char *out, size_t cap)
{
    char path[400];
    snprintf(path, sizeof path, "%s/data/admin.token", n->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    out[0] = '\0';
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

long long tl_metric(const struct tl_node *n, const char *name)
{
    CURL *c = curl_easy_init();
    struct pc_buf b = {0};
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->web_port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, metric_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    long long v = -1;
    if (curl_easy_perform(c) == CURLE_OK) {
        pc_buf_append(&b, "", 1);
        char key[256];
        snprintf(key, sizeof key, "\n%s ", name);
        const char *p = strstr(b.data, key);
        if (p != NULL)
            v = strtoll(p + strlen(key), NULL, 10);
    }
    curl_easy_cleanup(c);
    pc_buf_free(&b);
    return v;
}
