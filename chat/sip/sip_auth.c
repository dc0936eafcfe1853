/* Digest authentication of REGISTER over 407, the way SIPE answers it (XCCOS.md §2.2):
 * challenge the REGISTER only, then the identity stays bound to the connection. Nonces are
 * "<time hex>-<HMAC-SHA256 of it, truncated>" under a key drawn at start: valid for five
 * minutes, with no state to keep; a restart invalidates them (clients just answer the new
 * challenge). */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/sip/sip_digest.h"
#include "chat/sip/sip_int.h"
#include "chat/sip/sip_msg.h"
#include "common/pc_log.h"
#include "common/pc_time.h"

enum { NONCE_LIFE_S = 300 };

void sip_auth_init(struct sip_server *srv)
{
    if (RAND_bytes(srv->nonce_key, sizeof srv->nonce_key) != 1)
        pc_error("sip: no randomness for Digest nonces; sign-in will fail");
}

static void nonce_for(const struct sip_server *srv, uint64_t t, char *out, size_t cap)
{
    char ts[20];
    snprintf(ts, sizeof ts, "%llx", (unsigned long long)t);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), srv->nonce_key, sizeof srv->nonce_key, (const unsigned char *)ts,
         strlen(ts), mac, &len);
    size_t n = (size_t)snprintf(out, cap, "%s-", ts);
    for (unsigned i = 0; i < 12 && n + 2 < cap; i++, n += 2)
        snprintf(out + n, cap - n, "%02x", mac[i]);
}

/* 1 = valid, 0 = malformed or forged, -1 = expired (stale). */
static int nonce_check(const struct sip_server *srv, const char *nonce)
{
    unsigned long long t = 0;
    if (nonce == NULL || sscanf(nonce, "%llx-", &t) != 1)
        return 0;
    char want[64];
    nonce_for(srv, t, want, sizeof want);
    if (strlen(nonce) != strlen(want) || CRYPTO_memcmp(nonce, want, strlen(want)) != 0)
        return 0;
    uint64_t now = (uint64_t)(pc_wall_us() / 1000000);
    return now >= t && now - t <= NONCE_LIFE_S ? 1 : -1;
}

static void challenge(struct sip_conn *c, const osip_message_t *req, bool stale, const char *why)
{
    struct sip_server *srv = c->srv;
    char nonce[64], value[300];
    nonce_for(srv, (uint64_t)(pc_wall_us() / 1000000), nonce, sizeof nonce);
    snprintf(value, sizeof value, "Digest realm=\"%s\", nonce=\"%s\", qop=\"auth\", "
             "algorithm=MD5%s", srv->cfg.domain, nonce, stale ? ", stale=true" : "");
    osip_message_t *r = sip_msg_response(req, 407, why, c->tag);
    osip_message_set_header(r, "Proxy-Authenticate", value);
    struct pc_buf out = {0};
    if (sip_msg_serialize(r, &out) == 0)
        sip_conn_send_buf(c, &out);
    pc_buf_free(&out);
    osip_message_free(r);
}

bool sip_auth_register(struct sip_conn *c, osip_message_t *req, const char *user)
{
    struct sip_server *srv = c->srv;
    if (!srv->cfg.auth_digest || strcmp(c->authenticated, user) == 0)
        return true;
    osip_proxy_authorization_t *pa = NULL;
    osip_message_get_proxy_authorization(req, 0, &pa);
    if (pa == NULL || pa->auth_type == NULL || strcasecmp(pa->auth_type, "Digest") != 0) {
        challenge(c, req, false, "Authentication required");
        return false;
    }
    const char *bare = strncmp(user, "sip:", 4) == 0 ? user + 4 : user;
    char username[SIP_URI_MAX], nonce[128], cnonce[128], qop[32], uri[SIP_URI_MAX], resp[64], nc[16];
    sip_digest_unquote(pa->username, username, sizeof username);
    sip_digest_unquote(pa->nonce, nonce, sizeof nonce);
    sip_digest_unquote(pa->cnonce, cnonce, sizeof cnonce);
    sip_digest_unquote(pa->message_qop, qop, sizeof qop);
    sip_digest_unquote(pa->uri, uri, sizeof uri);
    sip_digest_unquote(pa->response, resp, sizeof resp);
    sip_digest_unquote(pa->nonce_count, nc, sizeof nc);
    /* SIPE sends the account's login name, else the SIP address: either must be this user. */
    const char *uname = strncmp(username, "sip:", 4) == 0 ? username + 4 : username;
    int fresh = nonce_check(srv, nonce);
    if (fresh <= 0 || strcasecmp(uname, bare) != 0) {
        if (fresh < 0) {
            challenge(c, req, true, "Authentication required (nonce expired)");
        } else {
            pc_info("sip: Digest from %s for %s: %s", c->peer, user,
                    fresh == 0 ? "unknown nonce" : "user name does not match the address");
            challenge(c, req, false, "Authentication required");
        }
        return false;
    }
    char ha1[SIP_DIGEST_HEX];
    if (srv->h.password_ha1 == NULL || !srv->h.password_ha1(srv->h.ctx, user, ha1)) {
        pc_info("sip: %s has no password: sign-in refused", user);
        sip_server_reply(c, req, 403, "No password is set for this account; ask your administrator",
                         c->tag);
        return false;
    }
    /* The digest uri as sent: SIPE sends "(null)" (XCCOS.md §2.2), and A2 is computed from
     * it, so it is accepted whatever it says; the response still proves the password. */
    char want[SIP_DIGEST_HEX];
    sip_digest_response(ha1, nonce, nc, cnonce, qop, req->sip_method, uri, want);
    if (!sip_digest_equal(resp, want)) {
        pc_notice("sip: wrong password for %s from %s", user, c->peer);
        sip_server_reply(c, req, 403, "Wrong user name or password", c->tag);
        return false;
    }
    snprintf(c->authenticated, sizeof c->authenticated, "%s", user);
    pc_info("sip: %s authenticated (Digest, username \"%s\", uri \"%s\", qop %s) from %s", user,
            uname, uri, qop[0] ? qop : "-", c->peer);
    return true;
}
