/* HTTPS with OpenSSL in front of libmicrohttpd (whose own TLS is GnuTLS): each accepted TLS
 * connection gets a socketpair; one end goes to the HTTP server as a plain connection, the
 * other is a uv pipe. Ciphertext from the client is decrypted (memory BIOs, as SIP over TLS
 * does) and written to the pipe; what the server answers is encrypted back to the client.
 * The same certificates and the same OpenSSL as SIP; HTTP itself never sees TLS. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "web/web_int.h"

enum { CHUNK = 16 * 1024, HIGH_WATER = 1 << 20 };

struct https_bridge {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *ctx;
    struct http_server *http;
    struct tls_link *links;
};

struct tls_link {
    struct https_bridge *b;
    struct tls_link *next, **prev;
    uv_tcp_t tcp;   /* the client, ciphertext */
    uv_pipe_t pipe; /* our end of the socketpair, plaintext */
    SSL *ssl;
    BIO *rbio, *wbio;
    uv_shutdown_t shut;
    int open_handles;
    bool closing;
    bool pipe_done; /* the HTTP server ended the connection: finish sending, then close */
};

struct wr {
    uv_write_t req;
    struct tls_link *l;
    uv_buf_t buf;
};

static void link_close(struct tls_link *l);

static void handle_closed(uv_handle_t *h)
{
    struct tls_link *l = h->data;
    if (--l->open_handles == 0) {
        SSL_free(l->ssl);
        pc_free(l);
    }
}

static void link_close(struct tls_link *l)
{
    if (l->closing)
        return;
    l->closing = true;
    *l->prev = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    uv_close((uv_handle_t *)&l->tcp, handle_closed);
    uv_close((uv_handle_t *)&l->pipe, handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    buf->base = pc_malloc(CHUNK);
    buf->len = CHUNK;
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void written(uv_write_t *req, int status)
{
    struct wr *w = (struct wr *)req;
    struct tls_link *l = w->l;
    uv_stream_t *to = req->handle;
    pc_free(w->buf.base);
    pc_free(w);
    if (status != 0) {
        link_close(l);
        return;
    }
    /* A side that stopped reading because the other was full may go on. */
    if (l->closing)
        return;
    if (to == (uv_stream_t *)&l->pipe && l->pipe.write_queue_size < HIGH_WATER)
        uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, on_tcp_read);
    if (to == (uv_stream_t *)&l->tcp && !l->pipe_done &&
        l->tcp.write_queue_size < HIGH_WATER)
        uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, on_pipe_read);
}

static void send_to(struct tls_link *l, uv_stream_t *s, const char *p, size_t n)
{
    struct wr *w = pc_malloc(sizeof *w);
    w->l = l;
    w->buf = uv_buf_init(pc_memdup(p, n), (unsigned)n);
    if (uv_write(&w->req, s, &w->buf, 1, written) != 0) {
        pc_free(w->buf.base);
        pc_free(w);
        link_close(l);
    }
}

/* Whatever OpenSSL produced (handshake records, encrypted answers) goes to the client. */
static void flush_tls(struct tls_link *l)
{
    char buf[CHUNK];
    int n;
    while ((n = BIO_read(l->wbio, buf, sizeof buf)) > 0)
        send_to(l, (uv_stream_t *)&l->tcp, buf, (size_t)n);
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tls_link *l = s->data;
    if (nread < 0) {
        pc_free(buf->base);
        link_close(l);
        return;
    }
    if (nread > 0)
        BIO_write(l->rbio, buf->base, (int)nread);
    pc_free(buf->base);
    char plain[CHUNK];
    for (;;) {
        int n = SSL_read(l->ssl, plain, sizeof plain);
        if (n > 0) {
            send_to(l, (uv_stream_t *)&l->pipe, plain, (size_t)n);
            continue;
        }
        int e = SSL_get_error(l->ssl, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            char why[200];
            ERR_error_string_n(ERR_get_error(), why, sizeof why);
            ERR_clear_error();
            if (e != SSL_ERROR_ZERO_RETURN)
                pc_info("https: TLS connection ended: %s", why);
            flush_tls(l);
            link_close(l);
            return;
        }
        break;
    }
    flush_tls(l);
    if (l->pipe.write_queue_size >= HIGH_WATER)
        uv_read_stop(s); /* the HTTP server is behind: stop reading the client */
}

static void tcp_shut_down(uv_shutdown_t *req, int status)
{
    (void)status;
    link_close(req->data);
}

static void on_pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tls_link *l = s->data;
    if (nread < 0) { /* the HTTP server closed the connection: send what is queued first */
        pc_free(buf->base);
        l->pipe_done = true;
        uv_read_stop(s);
        SSL_shutdown(l->ssl);
        flush_tls(l);
        if (uv_shutdown(&l->shut, (uv_stream_t *)&l->tcp, tcp_shut_down) != 0)
            link_close(l);
        return;
    }
    if (nread > 0 && SSL_write(l->ssl, buf->base, (int)nread) <= 0) {
        pc_free(buf->base);
        link_close(l);
        return;
    }
    pc_free(buf->base);
    flush_tls(l);
    if (l->tcp.write_queue_size >= HIGH_WATER)
        uv_read_stop(s); /* the client reads slowly: leave the answer in the HTTP server */
}

static void on_connection(uv_stream_t *server, int status)
{
    struct https_bridge *b = server->data;
    if (status != 0)
        return;
    struct tls_link *l = pc_calloc(1, sizeof *l);
    l->b = b;
    uv_tcp_init(b->loop, &l->tcp);
    l->tcp.data = l;
    l->shut.data = l;
    l->open_handles = 1;
    if (uv_accept(server, (uv_stream_t *)&l->tcp) != 0) {
        uv_close((uv_handle_t *)&l->tcp, handle_closed);
        return;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        pc_warn("https: no socketpair for a new connection: %s", strerror(errno));
        uv_close((uv_handle_t *)&l->tcp, handle_closed);
        return;
    }
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&peer, &plen);
    if (http_server_add_connection(b->http, sv[1], (struct sockaddr *)&peer, (socklen_t)plen) != 0) {
        close(sv[0]); /* refused (connection limit); MHD closed sv[1] itself */
        uv_close((uv_handle_t *)&l->tcp, handle_closed);
        return;
    }
    uv_pipe_init(b->loop, &l->pipe, 0);
    l->pipe.data = l;
    l->open_handles = 2;
    uv_pipe_open(&l->pipe, sv[0]);
    l->ssl = SSL_new(b->ctx);
    l->rbio = BIO_new(BIO_s_mem());
    l->wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(l->ssl, l->rbio, l->wbio);
    SSL_set_accept_state(l->ssl);
    l->next = b->links;
    if (b->links != NULL)
        b->links->prev = &l->next;
    b->links = l;
    l->prev = &b->links;
    uv_read_start((uv_stream_t *)&l->tcp, alloc_cb, on_tcp_read);
    uv_read_start((uv_stream_t *)&l->pipe, alloc_cb, on_pipe_read);
}

static void listener_closed(uv_handle_t *h)
{
    struct https_bridge *b = h->data;
    SSL_CTX_free(b->ctx);
    pc_free(b);
}

int https_bridge_start(uv_loop_t *loop, const struct web_config *cfg, struct http_server *http,
                       struct https_bridge **out, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context for HTTPS");
        return PC_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        ERR_clear_error();
        snprintf(err, errlen, "[web] tls_cert %s / tls_key %s: %s (PEM files that belong together?)",
                 cfg->tls_cert, cfg->tls_key, why);
        SSL_CTX_free(ctx);
        return PC_EINVAL;
    }
    struct https_bridge *b = pc_calloc(1, sizeof *b);
    b->loop = loop;
    b->ctx = ctx;
    b->http = http;
    struct sockaddr_in sa;
    uv_ip4_addr(cfg->listen, cfg->https_port, &sa);
    uv_tcp_init(loop, &b->listener);
    b->listener.data = b;
    int rc = uv_tcp_bind(&b->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&b->listener, 128, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen for HTTPS on %s:%d: %s (in use? set [web] https_port)",
                 cfg->listen, cfg->https_port, uv_strerror(rc));
        uv_close((uv_handle_t *)&b->listener, listener_closed);
        return PC_EIO;
    }
    pc_notice("web: https://%s:%d/ (OpenSSL)", cfg->listen, cfg->https_port);
    *out = b;
    return 0;
}

void https_bridge_stop(struct https_bridge *b)
{
    while (b->links != NULL)
        link_close(b->links);
    uv_close((uv_handle_t *)&b->listener, listener_closed);
}
