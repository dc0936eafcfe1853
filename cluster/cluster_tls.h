/* Mutual TLS between pool nodes: the pool CA, this node's certificate, and who a peer is. */
#ifndef CLUSTER_TLS_H
#define CLUSTER_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

/* Identity convention. A node's certificate is signed by the pool CA ([cluster] tls_ca; the
 * only trust anchor: system CAs are never consulted) and names the node in its subject's
 * common name:
 *
 *     CN = pchat-node-<id>        (decimal, no leading zeros, e.g. pchat-node-3)
 *
 * exactly one CN, and extended key usage (if present) allowing both TLS server and client
 * authentication, because every node both accepts and dials. deploy/pool-ca makes such a CA
 * and such certificates. Host names and addresses in the certificate play no part: a node
 * is who its certificate says, wherever it connects from. */
#define CLUSTER_TLS_CN_PREFIX "pchat-node-"

/* Builds the context every cluster connection uses, in both roles: TLS 1.3 only, the peer
 * must present a certificate that chains to ca_file, ours is cert_file (a PEM chain) with
 * key_file. Also checks, so that a bad file is named before any connection fails: each file
 * loads, the key matches the certificate, the certificate is valid now, chains to the CA,
 * is usable as TLS client and server, and names node_id. Returns 0 and *out (free with
 * SSL_CTX_free), or PC_EINVAL with the reason in err naming the option and file. */
int cluster_tls_context(const char *ca_file, const char *cert_file, const char *key_file,
                        uint64_t node_id, SSL_CTX **out, char *err, size_t errlen);

/* The node id a certificate names (CN pchat-node-<id>). Returns 0, or PC_EINVAL with a
 * reason in why (no or several CNs, another form). */
int cluster_tls_cert_node(X509 *cert, uint64_t *id, char *why, size_t cap);

/* The node id named by the verified certificate the peer presented on ssl. Returns 0, or
 * PC_EINVAL with a reason (no certificate, not verified, no node id in it). */
int cluster_tls_peer_node(SSL *ssl, uint64_t *id, char *why, size_t cap);

/* One line describing the loaded certificate for the start-up log and --check-config:
 * subject, issuer, expiry. */
void cluster_tls_describe(SSL_CTX *ctx, char *out, size_t cap);

#endif
