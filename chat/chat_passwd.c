/* Password storage (see chat_passwd.h for the format and why two values are kept). */
#include "chat/chat_passwd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pc_alloc.h"

enum { SALT_LEN = 16, KEY_LEN = 32, SCRYPT_N = 1 << 14, SCRYPT_R = 8, SCRYPT_P = 1 };
#define SCRYPT_MAXMEM (64u << 20)

static bool derive(const char *password, const unsigned char *salt, size_t salt_len, uint64_t n,
                   uint64_t r, uint64_t p, unsigned char key[KEY_LEN])
{
    return EVP_PBE_scrypt(password, strlen(password), salt, salt_len, n, r, p, SCRYPT_MAXMEM, key,
                          KEY_LEN) == 1;
}

char *chat_passwd_make(const char *user_uri, const char *realm, const char *password)
{
    unsigned char salt[SALT_LEN], key[KEY_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        !derive(password, salt, sizeof salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, key))
        return NULL;
    char salt64[64], key64[64], ha1[SIP_DIGEST_HEX];
    EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof salt);
    EVP_EncodeBlock((unsigned char *)key64, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    const char *user = strncmp(user_uri, "sip:", 4) == 0 ? user_uri + 4 : user_uri;
    sip_digest_ha1(user, realm, password, ha1);
    size_t cap = 256;
    char *out = pc_malloc(cap);
    snprintf(out, cap, "pchat1$scrypt$%d$%d$%d$%s$%s$%s", SCRYPT_N, SCRYPT_R, SCRYPT_P, salt64,
             key64, ha1);
    return out;
}

/* Splits the stored form into its 8 fields (in a copy); false when malformed. */
static bool split(const char *stored, char *copy, size_t cap, char *f[8])
{
    if (stored == NULL || strlen(stored) >= cap)
        return false;
    strcpy(copy, stored);
    char *save = NULL;
    int n = 0;
    for (char *t = strtok_r(copy, "$", &save); t != NULL && n < 8; t = strtok_r(NULL, "$", &save))
        f[n++] = t;
    return n == 8 && strcmp(f[0], "pchat1") == 0 && strcmp(f[1], "scrypt") == 0 &&
           strlen(f[7]) == 32;
}

bool chat_passwd_ha1(const char *stored, char ha1[SIP_DIGEST_HEX])
{
    char copy[512], *f[8];
    if (!split(stored, copy, sizeof copy, f))
        return false;
    memcpy(ha1, f[7], SIP_DIGEST_HEX);
    return true;
}

bool chat_passwd_check(const char *stored, const char *password)
{
    char copy[512], *f[8];
    if (!split(stored, copy, sizeof copy, f))
        return false;
    unsigned char salt[64], want[64], key[KEY_LEN];
    int sl = EVP_DecodeBlock(salt, (const unsigned char *)f[5], (int)strlen(f[5]));
    int kl = EVP_DecodeBlock(want, (const unsigned char *)f[6], (int)strlen(f[6]));
    if (sl < SALT_LEN || kl < KEY_LEN)
        return false;
    uint64_t n = strtoull(f[2], NULL, 10), r = strtoull(f[3], NULL, 10), p = strtoull(f[4], NULL, 10);
    if (!derive(password, salt, SALT_LEN, n, r, p, key))
        return false;
    bool ok = CRYPTO_memcmp(key, want, KEY_LEN) == 0;
    OPENSSL_cleanse(key, sizeof key);
    return ok;
}
