/* SIP over TLS (port 5061 by convention), OpenSSL driven through memory BIOs so that
 * libuv keeps doing all socket I/O: ciphertext read from the socket is fed to the SSL
 * object and the plaintext joins the connection's input buffer; plaintext to send is
 * encrypted into one buffer per flush. Everything above (framing, dispatch, dialogs) is
 * the same for TCP and TLS, and a client's traffic always goes down its own connection. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "chat/sip/sip_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"

enum { TLS_CHUNK = 16 * 1024 };

static void last_error(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, cap, "unknown TLS error");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
}

int sip_tls_server_init(struct sip_server *srv, const char *cert, const char *key, char *err,
                        size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        return PC_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Memory BIOs hand over whatever SSL_write produced: a partial write never happens. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    char why[256];
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "[sip] tls_cert = %s: %s (a PEM certificate chain is expected)",
                 cert, why);
        SSL_CTX_free(ctx);
        return PC_EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        last_error(why, sizeof why);
        snprintf(err, errlen, "[sip] tls_key = %s: %s (the PEM key of tls_cert is expected)",
                 key, why);
        SSL_CTX_free(ctx);
        return PC_EINVAL;
    }
    srv->tls_ctx = ctx;
    return 0;
}

void sip_tls_server_free(struct sip_server *srv)
{
    SSL_CTX_free(srv->tls_ctx);
    srv->tls_ctx = NULL;
}

int sip_tls_conn_start(struct sip_conn *c)
{
    SSL *ssl = SSL_new(c->srv->tls_ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    if (ssl == NULL || rbio == NULL || wbio == NULL) {
        SSL_free(ssl);
        BIO_free(rbio);
        BIO_free(wbio);
        return PC_ENOMEM;
    }
    SSL_set_bio(ssl, rbio, wbio);
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    return 0;
}

void sip_tls_conn_free(struct sip_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
}

bool sip_tls_ready(const struct sip_conn *c)
{
    return SSL_is_init_finished(c->ssl);
}

/* Moves what OpenSSL has for the socket (handshake records, encrypted data) into out. */
void sip_tls_take_output(struct sip_conn *c, struct pc_buf *out)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    for (;;) {
        pc_buf_reserve(out, TLS_CHUNK);
        int n = BIO_read(wbio, out->data + out->len, (int)(out->cap - out->len - 1));
        if (n <= 0)
            break;
        out->len += (size_t)n;
    }
}

int sip_tls_feed(struct sip_conn *c, const void *data, size_t len, char *why, size_t cap)
{
    if (BIO_write(SSL_get_rbio(c->ssl), data, (int)len) != (int)len) {
        snprintf(why, cap, "TLS input buffer failure");
        return PC_EIO;
    }
    for (;;) {
        pc_buf_reserve(&c->in, TLS_CHUNK);
        int n = SSL_read(c->ssl, c->in.data + c->in.len, (int)(c->in.cap - c->in.len - 1));
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        if (e == SSL_ERROR_ZERO_RETURN) {
            snprintf(why, cap, "peer closed TLS");
            return PC_ECLOSED;
        }
        char detail[200];
        last_error(detail, sizeof detail);
        snprintf(why, cap, "TLS %s failed: %s", SSL_is_init_finished(c->ssl) ? "read" : "handshake",
                 detail);
        return PC_EPROTO;
    }
}

int sip_tls_encrypt(struct sip_conn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        int n = SSL_write(c->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));
        if (n <= 0)
            return PC_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
