/* Stored passwords: never the password itself.
 *
 * Two derived values are kept, for two different checks. Web sign-in (issue 6) checks the
 * password against a slow KDF (scrypt from OpenSSL: N=2^14, r=8, p=1, a random 16-byte
 * salt). SIP Digest cannot use it: the server must compute MD5(HA1:nonce:…) itself, so it
 * needs HA1 = MD5(user:realm:password). HA1 is what Digest servers store; it does not reveal
 * the password, but whoever holds it can answer Digest challenges for that user in that
 * realm, so the metadata (and its backups) must be protected like a password file.
 *
 * Format: "pchat1$scrypt$<N>$<r>$<p>$<salt base64>$<key base64>$<ha1 hex>". */
#ifndef CHAT_PASSWD_H
#define CHAT_PASSWD_H

#include <stdbool.h>

#include "chat/sip/sip_digest.h"

/* Derives the stored form of password for user_uri ("sip:alice@example.test") in realm
 * (the SIP domain). About 50 ms of CPU. Returns a malloc'd string, or NULL on failure. */
char *chat_passwd_make(const char *user_uri, const char *realm, const char *password);

/* The stored HA1 (for Digest with username = the user's address without "sip:"). */
bool chat_passwd_ha1(const char *stored, char ha1[SIP_DIGEST_HEX]);

/* True when password matches the stored KDF value. */
bool chat_passwd_check(const char *stored, const char *password);

#endif
