/* Mutual TLS between the nodes of a pool (issue 9 item 5), with real pchatd processes and the
 * operators' tool (deploy/pool-ca): a 3-node pool whose cluster port runs mutual TLS elects,
 * serves posts through any node and replicates them; a node without a certificate, one with
 * a certificate of another CA, one of the pool CA that the pool does not know, and a client
 * whose certificate names another node than it claims are each refused, visibly (log and
 * /metrics), and none of them joins or disturbs raft; a new node with a certificate of the
 * pool CA joins with pchatctl node add as before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/pc_bin.h"
#include "common/pc_time.h"
#include "tests/lib/tl.h"

#define NODES 3

static const char *pool_conf = "[cluster]\nshards = 4\nelection_timeout_ms = 1000\n"
                               "heartbeat_ms = 100\nsegment_size = 256k\n";

static struct {
    int base;
    char pki[64];   /* the pool CA and node certificates (deploy/pool-ca) */
    char other[256]; /* another CA */
    struct tl_node nodes[NODES];
    char lobby[256];
} w;

/* ---- set-up --------------------------------------------------------------------------------- */

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("`%s` failed (%d)", cmd, rc);
}

static int cluster_port(int sip_port)
{
    return sip_port + TL_CLUSTER_PORT_OFFSET;
}

/* The pool's members at creation plus, when extra_id is set, a node that is not one of them
 * (what a joining node lists). */
static void peers_list(char *out, size_t cap, int extra_id, int extra_port)
{
    out[0] = '\0';
    for (int i = 0; i < NODES; i++) {
        char item[64];
        snprintf(item, sizeof item, "%s%d=127.0.0.1:%d", i ? "," : "", i + 1,
                 cluster_port(w.base + i));
        strncat(out, item, cap - strlen(out) - 1);
    }
    if (extra_id != 0) {
        char item[64];
        snprintf(item, sizeof item, ",%d=127.0.0.1:%d", extra_id, cluster_port(extra_port));
        strncat(out, item, cap - strlen(out) - 1);
    }
}

/* A node's config: its id, the peers, and [cluster] tls_* from ca_dir's files for cert_id
 * (ca_dir NULL: plain). */
static void node_init(struct tl_node *n, int id, int sip_port, const char *peers, bool join,
                      const char *ca_dir, int cert_id)
{
    char conf[4096], tls[1024] = "";
    if (ca_dir != NULL)
        snprintf(tls, sizeof tls, "tls_ca = %s/ca.pem\ntls_cert = %s/node%d.pem\n"
                 "tls_key = %s/node%d.key\n", ca_dir, ca_dir, cert_id, ca_dir, cert_id);
    snprintf(conf, sizeof conf, "[node]\nid = %d\nname = n%d\n%s%speers = %s\n%s%s", id, id,
             pool_conf, tls, peers, join ? "join = yes\n" : "", "");
    tl_node_init(n, sip_port, conf);
}

static int setup(void **state)
{
    (void)state;
    memset(&w, 0, sizeof w);
    w.base = tl_port_base();
    snprintf(w.pki, sizeof w.pki, "/tmp/pchat-pki-XXXXXX");
    assert_non_null(mkdtemp(w.pki));
    snprintf(w.other, sizeof w.other, "%s/other", w.pki);
    char cmd[1024];
    /* The operators' tool, as docs/OPERATIONS.md tells them to use it. */
    snprintf(cmd, sizeof cmd, "deploy/pool-ca init %s/ca >/dev/null && deploy/pool-ca init %s "
             ">/dev/null", w.pki, w.other);
    run(cmd);
    for (int id = 1; id <= 9; id++) {
        snprintf(cmd, sizeof cmd, "deploy/pool-ca issue %s/ca %d >/dev/null", w.pki, id);
        run(cmd);
    }
    snprintf(cmd, sizeof cmd, "deploy/pool-ca issue %s 4 >/dev/null", w.other);
    run(cmd);
    char ca[300], peers[1024];
    snprintf(ca, sizeof ca, "%s/ca", w.pki);
    peers_list(peers, sizeof peers, 0, 0);
    for (int i = 0; i < NODES; i++)
        node_init(&w.nodes[i], i + 1, w.base + i, peers, false, ca, i + 1);
    tl_pool_start(w.nodes, NODES);
    struct tl_client *probe = tl_client_new(w.nodes[1].sip_port, "alice@example.test");
    assert_non_null(tl_room_uri(probe, "Lobby", w.lobby, sizeof w.lobby));
    tl_client_close(probe);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NODES; i++) {
        tl_node_stop(&w.nodes[i]);
        tl_node_cleanup(&w.nodes[i]);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w.pki);
    run(cmd);
    return 0;
}

/* ---- probes ---------------------------------------------------------------------------------- */

/* A counter or gauge of a node's /metrics (the first line that starts with name). */
static long long metric(const struct tl_node *n, const char *name)
{
    char cmd[256], line[512];
    snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/metrics", n->web_port);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    long long v = -1;
    size_t len = strlen(name);
    while (fgets(line, sizeof line, p) != NULL)
        if (v < 0 && strncmp(line, name, len) == 0 && line[len] == ' ')
            v = atoll(line + len + 1);
    pclose(p);
    return v;
}

static long long refused(const struct tl_node *n, const char *reason)
{
    char name[128];
    snprintf(name, sizeof name, "pchat_cluster_refused_total{reason=\"%s\"}", reason);
    return metric(n, name);
}

/* Sum of a refusal counter over the pool. */
static long long refused_pool(const char *reason)
{
    long long sum = 0;
    for (int i = 0; i < NODES; i++)
        sum += refused(&w.nodes[i], reason);
    return sum;
}

/* Waits until the pool's counter for reason passed before; fails after ms. */
static long long wait_refused(const char *reason, long long before, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    long long now;
    while ((now = refused_pool(reason)) <= before) {
        if (pc_mono_ms() > deadline) {
            for (int i = 0; i < NODES; i++)
                tl_node_dump_log(&w.nodes[i]);
            fail_msg("no cluster connection refused for \"%s\" within %u ms", reason, ms);
        }
        tl_spin(100);
    }
    return now;
}

static bool pool_log_contains(const char *s)
{
    for (int i = 0; i < NODES; i++)
        if (tl_node_log_contains(&w.nodes[i], s))
            return true;
    return false;
}

/* Voters of every raft group as node n sees them (-1: not all groups agree). */
static int voters(const struct tl_node *n)
{
    char out[32768];
    assert_int_equal(tl_pchatctl(n, out, sizeof out, "--json pool status"), 0);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    json_t *groups = json_object_get(j, "groups");
    int v = -1;
    for (size_t i = 0; i < json_array_size(groups); i++) {
        int g = (int)json_integer_value(json_object_get(json_array_get(groups, i), "voters"));
        v = i == 0 ? g : (v == g ? v : -1);
    }
    json_decref(j);
    return v;
}

static void wait_voters(const struct tl_node *n, int want, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    while (voters(n) != want) {
        if (pc_mono_ms() > deadline)
            fail_msg("the raft groups did not reach %d voters within %u ms", want, ms);
        tl_spin(100);
    }
}

/* A post through node `from` reaches a member on node `to`; history agrees on node 1. */
static void post_and_see(int from, int to, const char *text)
{
    struct tl_client *a = tl_client_new(w.nodes[from].sip_port, "alice@example.test");
    struct tl_client *b = tl_client_new(w.nodes[to].sip_port, "bob@example.test");
    pcc_event_free(tl_join(a, w.lobby));
    pcc_event_free(tl_join(b, w.lobby));
    assert_int_equal(tl_post(a, w.lobby, text), 200);
    struct pcc_event *ev = tl_wait_chat(b, w.lobby, text, 5000);
    assert_non_null(ev);
    pcc_event_free(ev);
    tl_client_close(a);
    tl_client_close(b);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void tlsPool_electsPostsAndReplicates(void **state)
{
    (void)state;
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(metric(&w.nodes[i], "pchat_cluster_tls"), 1);
        assert_true(tl_node_log_contains(&w.nodes[i], "mutual TLS on the cluster port"));
        assert_false(tl_node_log_contains(&w.nodes[i], "IS NOT AUTHENTICATED"));
    }
    assert_int_equal(voters(&w.nodes[0]), NODES);
    post_and_see(1, 2, "over mutual TLS");
    post_and_see(2, 0, "and back");
    /* Every node's store has both (history read through node 1). */
    struct tl_client *c = tl_client_new(w.nodes[0].sip_port, "carol@example.test");
    struct pcc_event *h = tl_history(c, w.lobby, 10, 0);
    assert_non_null(h);
    pcc_event_free(h);
    tl_client_close(c);
    /* No connection between the members was refused. */
    assert_int_equal(refused_pool("tls") + refused_pool("identity") + refused_pool("unknown") +
                         refused_pool("dial"), 0);
}

/* Starts a stranger, waits for the pool to refuse it for reason, checks the pool is fine. */
static void stranger_refused(struct tl_node *n, const char *reason, const char *log_line)
{
    long long before = refused_pool(reason);
    tl_node_spawn(n);
    wait_refused(reason, before, 15000);
    uint64_t deadline = pc_mono_ms() + 5000;
    while (!pool_log_contains(log_line) && pc_mono_ms() < deadline)
        tl_spin(100);
    assert_true(pool_log_contains(log_line));
    assert_int_equal(voters(&w.nodes[0]), NODES);
}

static void stop_stranger(struct tl_node *n)
{
    tl_node_stop(n);
    tl_node_cleanup(n);
}

static void nodeWithoutCertificate_isRefused_andCannotJoin(void **state)
{
    (void)state;
    char peers[1024];
    static struct tl_node plain;
    peers_list(peers, sizeof peers, 4, w.base + 3);
    node_init(&plain, 4, w.base + 3, peers, true, NULL, 0);
    stranger_refused(&plain, "tls", "TLS handshake failed");
    assert_true(tl_node_log_contains(&plain, "IS NOT AUTHENTICATED"));

    /* Even added by an operator, it never gets in: the leaders' dials to it fail (it says
     * why in its log), it stays out of every group's voters, and the pool goes on serving. */
    char out[4096], args[128];
    snprintf(args, sizeof args, "node add 4 --address 127.0.0.1:%d", cluster_port(w.base + 3));
    assert_int_equal(tl_pchatctl(&w.nodes[0], out, sizeof out, args), 0);
    uint64_t deadline = pc_mono_ms() + 15000;
    while (!tl_node_log_contains(&plain, "it starts a TLS handshake") && pc_mono_ms() < deadline)
        tl_spin(100);
    assert_true(tl_node_log_contains(&plain, "it starts a TLS handshake"));
    tl_spin(2000);
    assert_int_equal(voters(&w.nodes[0]), NODES);
    post_and_see(0, 2, "still serving with a stranger knocking");
    assert_int_equal(tl_pchatctl(&w.nodes[0], out, sizeof out, "node remove 4"), 0);
    stop_stranger(&plain);
}

static void certificateOfAnotherCa_isRefused(void **state)
{
    (void)state;
    char peers[1024];
    static struct tl_node other;
    peers_list(peers, sizeof peers, 4, w.base + 3);
    node_init(&other, 4, w.base + 3, peers, true, w.other, 4);
    stranger_refused(&other, "tls", "TLS handshake failed");
    /* Its own log says why too: the pool's certificates are not of its CA. */
    uint64_t deadline = pc_mono_ms() + 5000;
    while (!tl_node_log_contains(&other, "TLS with the node at") && pc_mono_ms() < deadline)
        tl_spin(100);
    assert_true(tl_node_log_contains(&other, "TLS with the node at"));
    post_and_see(2, 1, "another CA did not get in");
    stop_stranger(&other);
}

static void unknownNodeOfThePoolCa_isRefused(void **state)
{
    (void)state;
    char peers[1024];
    static struct tl_node stranger;
    peers_list(peers, sizeof peers, 9, w.base + 4);
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca", w.pki);
    node_init(&stranger, 9, w.base + 4, peers, true, ca, 9);
    stranger_refused(&stranger, "unknown", "not a member of the pool as this node knows it");
    post_and_see(0, 1, "an unknown node did not get in");
    stop_stranger(&stranger);
}

/* A client that presents node 4's certificate (of the pool CA) but says it is node 3: the
 * identity check, which a pchatd would never fail (it checks its own certificate at start),
 * against someone who holds a node's key and wants to be another node. */
static void certificateOfAnotherNode_isRefused(void **state)
{
    (void)state;
    long long before = refused_pool("identity");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    char path[400], key[400];
    snprintf(path, sizeof path, "%s/ca/ca.pem", w.pki);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    snprintf(path, sizeof path, "%s/ca/node4.pem", w.pki);
    snprintf(key, sizeof key, "%s/ca/node4.key", w.pki);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, path), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)cluster_port(w.nodes[0].sip_port))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    /* A peer-link preamble from "node 3" (raft_mux.h). */
    uint8_t pre[64];
    const char *addr = "127.0.0.1:9";
    size_t alen = strlen(addr);
    pc_be32_write(pre, 0x50434d58u);
    pre[4] = 1;
    pre[5] = 2;
    pre[6] = 0;
    pre[7] = (uint8_t)alen;
    pc_be64_write(pre + 8, 0);
    pc_be64_write(pre + 16, 3);
    memcpy(pre + 24, addr, alen);
    assert_int_equal(SSL_write(ssl, pre, (int)(24 + alen)), (int)(24 + alen));
    uint8_t verdict = 0xff;
    assert_int_equal(SSL_read(ssl, &verdict, 1), 1);
    assert_int_equal(verdict, 3); /* RMX_VERDICT_IDENTITY */
    char more;
    assert_true(SSL_read(ssl, &more, 1) <= 0); /* then the end */
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    wait_refused("identity", before, 5000);
    assert_true(pool_log_contains("its certificate is node 4's but it says it is node 3"));
    post_and_see(1, 0, "an impostor did not get in");
}

static void newNodeWithPoolCertificate_joins(void **state)
{
    (void)state;
    char peers[1024], ca[300];
    static struct tl_node joiner;
    snprintf(ca, sizeof ca, "%s/ca", w.pki);
    peers_list(peers, sizeof peers, 5, w.base + 5);
    node_init(&joiner, 5, w.base + 5, peers, true, ca, 5);
    tl_node_spawn(&joiner);
    char out[4096], args[128];
    snprintf(args, sizeof args, "node add 5 --address 127.0.0.1:%d", cluster_port(w.base + 5));
    assert_int_equal(tl_pchatctl(&w.nodes[0], out, sizeof out, args), 0);
    uint64_t t0 = pc_mono_ms();
    wait_voters(&w.nodes[0], NODES + 1, 30000);
    tl_node_wait_ready(&joiner, 15000);
    wait_voters(&joiner, NODES + 1, 15000);
    fprintf(stderr, "  node 5 joined over mutual TLS: a voter of every group after %llu ms\n",
            (unsigned long long)(pc_mono_ms() - t0));
    /* It serves: a post through it reaches node 2. */
    struct tl_client *a = tl_client_new(joiner.sip_port, "alice@example.test");
    struct tl_client *b = tl_client_new(w.nodes[1].sip_port, "bob@example.test");
    pcc_event_free(tl_join(a, w.lobby));
    pcc_event_free(tl_join(b, w.lobby));
    assert_int_equal(tl_post(a, w.lobby, "from the new node"), 200);
    struct pcc_event *ev = tl_wait_chat(b, w.lobby, "from the new node", 5000);
    assert_non_null(ev);
    pcc_event_free(ev);
    tl_client_close(a);
    tl_client_close(b);
    assert_int_equal(refused(&joiner, "tls") + refused(&joiner, "identity"), 0);
    /* Leave the pool as it was. */
    tl_node_stop(&joiner);
    assert_int_equal(tl_pchatctl(&w.nodes[0], out, sizeof out, "node remove 5"), 0);
    wait_voters(&w.nodes[0], NODES, 30000);
    tl_node_cleanup(&joiner);
}

int main(void)
{
    /* This suite sets up its own certificates, good and bad. */
    unsetenv("PCHAT_TEST_CLUSTER_TLS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tlsPool_electsPostsAndReplicates),
        cmocka_unit_test(nodeWithoutCertificate_isRefused_andCannotJoin),
        cmocka_unit_test(certificateOfAnotherCa_isRefused),
        cmocka_unit_test(unknownNodeOfThePoolCa_isRefused),
        cmocka_unit_test(certificateOfAnotherNode_isRefused),
        cmocka_unit_test(newNodeWithPoolCertificate_joins),
    };
    return cmocka_run_group_tests_name("cluster_tls", tests, setup, teardown);
}
