/* Node limits that had no test (issue 9 item 3): client connections per node, the idle
 * timeout of unregistered SIP connections, the header/body timeouts of SIP and HTTP
 * (slowloris), the per-session bound on commands in progress and the per-node bound on
 * posts waiting for their commit, each answered with a precise refusal (503 has
 * Retry-After) and counted in /metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/pc_buf.h"
#include "tests/lib/tl.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits up to ms for the server to close fd; returns how long it took (or ms + 1). */
static uint64_t wait_closed(int fd, unsigned ms)
{
    uint64_t t0 = now_ms();
    char buf[4096];
    while (now_ms() - t0 <= ms) {
        bool closed = false;
        tl_raw_read(fd, buf, sizeof buf, 100, &closed);
        if (closed)
            return now_ms() - t0;
    }
    return ms + 1;
}

static void connectionsPerNode_areBounded(void **state)
{
    (void)state;
    struct tl_node node;
    tl_node_init(&node, tl_port_base() + 11, "[sip]\nmax_connections = 3\n");
    tl_node_start(&node);
    tl_spin(500); /* the readiness probes' connections are gone */
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = tl_raw_connect(node.sip_port);
    tl_spin(200);
    int extra = tl_raw_connect(node.sip_port);
    uint64_t t = wait_closed(extra, 3000);
    fprintf(stderr, "  4th connection with max_connections = 3: closed after %llu ms\n",
            (unsigned long long)t);
    assert_true(t <= 3000);
    assert_true(tl_metric(&node, "pchat_sip_connections_refused_total") >= 1);
    assert_true(tl_node_log_contains(&node, "connections is the configured maximum"));
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    close(extra);
    tl_node_stop(&node);
    tl_node_cleanup(&node);
}

/* Connects to port, sends what (may be NULL), and waits for the server to close the
 * connection (5 s at most); then checks that the timeout was counted under label. */
static void closed_by_timeout(const struct tl_node *node, int port, const char *what,
                              const char *label, const char *metric_name)
{
    long long before = tl_metric(node, metric_name);
    int fd = tl_raw_connect(port);
    if (what != NULL)
        tl_raw_send(fd, what, strlen(what));
    uint64_t t = wait_closed(fd, 5000);
    fprintf(stderr, "  %s: closed after %llu ms\n", label, (unsigned long long)t);
    assert_true(t <= 5000);
    close(fd);
    /* The server counts when its close completes, which may come a moment after ours. */
    long long after = tl_metric(node, metric_name);
    for (int i = 0; i < 20 && after == before; i++) {
        usleep(100000);
        after = tl_metric(node, metric_name);
    }
    fprintf(stderr, "    %s %lld -> %lld\n", metric_name, before, after);
    assert_true(before >= 0 && after == before + 1);
}

static void idleSip_andSlowHttp_areClosed(void **state)
{
    (void)state;
    struct tl_node node;
    tl_node_init(&node, tl_port_base() + 13,
                 "[sip]\nidle_timeout = 1\nheader_timeout = 1\n[web]\ntimeout = 1\n");
    tl_node_start(&node);
    /* SIP: connected, never registers, sends nothing. */
    closed_by_timeout(&node, node.sip_port, NULL, "idle SIP connection (idle_timeout = 1)",
                      "pchat_sip_timeouts_total{kind=\"idle\"}");
    /* SIP: a message whose header never ends, and one whose body never comes. */
    closed_by_timeout(&node, node.sip_port, "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/",
                      "SIP header never finished (header_timeout = 1)",
                      "pchat_sip_timeouts_total{kind=\"incomplete\"}");
    closed_by_timeout(&node, node.sip_port,
                      "OPTIONS sip:example.test SIP/2.0\r\nContent-Length: 100\r\n\r\nten bytes.",
                      "SIP body never finished (header_timeout = 1)",
                      "pchat_sip_timeouts_total{kind=\"incomplete\"}");
    /* HTTP: a connection that never sends a request; half a request (slowloris); a body
     * that stops short of its Content-Length. */
    closed_by_timeout(&node, node.web_port, NULL, "idle HTTP connection (timeout = 1)",
                      "pchat_http_timeouts_total{kind=\"idle\"}");
    closed_by_timeout(&node, node.web_port, "GET /healthz HTTP/1.1\r\nHost: x\r\n",
                      "HTTP request headers never finished (timeout = 1)",
                      "pchat_http_timeouts_total{kind=\"headers\"}");
    closed_by_timeout(&node, node.web_port,
                      "POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"user\"",
                      "HTTP request body never finished (timeout = 1)",
                      "pchat_http_timeouts_total{kind=\"body\"}");
    assert_true(tl_node_log_contains(&node, "idle without registration for 1s"));
    assert_true(tl_node_log_contains(&node, "without progress (in its headers)"));
    tl_node_stop(&node);
    tl_node_cleanup(&node);
}

/* Sends n posts without waiting; counts their answers by status. */
static void pipeline(struct tl_client *c, const char *room, int n, int *ok, int *busy,
                     char *reason, size_t cap)
{
    uint32_t *cseq = calloc((size_t)n, sizeof *cseq);
    char text[64];
    for (int i = 0; i < n; i++) {
        snprintf(text, sizeof text, "pipelined %d", i);
        cseq[i] = pcc_post(c->pcc, room, text);
    }
    *ok = *busy = 0;
    for (int i = 0; i < n; i++) {
        char why[256];
        int st = tl_wait_sip(c, cseq[i], 10000, why, sizeof why);
        *ok += st == 200;
        if (st == 503) {
            (*busy)++;
            snprintf(reason, cap, "%s", why);
        }
    }
    free(cseq);
}

static void queues_perSessionAndPerNode_answer503(void **state)
{
    (void)state;
    struct tl_node node;
    char lobby[256], reason[256] = "";
    int ok, busy;
    /* Per session: at most 2 commands in progress. */
    tl_node_init(&node, tl_port_base() + 15, "[sip]\nmax_pending_commands = 2\n");
    tl_node_start(&node);
    struct tl_client *c = tl_client_new(node.sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    pcc_event_free(tl_join(c, lobby));
    pipeline(c, lobby, 40, &ok, &busy, reason, sizeof reason);
    fprintf(stderr, "  40 pipelined posts, max_pending_commands = 2: %d ok, %d x 503 \"%s\"\n",
            ok, busy, reason);
    assert_true(ok >= 2 && busy >= 1 && ok + busy == 40);
    assert_non_null(strstr(reason, "Too many requests in progress"));
    assert_true(tl_metric(&node, "pchat_sip_503_total") >= busy);
    tl_client_close(c);
    tl_node_stop(&node);
    tl_node_cleanup(&node);

    /* Per node: at most 1 post waiting for its commit per shard. */
    tl_node_init(&node, tl_port_base() + 17, "[cluster]\nmax_pending_posts = 1\n");
    tl_node_start(&node);
    c = tl_client_new(node.sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(c, "Lobby", lobby, sizeof lobby));
    pcc_event_free(tl_join(c, lobby));
    reason[0] = '\0';
    pipeline(c, lobby, 40, &ok, &busy, reason, sizeof reason);
    fprintf(stderr, "  40 pipelined posts, max_pending_posts = 1: %d ok, %d x 503 \"%s\"\n", ok,
            busy, reason);
    assert_true(ok >= 1 && busy >= 1 && ok + busy == 40);
    assert_non_null(strstr(reason, "busy"));
    assert_true(tl_metric(&node, "pchat_sip_503_total") >= busy);
    assert_true(tl_metric(&node, "pchat_posts_refused_total{reason=\"queue_full\"}") >= busy);
    tl_client_close(c);
    tl_node_stop(&node);
    tl_node_cleanup(&node);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connectionsPerNode_areBounded),
        cmocka_unit_test(idleSip_andSlowHttp_areClosed),
        cmocka_unit_test(queues_perSessionAndPerNode_answer503),
    };
    int rc = cmocka_run_group_tests_name("limits_queues", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
