/* Test PKI: CAs and node certificates made with OpenSSL's API and written as PEM files. */
#ifndef TL_CERTS_H
#define TL_CERTS_H

#include <stdbool.h>

/* Tests of mutual TLS need a pool CA, certificates naming nodes, and bad ones (another CA, no
 * node name, the wrong node); making them in-process keeps unit tests free of the openssl
 * command (integration tests use deploy/pool-ca, as operators do). Keys are EC P-256.
 * Failures abort the test (cmocka assertions). */

struct tl_ca;

/* A self-signed CA with subject CN cn; writes its certificate to cert_path. */
struct tl_ca *tl_ca_new(const char *cn, const char *cert_path);
void tl_ca_free(struct tl_ca *ca);

/* Writes cert_path and key_path: a certificate with subject CN cn (NULL: no CN at all) signed
 * by ca, allowed for TLS server and client use. */
void tl_cert_issue(struct tl_ca *ca, const char *cn, const char *cert_path, const char *key_path);

#endif
