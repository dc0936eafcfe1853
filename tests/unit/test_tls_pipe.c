/* Unit tests for common/pc_tls_pipe: two pipes on one loop, a server and a client over
 * loopback TCP, with a test CA. Messages before the bridge, early bytes first, megabytes
 * both ways with one side not reading (back-pressure), the ends (consumer closes, peer
 * closes, close in the message stage), and a failed handshake. Every test ends with the
 * loop empty: nothing leaked or left open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_tls_pipe.h"
#include "tests/lib/tl_certs.h"

static struct {
    uv_loop_t loop;
    char dir[256];
    SSL_CTX *server_ctx, *client_ctx, *stranger_ctx;
    int port;
} w;

/* One end: the TLS pipe in its message stage, then the consumer of its bridge. */
struct end {
    struct pc_tls_pipe *tp;
    bool handshaken;
    int error;          /* status of the error callback, 0 if none */
    char why[256];
    char msg[64];       /* message-stage plaintext */
    size_t msg_len;
    bool released;      /* closed callback fired */
    char closed_why[256];
    /* bridge stage */
    uv_pipe_t consumer;
    bool bridged, consumer_closed, eof;
    uint8_t *in;        /* what the consumer read */
    size_t in_len, in_cap;
    bool reading;
    int write_status;   /* last consumer write's status */
    unsigned writes_pending;
};

static struct end server, client;
static uv_tcp_t listener;
static uv_connect_t connect_req;

static uv_timer_t tick; /* keeps UV_RUN_ONCE returning while a test waits */

static void tickCb(uv_timer_t *t)
{
    (void)t;
}

static bool runUntil(bool (*pred)(void), unsigned ms)
{
    uv_update_time(&w.loop);
    uint64_t end = uv_now(&w.loop) + ms;
    while (!pred() && uv_now(&w.loop) < end)
        uv_run(&w.loop, UV_RUN_ONCE);
    return pred();
}

/* ---- callbacks --------------------------------------------------------------------------- */

static void onHandshake(struct pc_tls_pipe *tp, void *arg)
{
    (void)tp;
    ((struct end *)arg)->handshaken = true;
}

static void onData(struct pc_tls_pipe *tp, void *arg, const void *p, size_t len)
{
    struct end *e = arg;
    (void)tp;
    assert_true(e->msg_len + len <= sizeof e->msg);
    memcpy(e->msg + e->msg_len, p, len);
    e->msg_len += len;
}

static void onError(struct pc_tls_pipe *tp, void *arg, int status, const char *why)
{
    struct end *e = arg;
    (void)tp;
    e->error = status;
    snprintf(e->why, sizeof e->why, "%s", why);
}

static void onClosed(void *arg, const char *why)
{
    struct end *e = arg;
    assert_false(e->released); /* exactly once */
    e->released = true;
    snprintf(e->closed_why, sizeof e->closed_why, "%s", why != NULL ? why : "");
}

static void newEnd(struct end *e, bool is_server, SSL_CTX *ctx)
{
    memset(e, 0, sizeof *e);
    struct pc_tls_pipe_cbs cbs = {.arg = e, .handshake = onHandshake, .data = onData,
                                  .error = onError, .closed = onClosed};
    assert_int_equal(pc_tls_pipe_new(&w.loop, ctx, is_server, &cbs, &e->tp), 0);
}

static void onConnection(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    newEnd(&server, true, w.server_ctx);
    assert_int_equal(uv_accept(l, (uv_stream_t *)pc_tls_pipe_tcp(server.tp)), 0);
    assert_int_equal(pc_tls_pipe_start(server.tp), 0);
}

static void onConnect(uv_connect_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
    assert_int_equal(pc_tls_pipe_start(client.tp), 0);
}

static bool bothHandshaken(void)
{
    return (server.handshaken && client.handshaken) || server.error || client.error;
}

/* A connection between a fresh server end and a client end using client_ctx. */
static void connectPair(SSL_CTX *client_ctx)
{
    memset(&server, 0, sizeof server);
    newEnd(&client, false, client_ctx);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", w.port, &sa);
    assert_int_equal(uv_tcp_connect(&connect_req, pc_tls_pipe_tcp(client.tp),
                                    (struct sockaddr *)&sa, onConnect), 0);
    assert_true(runUntil(bothHandshaken, 3000));
}

/* ---- the consumer side of a bridge --------------------------------------------------------- */

static void consumerAlloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct end *e = h->data;
    (void)suggested;
    if (e->in_cap - e->in_len < 65536) {
        e->in_cap = e->in_cap * 2 + 65536;
        e->in = pc_realloc(e->in, e->in_cap);
    }
    *buf = uv_buf_init((char *)e->in + e->in_len, (unsigned)(e->in_cap - e->in_len));
}

static void consumerRead(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct end *e = s->data;
    (void)buf;
    if (nread > 0)
        e->in_len += (size_t)nread;
    else if (nread < 0) {
        e->eof = true;
        uv_read_stop(s);
    }
}

static void bridge(struct end *e, const void *early, size_t len)
{
    int fd = -1;
    assert_int_equal(pc_tls_pipe_bridge(e->tp, early, len, onClosed, e, &fd), 0);
    assert_true(fd >= 0);
    uv_pipe_init(&w.loop, &e->consumer, 0);
    e->consumer.data = e;
    assert_int_equal(uv_pipe_open(&e->consumer, fd), 0);
    e->bridged = true;
}

static void startReading(struct end *e)
{
    e->reading = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&e->consumer, consumerAlloc, consumerRead), 0);
}

struct cwrite {
    uv_write_t req;
    struct end *e;
    char data[];
};

static void consumerWritten(uv_write_t *req, int status)
{
    struct cwrite *c = (struct cwrite *)req;
    c->e->write_status = status;
    c->e->writes_pending--;
    pc_free(c);
}

static void consumerWrite(struct end *e, const void *p, size_t len)
{
    struct cwrite *c = pc_malloc(sizeof *c + len);
    c->e = e;
    memcpy(c->data, p, len);
    uv_buf_t b = uv_buf_init(c->data, (unsigned)len);
    e->writes_pending++;
    int rc = uv_write(&c->req, (uv_stream_t *)&e->consumer, &b, 1, consumerWritten);
    if (rc != 0) { /* EPIPE at once: the bridge is gone */
        e->write_status = rc;
        e->writes_pending--;
        pc_free(c);
    }
}

static void consumerClosedCb(uv_handle_t *h)
{
    ((struct end *)h->data)->consumer_closed = true;
}

static bool bothReleased(void)
{
    return server.released && client.released && (!server.bridged || server.consumer_closed) &&
           (!client.bridged || client.consumer_closed);
}

/* Closes whatever the test left open and checks that the loop is empty. */
static void finish(void)
{
    if (server.bridged && !uv_is_closing((uv_handle_t *)&server.consumer))
        uv_close((uv_handle_t *)&server.consumer, consumerClosedCb);
    if (client.bridged && !uv_is_closing((uv_handle_t *)&client.consumer))
        uv_close((uv_handle_t *)&client.consumer, consumerClosedCb);
    assert_true(runUntil(bothReleased, 3000));
    pc_free(server.in);
    pc_free(client.in);
    server.in = client.in = NULL;
}

/* ---- set-up ------------------------------------------------------------------------------------ */

static SSL_CTX *context(const char *ca, const char *name)
{
    char path[400];
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    assert_non_null(ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    snprintf(path, sizeof path, "%s/%s", w.dir, ca);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, path, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    snprintf(path, sizeof path, "%s/%s.pem", w.dir, name);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, path), 1);
    snprintf(path, sizeof path, "%s/%s.key", w.dir, name);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
    return ctx;
}

static int setup(void **state)
{
    (void)state;
    pc_log_init("test", PC_LOG_WARN);
    snprintf(w.dir, sizeof w.dir, "/tmp/test_tls_pipe.XXXXXX");
    if (mkdtemp(w.dir) == NULL)
        return -1;
    char cert[400], key[400];
    snprintf(cert, sizeof cert, "%s/ca.pem", w.dir);
    struct tl_ca *ca = tl_ca_new("test CA", cert);
    const char *names[] = {"server", "client"};
    for (int i = 0; i < 2; i++) {
        snprintf(cert, sizeof cert, "%s/%s.pem", w.dir, names[i]);
        snprintf(key, sizeof key, "%s/%s.key", w.dir, names[i]);
        tl_cert_issue(ca, names[i], cert, key);
    }
    tl_ca_free(ca);
    snprintf(cert, sizeof cert, "%s/other.pem", w.dir);
    ca = tl_ca_new("another CA", cert);
    snprintf(cert, sizeof cert, "%s/stranger.pem", w.dir);
    snprintf(key, sizeof key, "%s/stranger.key", w.dir);
    tl_cert_issue(ca, "stranger", cert, key);
    tl_ca_free(ca);
    w.server_ctx = context("ca.pem", "server");
    w.client_ctx = context("ca.pem", "client");
    w.stranger_ctx = context("other.pem", "stranger");
    signal(SIGPIPE, SIG_IGN); /* a consumer writing to a finished bridge gets EPIPE */
    uv_loop_init(&w.loop);
    uv_timer_init(&w.loop, &tick);
    uv_timer_start(&tick, tickCb, 5, 5);
    w.port = 20000 + (getpid() % 300) * 40 + 35; /* beside test_raft_mux's ports */
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", w.port, &sa);
    uv_tcp_init(&w.loop, &listener);
    if (uv_tcp_bind(&listener, (struct sockaddr *)&sa, 0) != 0 ||
        uv_listen((uv_stream_t *)&listener, 16, onConnection) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&listener, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w.loop), 0);
    SSL_CTX_free(w.server_ctx);
    SSL_CTX_free(w.client_ctx);
    SSL_CTX_free(w.stranger_ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", w.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ------------------------------------------------------------------------------------ */

static bool serverHasHello(void)
{
    return server.msg_len >= 5 || server.error != 0;
}

static bool clientHasVerdict(void)
{
    return client.msg_len >= 1 || client.error != 0;
}

static size_t want_server, want_client;

static bool consumersHaveAll(void)
{
    return server.in_len >= want_server && client.in_len >= want_client;
}

/* The cluster port's sequence: hello, verdict, bridge; bytes that follow a message in the
 * same read reach the consumer first. */
static void messagesThenBridge_earlyBytesFirst(void **state)
{
    (void)state;
    connectPair(w.client_ctx);
    assert_int_equal(server.error, 0);
    assert_int_equal(client.error, 0);
    /* Message stage writes are refused once bridged, and before the handshake. */
    assert_int_equal(pc_tls_pipe_write(client.tp, "hello+early", 11), 0);
    assert_true(runUntil(serverHasHello, 2000));
    assert_int_equal(server.msg_len, 11);
    assert_memory_equal(server.msg, "hello", 5);
    assert_int_equal(pc_tls_pipe_write(server.tp, "K", 1), 0);
    bridge(&server, server.msg + 5, 6); /* "+early" goes first */
    assert_int_equal(pc_tls_pipe_write(server.tp, "x", 1), PC_EIO);
    assert_true(runUntil(clientHasVerdict, 2000));
    assert_memory_equal(client.msg, "K", 1);
    bridge(&client, NULL, 0);
    startReading(&server);
    startReading(&client);
    consumerWrite(&client, "-then", 5);
    consumerWrite(&server, "reply", 5);
    want_server = 11;
    want_client = 5;
    assert_true(runUntil(consumersHaveAll, 2000));
    assert_memory_equal(server.in, "+early-then", 11);
    assert_memory_equal(client.in, "reply", 5);
    finish();
    assert_string_equal(server.closed_why, "");
}

/* Megabytes both ways while the server's consumer does not read: the pipe stops reading the
 * peer instead of buffering without bound, and everything arrives, in order, once it reads. */
static void bulkBothWays_withBackPressure(void **state)
{
    (void)state;
    connectPair(w.client_ctx);
    bridge(&server, NULL, 0);
    bridge(&client, NULL, 0);
    enum { MB = 1 << 20, TO_SERVER = 8 * MB, TO_CLIENT = 3 * MB, PIECE = 256 * 1024 };
    uint8_t *piece = pc_malloc(PIECE);
    for (size_t off = 0; off < TO_SERVER; off += PIECE) {
        for (size_t i = 0; i < PIECE; i++)
            piece[i] = (uint8_t)((off + i) * 7 + (off + i) / 4093);
        consumerWrite(&client, piece, PIECE);
    }
    for (size_t off = 0; off < TO_CLIENT; off += PIECE) {
        memset(piece, (int)(off / PIECE), PIECE);
        consumerWrite(&server, piece, PIECE);
    }
    startReading(&client);
    want_server = 0;
    want_client = TO_CLIENT;
    assert_true(runUntil(consumersHaveAll, 10000));
    /* The server's consumer has not read: the client's writes must be held back, not all
     * taken into memory on the way. */
    runUntil(consumersHaveAll, 300);
    assert_true(client.writes_pending > 0);
    startReading(&server);
    want_server = TO_SERVER;
    assert_true(runUntil(consumersHaveAll, 20000));
    assert_int_equal(server.in_len, TO_SERVER);
    for (size_t i = 0; i < TO_SERVER; i++)
        if (server.in[i] != (uint8_t)(i * 7 + i / 4093))
            fail_msg("byte %zu differs", i);
    for (size_t i = 0; i < TO_CLIENT; i++)
        assert_int_equal(client.in[i], (uint8_t)(i / PIECE));
    pc_free(piece);
    finish();
}

static bool serverEof(void)
{
    return server.eof;
}

static bool clientEof(void)
{
    return client.eof;
}

static bool clientWriteFailed(void)
{
    return client.writes_pending == 0 && client.write_status != 0;
}

static bool bothFailed(void)
{
    return server.error != 0 && client.error != 0;
}

/* The client's consumer writes, then closes: the server's consumer reads it all, then EOF
 * (close_notify, then the TCP shutdown). */
static void consumerClose_deliversThenEof(void **state)
{
    (void)state;
    connectPair(w.client_ctx);
    bridge(&server, NULL, 0);
    bridge(&client, NULL, 0);
    startReading(&server);
    consumerWrite(&client, "last words", 10);
    uv_close((uv_handle_t *)&client.consumer, consumerClosedCb);
    assert_true(runUntil(serverEof, 3000));
    assert_int_equal(server.in_len, 10);
    assert_memory_equal(server.in, "last words", 10);
    finish();
    assert_string_equal(client.closed_why, "");
}

/* The peer goes away (its pipe closed in the message stage): the other bridge's consumer
 * reads EOF, and its writes fail (how raft's outbound streams, which never read, notice). */
static void peerGone_consumerSeesEofAndWritesFail(void **state)
{
    (void)state;
    connectPair(w.client_ctx);
    bridge(&client, NULL, 0);
    startReading(&client);
    consumerWrite(&client, "sent before the end", 19);
    pc_tls_pipe_close(server.tp, true);
    assert_true(runUntil(clientEof, 3000));
    consumerWrite(&client, "anyone?", 7);
    assert_true(runUntil(clientWriteFailed, 3000));
    finish();
}

/* A client of another CA: both ends report a failed handshake with a reason, and close. */
static void strangerHandshake_failsWithReason(void **state)
{
    (void)state;
    connectPair(w.stranger_ctx);
    /* The client rejects the server's certificate (not of its CA); the server hears the
     * alert. */
    assert_true(runUntil(bothFailed, 3000));
    assert_int_equal(client.error, PC_EPROTO);
    assert_non_null(strstr(client.why, "certificate"));
    assert_int_equal(server.error, PC_EPROTO);
    assert_non_null(strstr(server.why, "alert"));
    assert_false(server.handshaken);
    pc_tls_pipe_close(client.tp, false);
    pc_tls_pipe_close(server.tp, false);
    pc_tls_pipe_close(server.tp, false); /* twice is harmless */
    finish();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(messagesThenBridge_earlyBytesFirst),
        cmocka_unit_test(bulkBothWays_withBackPressure),
        cmocka_unit_test(consumerClose_deliversThenEof),
        cmocka_unit_test(peerGone_consumerSeesEofAndWritesFail),
        cmocka_unit_test(strangerHandshake_failsWithReason),
    };
    return cmocka_run_group_tests_name("tls_pipe", tests, setup, teardown);
}
