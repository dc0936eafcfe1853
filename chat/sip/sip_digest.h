/* SIP Digest (RFC 2617 MD5, qop=auth) as SIPE speaks it over 407 (XCCOS.md §2.2): the
 * arithmetic shared by the server's check and the test client's answer. */
#ifndef SIP_DIGEST_H
#define SIP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>

#define SIP_DIGEST_HEX 33 /* 32 hex digits and a NUL */

/* HA1 = MD5(user ":" realm ":" password), lower-case hex. */
void sip_digest_ha1(const char *user, const char *realm, const char *password,
                    char out[SIP_DIGEST_HEX]);

/* The response for method and uri (as sent in the header: SIPE sends "(null)"). With qop
 * NULL or empty the RFC 2069 form MD5(HA1:nonce:HA2), else MD5(HA1:nonce:nc:cnonce:qop:HA2). */
void sip_digest_response(const char *ha1, const char *nonce, const char *nc, const char *cnonce,
                         const char *qop, const char *method, const char *uri,
                         char out[SIP_DIGEST_HEX]);

/* A header parameter without its surrounding quotes, copied into buf ("" when s is NULL). */
const char *sip_digest_unquote(const char *s, char *buf, size_t cap);

/* Constant-time comparison of two hex digests (case-insensitive). */
bool sip_digest_equal(const char *a, const char *b);

#endif
