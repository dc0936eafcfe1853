/* TLS on one TCP connection for a plaintext consumer: OpenSSL works on memory BIOs, libuv
 * does every socket operation. See pc_tls_pipe.h for the two stages. */
#include "common/pc_tls_pipe.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"

enum {
    READ_CHUNK = 64 * 1024,   /* one socket read */
    PLAIN_CHUNK = 16 * 1024,  /* one SSL_read: a TLS record's worth */
    HIGH_WATER = 1 << 20,     /* bytes queued to one side before the other is not read */
    WHY_MAX = 256,
};

struct pc_tls_pipe {
    uv_loop_t *loop;
    uv_tcp_t tcp;   /* the peer: ciphertext */
    uv_pipe_t pipe; /* bridge stage: our end of the socketpair, plaintext */
    uv_shutdown_t shut;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    struct pc_tls_pipe_cbs cbs;
    int handles;           /* initialised handles not yet closed: freed at 0 */
    unsigned to_pipe;      /* writes to the consumer not completed yet */
    bool handshaken;
    bool bridged;
    bool closing;          /* handles are being closed: touch nothing but the counters */
    bool reported;         /* message stage: the error callback fired */
    bool tcp_paused;       /* tcp not read: the consumer is behind */
    bool pipe_paused;      /* pipe not read: the peer is behind */
    bool tcp_ended;        /* bridge: the peer finished; close once the consumer has it all */
    bool shutting;         /* bridge: the consumer finished; TCP shutdown under way */
    char why[WHY_MAX];     /* why the pipe ended, for the closed callback ("" = normally) */
};

struct tp_write {
    uv_write_t req;
    struct pc_tls_pipe *tp;
    char data[];
};

/* Reads are processed synchronously inside libuv's read callback, so one buffer per thread
 * serves every pipe: an idle connection costs no read buffer. */
static _Thread_local char read_buf[READ_CHUNK];
static _Thread_local char plain_buf[PLAIN_CHUNK];

void pc_tls_error(SSL *ssl, char *out, size_t cap)
{
    unsigned long e = ERR_get_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    char code[64];
    if (e != 0 && reason == NULL) {
        ERR_error_string_n(e, code, sizeof code);
        reason = code;
    }
    long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (v != X509_V_OK)
        snprintf(out, cap, "%s (certificate check: %s)", reason != NULL ? reason : "TLS error",
                 X509_verify_cert_error_string(v));
    else
        snprintf(out, cap, "%s", reason != NULL ? reason : "TLS error");
    ERR_clear_error();
}

/* ---- life cycle ---------------------------------------------------------------------------- */

static void releasedCb(uv_handle_t *h)
{
    struct pc_tls_pipe *tp = h->data;
    if (--tp->handles > 0)
        return;
    /* Every handle is closed and every write request has been given back (libuv completes
     * them before the close callback): nothing refers to tp any more. */
    void (*cb)(void *, const char *) = tp->cbs.closed;
    void *arg = tp->cbs.arg;
    char why[WHY_MAX];
    memcpy(why, tp->why, sizeof why);
    SSL_free(tp->ssl);
    pc_free(tp);
    if (cb != NULL)
        cb(arg, why[0] != '\0' ? why : NULL);
}

static void closeAll(struct pc_tls_pipe *tp, const char *why)
{
    if (tp->closing)
        return;
    tp->closing = true;
    if (why != NULL && tp->why[0] == '\0')
        snprintf(tp->why, sizeof tp->why, "%s", why);
    uv_close((uv_handle_t *)&tp->tcp, releasedCb);
    if (tp->bridged)
        uv_close((uv_handle_t *)&tp->pipe, releasedCb);
}

int pc_tls_pipe_new(uv_loop_t *loop, SSL_CTX *ctx, bool server, const struct pc_tls_pipe_cbs *cbs,
                    struct pc_tls_pipe **out)
{
    *out = NULL;
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (ssl == NULL || rbio == NULL || wbio == NULL) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        ERR_clear_error();
        return PC_ENOMEM;
    }
    SSL_set_bio(ssl, rbio, wbio);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    struct pc_tls_pipe *tp = pc_calloc(1, sizeof *tp);
    tp->loop = loop;
    tp->ssl = ssl;
    tp->rbio = rbio;
    tp->wbio = wbio;
    tp->cbs = *cbs;
    uv_tcp_init(loop, &tp->tcp);
    tp->tcp.data = tp;
    tp->handles = 1;
    *out = tp;
    return 0;
}

uv_tcp_t *pc_tls_pipe_tcp(struct pc_tls_pipe *tp)
{
    return &tp->tcp;
}

SSL *pc_tls_pipe_ssl(struct pc_tls_pipe *tp)
{
    return tp->ssl;
}

void pc_tls_pipe_close(struct pc_tls_pipe *tp, bool notify)
{
    if (tp->closing)
        return;
    if (notify && tp->handshaken) {
        /* Best effort: whatever the socket takes now; uv_close cancels the rest. */
        SSL_shutdown(tp->ssl);
        char *p;
        long n = BIO_get_mem_data(tp->wbio, &p);
        if (n > 0) {
            uv_buf_t b = uv_buf_init(p, (unsigned)n);
            (void)uv_try_write((uv_stream_t *)&tp->tcp, &b, 1);
        }
        ERR_clear_error();
    }
    closeAll(tp, NULL);
}

/* ---- writing ------------------------------------------------------------------------------- */

static void allocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void tcpReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void pipeReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void readPlain(struct pc_tls_pipe *tp);

static void writtenCb(uv_write_t *req, int status)
{
    struct tp_write *w = (struct tp_write *)req;
    struct pc_tls_pipe *tp = w->tp;
    bool to_pipe = req->handle == (uv_stream_t *)&tp->pipe;
    pc_free(w);
    if (to_pipe)
        tp->to_pipe--;
    if (tp->closing)
        return;
    if (status != 0) {
        char why[96];
        snprintf(why, sizeof why, "writing to the %s failed: %s", to_pipe ? "consumer" : "peer",
                 uv_strerror(status));
        closeAll(tp, why);
        return;
    }
    if (to_pipe) {
        if (tp->tcp_ended) {
            if (tp->to_pipe == 0)
                closeAll(tp, NULL); /* the consumer has everything the peer sent */
            return;
        }
        if (tp->tcp_paused && tp->pipe.write_queue_size < HIGH_WATER) {
            tp->tcp_paused = false;
            readPlain(tp); /* records that waited in OpenSSL's buffer go first */
            if (!tp->closing && !tp->tcp_paused)
                uv_read_start((uv_stream_t *)&tp->tcp, allocCb, tcpReadCb);
        }
    } else if (tp->pipe_paused && !tp->shutting && tp->tcp.write_queue_size < HIGH_WATER) {
        tp->pipe_paused = false;
        uv_read_start((uv_stream_t *)&tp->pipe, allocCb, pipeReadCb);
    }
}

/* Writes what the socket takes now and queues a copy of the rest (most writes complete
 * synchronously, so most bytes are never copied). Returns 0 or PC_EIO. */
static int sendTo(struct pc_tls_pipe *tp, uv_stream_t *s, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int done = uv_try_write(s, &b, 1); /* UV_EAGAIN too while earlier writes are queued */
    if (done == (int)n)
        return 0;
    if (done < 0 && done != UV_EAGAIN)
        return PC_EIO;
    if (done > 0) {
        p += done;
        n -= (size_t)done;
    }
    struct tp_write *w = pc_malloc(sizeof *w + n);
    w->tp = tp;
    memcpy(w->data, p, n);
    b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, s, &b, 1, writtenCb) != 0) {
        pc_free(w);
        return PC_EIO;
    }
    if (s == (uv_stream_t *)&tp->pipe)
        tp->to_pipe++;
    return 0;
}

/* Sends what OpenSSL produced (handshake flights, records, alerts) to the peer. */
static int flushTls(struct pc_tls_pipe *tp)
{
    char *p;
    long n = BIO_get_mem_data(tp->wbio, &p);
    if (n <= 0)
        return 0;
    int rc = sendTo(tp, (uv_stream_t *)&tp->tcp, p, (size_t)n);
    (void)BIO_reset(tp->wbio); /* a read-write memory BIO empties on reset */
    return rc;
}

int pc_tls_pipe_write(struct pc_tls_pipe *tp, const void *p, size_t len)
{
    if (tp->closing || !tp->handshaken || tp->bridged)
        return PC_EIO;
    if (len > 0 && SSL_write(tp->ssl, p, (int)len) <= 0) {
        ERR_clear_error();
        return PC_EIO;
    }
    return flushTls(tp);
}

/* ---- reading ------------------------------------------------------------------------------- */

static void allocCb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof read_buf);
}

/* The connection cannot go on: the message stage's owner hears of it (and closes); a
 * bridge closes itself. */
static void fail(struct pc_tls_pipe *tp, int status, const char *why)
{
    if (tp->closing)
        return;
    if (tp->bridged) {
        closeAll(tp, why);
        return;
    }
    uv_read_stop((uv_stream_t *)&tp->tcp);
    if (tp->reported)
        return;
    tp->reported = true;
    if (tp->cbs.error != NULL)
        tp->cbs.error(tp, tp->cbs.arg, status, why);
}

/* The peer finished (EOF or close_notify). A bridge hands the consumer what is still on its
 * way, then closes: the consumer reads EOF, and its next write fails (raft's outbound
 * streams only write, so that is how they notice). */
static void peerEnded(struct pc_tls_pipe *tp, int status, const char *why)
{
    if (!tp->bridged) {
        fail(tp, status, why);
        return;
    }
    uv_read_stop((uv_stream_t *)&tp->tcp);
    tp->tcp_ended = true;
    if (status != PC_ECLOSED && tp->why[0] == '\0')
        snprintf(tp->why, sizeof tp->why, "%s", why);
    if (tp->to_pipe == 0)
        closeAll(tp, NULL);
}

static void startPipe(struct pc_tls_pipe *tp)
{
    if (uv_read_start((uv_stream_t *)&tp->pipe, allocCb, pipeReadCb) != 0)
        closeAll(tp, "cannot read from the consumer");
}

/* Decrypts what OpenSSL holds: to the data callback (message stage) or the consumer. */
static void readPlain(struct pc_tls_pipe *tp)
{
    while (!tp->closing) {
        if (tp->bridged && tp->pipe.write_queue_size >= HIGH_WATER) {
            /* The consumer is behind: leave the rest in the socket (and OpenSSL). */
            uv_read_stop((uv_stream_t *)&tp->tcp);
            tp->tcp_paused = true;
            break;
        }
        int n = SSL_read(tp->ssl, plain_buf, sizeof plain_buf);
        if (n > 0) {
            if (!tp->bridged) {
                if (tp->cbs.data != NULL)
                    tp->cbs.data(tp, tp->cbs.arg, plain_buf, (size_t)n);
            } else if (sendTo(tp, (uv_stream_t *)&tp->pipe, plain_buf, (size_t)n) != 0) {
                closeAll(tp, "writing to the consumer failed");
            }
            continue;
        }
        int e = SSL_get_error(tp->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            ERR_clear_error();
            peerEnded(tp, PC_ECLOSED, "the peer closed the TLS session");
            return;
        }
        char why[WHY_MAX];
        pc_tls_error(tp->ssl, why, sizeof why);
        flushTls(tp); /* an alert telling the peer why */
        fail(tp, PC_EPROTO, why);
        return;
    }
    if (!tp->closing && flushTls(tp) != 0)
        fail(tp, PC_EIO, "writing to the peer failed");
}

static void tcpReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pc_tls_pipe *tp = s->data;
    if (nread == 0 || tp->closing)
        return;
    if (nread < 0) {
        peerEnded(tp, nread == UV_EOF ? PC_ECLOSED : PC_EIO,
                  nread == UV_EOF ? "the peer closed the connection" : uv_strerror((int)nread));
        return;
    }
    BIO_write(tp->rbio, buf->base, (int)nread);
    if (!tp->handshaken) {
        int r = SSL_do_handshake(tp->ssl);
        if (r != 1) {
            int e = SSL_get_error(tp->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (flushTls(tp) != 0)
                    fail(tp, PC_EIO, "writing to the peer failed");
                return;
            }
            char why[WHY_MAX];
            pc_tls_error(tp->ssl, why, sizeof why);
            flushTls(tp);
            fail(tp, PC_EPROTO, why);
            return;
        }
        tp->handshaken = true;
        if (flushTls(tp) != 0) {
            fail(tp, PC_EIO, "writing to the peer failed");
            return;
        }
        if (tp->bridged) {
            startPipe(tp);
        } else if (tp->cbs.handshake != NULL) {
            tp->cbs.handshake(tp, tp->cbs.arg);
        }
    }
    readPlain(tp); /* a TLS 1.3 client may send data in the flight that ends the handshake */
}

/* The consumer closed its end: flush, say close_notify, shut the connection down. */
static void shutDownCb(uv_shutdown_t *req, int status)
{
    (void)status;
    closeAll(req->data, NULL);
}

static void consumerEnded(struct pc_tls_pipe *tp)
{
    uv_read_stop((uv_stream_t *)&tp->pipe);
    tp->shutting = true;
    if (tp->handshaken) {
        SSL_shutdown(tp->ssl);
        ERR_clear_error();
        if (flushTls(tp) != 0) {
            closeAll(tp, NULL);
            return;
        }
    }
    tp->shut.data = tp;
    if (uv_shutdown(&tp->shut, (uv_stream_t *)&tp->tcp, shutDownCb) != 0)
        closeAll(tp, NULL);
}

static void pipeReadCb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct pc_tls_pipe *tp = s->data;
    if (nread == 0 || tp->closing)
        return;
    if (nread < 0) {
        consumerEnded(tp);
        return;
    }
    /* A memory BIO never fills, so SSL_write takes everything at once. */
    if (SSL_write(tp->ssl, buf->base, (int)nread) <= 0) {
        char why[WHY_MAX];
        pc_tls_error(tp->ssl, why, sizeof why);
        closeAll(tp, why);
        return;
    }
    if (flushTls(tp) != 0) {
        closeAll(tp, "writing to the peer failed");
        return;
    }
    if (tp->tcp.write_queue_size >= HIGH_WATER) {
        /* The peer reads slowly: leave the consumer's bytes in the socketpair. */
        uv_read_stop(s);
        tp->pipe_paused = true;
    }
}

/* ---- stages -------------------------------------------------------------------------------- */

int pc_tls_pipe_start(struct pc_tls_pipe *tp)
{
    if (!SSL_is_server(tp->ssl)) {
        int r = SSL_do_handshake(tp->ssl); /* writes the ClientHello */
        if (r != 1 && SSL_get_error(tp->ssl, r) != SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return PC_EIO;
        }
        if (flushTls(tp) != 0)
            return PC_EIO;
    }
    return uv_read_start((uv_stream_t *)&tp->tcp, allocCb, tcpReadCb) == 0 ? 0 : PC_EIO;
}

int pc_tls_pipe_bridge(struct pc_tls_pipe *tp, const void *early, size_t early_len,
                       void (*closed)(void *arg, const char *why), void *arg, int *consumer_fd)
{
    int sv[2];
    if (tp->closing || tp->bridged)
        return PC_EIO;
    /* Our end is made non-blocking by uv_pipe_open; the consumer's stays as the consumer
     * wants it (libuv and libmicrohttpd both set their own mode). */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return PC_EIO;
    uv_pipe_init(tp->loop, &tp->pipe, 0);
    tp->pipe.data = tp;
    tp->handles++;
    if (uv_pipe_open(&tp->pipe, sv[0]) != 0) {
        close(sv[0]);
        close(sv[1]);
        uv_close((uv_handle_t *)&tp->pipe, releasedCb); /* tcp keeps tp alive */
        return PC_EIO;
    }
    tp->bridged = true;
    tp->cbs = (struct pc_tls_pipe_cbs){.arg = arg, .closed = closed};
    *consumer_fd = sv[1];
    if (sendTo(tp, (uv_stream_t *)&tp->pipe, early, early_len) != 0) {
        /* Cannot happen on a fresh socketpair; if it did, the consumer reads EOF. */
        closeAll(tp, "writing to the consumer failed");
        return 0;
    }
    if (tp->handshaken)
        startPipe(tp);
    return 0;
}
