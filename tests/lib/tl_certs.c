/* Test PKI (tl_certs.h). */
#include "tests/lib/tl_certs.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>

struct tl_ca {
    EVP_PKEY *key;
    X509 *cert;
};

static long next_serial = 1;

static EVP_PKEY *newKey(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void addExt(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate for key with subject CN cn (may be NULL), issued by issuer (NULL: itself),
 * valid from an hour ago for two days. */
static X509 *newCert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
    X509 *c = X509_new();
    assert_non_null(c);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), next_serial++);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 2 * 86400);
    X509_set_pubkey(c, key);
    X509_NAME *name = X509_get_subject_name(c);
    if (cn != NULL)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    else
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"pchat tests",
                                   -1, -1, 0);
    X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509 *iss = issuer != NULL ? issuer : c;
    if (ca) {
        addExt(c, iss, NID_basic_constraints, "critical,CA:TRUE");
        addExt(c, iss, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        addExt(c, iss, NID_basic_constraints, "critical,CA:FALSE");
        addExt(c, iss, NID_key_usage, "critical,digitalSignature");
        addExt(c, iss, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    assert_true(X509_sign(c, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return c;
}

static void writeCert(X509 *c, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, c), 1);
    fclose(f);
}

struct tl_ca *tl_ca_new(const char *cn, const char *cert_path)
{
    struct tl_ca *ca = calloc(1, sizeof *ca);
    assert_non_null(ca);
    ca->key = newKey();
    ca->cert = newCert(ca->key, cn, NULL, NULL, true);
    writeCert(ca->cert, cert_path);
    return ca;
}

void tl_ca_free(struct tl_ca *ca)
{
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

void tl_cert_issue(struct tl_ca *ca, const char *cn, const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = newKey();
    X509 *c = newCert(key, cn, ca->cert, ca->key, false);
    writeCert(c, cert_path);
    FILE *f = fopen(key_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(c);
    EVP_PKEY_free(key);
}
