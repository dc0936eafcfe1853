/* HTTPS with OpenSSL in front of libmicrohttpd (whose own TLS is GnuTLS): each accepted TLS
 * connection is a TLS pipe (common/pc_tls_pipe.h) bridged at once: the plaintext end of its
 * socketpair goes to the HTTP server as a plain connection. The same certificates and the
 * same OpenSSL as SIP; HTTP itself never sees TLS. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_tls_pipe.h"
#include "web/web_int.h"

/* One client connection; the TLS work is the pipe's (common/pc_tls_pipe.c). */
struct tls_link {
    struct https_bridge *b; /* NULL once the bridge stopped */
    struct tls_link *next, **prev;
    struct pc_tls_pipe *tp;
};

struct https_bridge {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *ctx;
    struct http_server *http;
    struct tls_link *links;
};

static void unlink_link(struct tls_link *l)
{
    *l->prev = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    l->b = NULL;
}

static void link_closed(void *arg, const char *why)
{
    struct tls_link *l = arg;
    if (why != NULL)
        pc_info("https: TLS connection ended: %s", why);
    if (l->b != NULL)
        unlink_link(l);
    pc_free(l);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct https_bridge *b = server->data;
    if (status != 0)
        return;
    struct tls_link *l = pc_calloc(1, sizeof *l);
    struct pc_tls_pipe_cbs cbs = {.arg = l, .closed = link_closed};
    if (pc_tls_pipe_new(b->loop, b->ctx, true, &cbs, &l->tp) != 0) {
        pc_free(l);
        return;
    }
    uv_tcp_t *tcp = pc_tls_pipe_tcp(l->tp);
    if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
        pc_tls_pipe_close(l->tp, false);
        return;
    }
    /* HTTP gets the connection at once, so its connection limit and idle timeout cover the
     * handshake too; the pipe holds HTTP's answer until the handshake is done. */
    int fd;
    if (pc_tls_pipe_bridge(l->tp, NULL, 0, link_closed, l, &fd) != 0) {
        pc_warn("https: no socketpair for a new connection: %s", strerror(errno));
        pc_tls_pipe_close(l->tp, false);
        return;
    }
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    uv_tcp_getpeername(tcp, (struct sockaddr *)&peer, &plen);
    if (http_server_add_connection(b->http, fd, (struct sockaddr *)&peer, (socklen_t)plen) != 0) {
        pc_tls_pipe_close(l->tp, false); /* refused (connection limit); MHD closed fd itself */
        return;
    }
    l->b = b;
    l->next = b->links;
    if (b->links != NULL)
        b->links->prev = &l->next;
    b->links = l;
    l->prev = &b->links;
    if (pc_tls_pipe_start(l->tp) != 0)
        pc_tls_pipe_close(l->tp, false);
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
    /* The links outlive b by a loop pass (their handles close later): detach them first. */
    while (b->links != NULL) {
        struct tls_link *l = b->links;
        unlink_link(l);
        pc_tls_pipe_close(l->tp, true);
    }
    uv_close((uv_handle_t *)&b->listener, listener_closed);
}
