/* The cluster port's TLS context and the node identity convention (cluster_tls.h). */
#include "cluster/cluster_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/pc_err.h"

static void sslReason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r != NULL ? r : "unreadable");
    ERR_clear_error();
}

/* Names the option and file that cannot be read at all, before OpenSSL says "system lib". */
static bool readable(const char *opt, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "[cluster] %s = %s: cannot read it: %s", opt, file, strerror(errno));
        return false;
    }
    fclose(f);
    return true;
}

int cluster_tls_cert_node(X509 *cert, uint64_t *id, char *why, size_t cap)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (at < 0) {
        snprintf(why, cap, "its subject has no CN (want CN = " CLUSTER_TLS_CN_PREFIX "<id>)");
        return PC_EINVAL;
    }
    if (X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0) {
        snprintf(why, cap, "its subject has several CNs (want one, " CLUSTER_TLS_CN_PREFIX
                 "<id>)");
        return PC_EINVAL;
    }
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    const unsigned char *p = ASN1_STRING_get0_data(s);
    int len = ASN1_STRING_length(s);
    size_t plen = strlen(CLUSTER_TLS_CN_PREFIX);
    char cn[80];
    snprintf(cn, sizeof cn, "%.*s", len < 64 ? len : 64, (const char *)p);
    /* Strict: digits only, no leading zero, no sign, fits the config's 1..65535 and more. */
    bool ok = (size_t)len > plen && (size_t)len <= plen + 19 &&
              memcmp(p, CLUSTER_TLS_CN_PREFIX, plen) == 0 && p[plen] != '0';
    uint64_t v = 0;
    for (int i = (int)plen; ok && i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            ok = false;
        else
            v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (!ok || v == 0) {
        snprintf(why, cap, "its CN \"%s\" is not " CLUSTER_TLS_CN_PREFIX "<id>", cn);
        return PC_EINVAL;
    }
    *id = v;
    return 0;
}

int cluster_tls_peer_node(SSL *ssl, uint64_t *id, char *why, size_t cap)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) {
        snprintf(why, cap, "it presented no certificate");
        return PC_EINVAL;
    }
    int rc;
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        /* The handshake fails first with SSL_VERIFY_PEER; checked again all the same. */
        snprintf(why, cap, "its certificate did not verify: %s", X509_verify_cert_error_string(v));
        rc = PC_EINVAL;
    } else {
        char inner[160];
        rc = cluster_tls_cert_node(cert, id, inner, sizeof inner);
        if (rc != 0)
            snprintf(why, cap, "its certificate names no node: %s", inner);
    }
    X509_free(cert);
    return rc;
}

/* Verifies our own certificate the way a peer will: against the CA alone, for both
 * purposes. */
static int checkChain(SSL_CTX *ctx, const char *ca_file, const char *cert_file, char *err,
                      size_t errlen)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    STACK_OF(X509) *chain = NULL;
    SSL_CTX_get0_chain_certs(ctx, &chain);
    static const struct {
        int purpose;
        const char *as;
    } uses[] = {{X509_PURPOSE_SSL_SERVER, "a TLS server"}, {X509_PURPOSE_SSL_CLIENT, "a TLS client"}};
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        X509_STORE_CTX *vc = X509_STORE_CTX_new();
        if (vc == NULL || X509_STORE_CTX_init(vc, SSL_CTX_get_cert_store(ctx), cert, chain) != 1) {
            X509_STORE_CTX_free(vc);
            snprintf(err, errlen, "[cluster] out of memory checking tls_cert");
            return PC_EINVAL;
        }
        X509_STORE_CTX_set_purpose(vc, uses[i].purpose);
        int ok = X509_verify_cert(vc);
        int v = X509_STORE_CTX_get_error(vc);
        X509_STORE_CTX_free(vc);
        ERR_clear_error();
        if (ok == 1)
            continue;
        if (v == X509_V_ERR_INVALID_PURPOSE)
            snprintf(err, errlen, "[cluster] tls_cert = %s cannot serve as %s (its extended key "
                     "usage must allow serverAuth and clientAuth: every node both accepts and "
                     "dials)", cert_file, uses[i].as);
        else if (v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID)
            snprintf(err, errlen, "[cluster] tls_cert = %s: %s", cert_file,
                     X509_verify_cert_error_string(v));
        else
            snprintf(err, errlen, "[cluster] tls_cert = %s is not accepted by tls_ca = %s: %s "
                     "(issue the node's certificate with that CA: deploy/pool-ca issue)",
                     cert_file, ca_file, X509_verify_cert_error_string(v));
        return PC_EINVAL;
    }
    return 0;
}

int cluster_tls_context(const char *ca_file, const char *cert_file, const char *key_file,
                        uint64_t node_id, SSL_CTX **out, char *err, size_t errlen)
{
    char why[200];
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "[cluster] cannot create a TLS context");
        return PC_EINVAL;
    }
    /* Both ends are pchat nodes of the same release line: no reason to speak anything older
     * than TLS 1.3 (one round trip, forward secrecy, no renegotiation). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    /* AES-128-GCM first: as strong as needed here and the cheapest with AES-NI. */
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                  "TLS_CHACHA20_POLY1305_SHA256");
    /* Connections are long-lived and never resumed: no tickets to send or keep. */
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    if (!readable("tls_ca", ca_file, err, errlen) ||
        !readable("tls_cert", cert_file, err, errlen) ||
        !readable("tls_key", key_file, err, errlen))
        goto fail;
    /* The pool CA is the only trust anchor (never SSL_CTX_set_default_verify_paths). */
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "[cluster] tls_ca = %s: %s (a PEM file with the pool CA's "
                 "certificate is expected)", ca_file, why);
        goto fail;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (names != NULL)
        SSL_CTX_set_client_CA_list(ctx, names); /* tells a dialling node which CA to use */
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "[cluster] tls_cert = %s: %s (a PEM certificate of this node "
                 "is expected)", cert_file, why);
        goto fail;
    }
    FILE *kf = fopen(key_file, "r");
    EVP_PKEY *key = kf != NULL ? PEM_read_PrivateKey(kf, NULL, NULL, NULL) : NULL;
    if (kf != NULL)
        fclose(kf);
    if (key == NULL) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "[cluster] tls_key = %s is not a PEM private key (OpenSSL: %s); "
                 "the unencrypted key of tls_cert is expected", key_file, why);
        goto fail;
    }
    int used = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        sslReason(why, sizeof why);
        snprintf(err, errlen, "[cluster] tls_key = %s does not belong to tls_cert = %s (%s)",
                 key_file, cert_file, why);
        goto fail;
    }
    uint64_t named;
    if (cluster_tls_cert_node(SSL_CTX_get0_certificate(ctx), &named, why, sizeof why) != 0) {
        snprintf(err, errlen, "[cluster] tls_cert = %s cannot identify a node: %s", cert_file,
                 why);
        goto fail;
    }
    if (named != node_id) {
        snprintf(err, errlen, "[cluster] tls_cert = %s is the certificate of node %llu, but "
                 "this is node %llu ([node] id): issue one for node %llu (deploy/pool-ca issue "
                 "CA_DIR %llu)", cert_file, (unsigned long long)named,
                 (unsigned long long)node_id, (unsigned long long)node_id,
                 (unsigned long long)node_id);
        goto fail;
    }
    if (checkChain(ctx, ca_file, cert_file, err, errlen) != 0)
        goto fail;
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return PC_EINVAL;
}

void cluster_tls_describe(SSL_CTX *ctx, char *out, size_t cap)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    char subject[160] = "?", issuer[160] = "?", until[64] = "?";
    X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
    X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof issuer);
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && ASN1_TIME_print(b, X509_get0_notAfter(cert)) == 1) {
        int n = BIO_read(b, until, sizeof until - 1);
        until[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    snprintf(out, cap, "certificate %s issued by %s, valid until %s", subject, issuer, until);
}
