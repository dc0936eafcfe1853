/* MD5 Digest arithmetic with OpenSSL's EVP (MD5 is what SIP Digest specifies; it protects
 * the password on the wire no better than TLS does, which is why TLS comes first). */
#include "chat/sip/sip_digest.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* MD5 of parts joined with ':' as hex. */
static void md5_join(const char *const *parts, size_t n, char out[SIP_DIGEST_HEX])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            EVP_DigestUpdate(ctx, ":", 1);
        EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]));
    }
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void sip_digest_ha1(const char *user, const char *realm, const char *password,
                    char out[SIP_DIGEST_HEX])
{
    const char *p[3] = {user, realm, password};
    md5_join(p, 3, out);
}

void sip_digest_response(const char *ha1, const char *nonce, const char *nc, const char *cnonce,
                         const char *qop, const char *method, const char *uri,
                         char out[SIP_DIGEST_HEX])
{
    char ha2[SIP_DIGEST_HEX];
    const char *a2[2] = {method, uri};
    md5_join(a2, 2, ha2);
    if (qop == NULL || qop[0] == '\0') {
        const char *p[3] = {ha1, nonce, ha2};
        md5_join(p, 3, out);
    } else {
        const char *p[6] = {ha1, nonce, nc ? nc : "", cnonce ? cnonce : "", qop, ha2};
        md5_join(p, 6, out);
    }
}

const char *sip_digest_unquote(const char *s, char *buf, size_t cap)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        snprintf(buf, cap, "%.*s", (int)(n - 2), s + 1);
    else
        snprintf(buf, cap, "%s", s != NULL ? s : "");
    return buf;
}

bool sip_digest_equal(const char *a, const char *b)
{
    if (strlen(a) != 32 || strlen(b) != 32)
        return false;
    char la[32], lb[32];
    for (int i = 0; i < 32; i++) {
        la[i] = (char)tolower((unsigned char)a[i]);
        lb[i] = (char)tolower((unsigned char)b[i]);
    }
    return CRYPTO_memcmp(la, lb, 32) == 0;
}
