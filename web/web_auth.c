/* Tokens are "<base64 of 'user\nexpiry'>.<HMAC-SHA256 hex>" under a key kept in the data
 * directory: nothing to store per session, valid across this node's restarts; a token is
 * accepted by the node that issued it (each node has its own key). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uthash.h>

#include "chat/chat_admin.h"
#include "chat/chat_passwd.h"
#include "cluster/meta.h"
#include "common/pc_alloc.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"
#include "web/web_auth.h"

#define LOCAL_ADMIN "local:pchatctl"

/* One client address's token bucket of password checks. */
struct auth_peer {
    char addr[64];
    double tokens;
    uint64_t last_ms;
    UT_hash_handle hh;
};

/* Kept apart from struct web_auth (which goes with the web service) because the checks in
 * the thread pool may outlive it: each holds a reference. */
struct web_auth_limits {
    unsigned refs;
    unsigned rate, burst, concurrent;
    unsigned running, n_peers;
    uint64_t checks, refused_peer, refused_busy;
    struct auth_peer *peers;
};

enum { AUTH_MAX_PEERS = 10000 };

static void limits_unref(struct web_auth_limits *l)
{
    if (--l->refs > 0)
        return;
    struct auth_peer *p, *tmp;
    HASH_ITER(hh, l->peers, p, tmp) {
        HASH_DEL(l->peers, p);
        pc_free(p);
    }
    pc_free(l);
}

void web_auth_set_limits(struct web_auth *a, unsigned rate, unsigned burst, unsigned concurrent)
{
    a->limits->rate = rate > 0 ? rate : 1;
    a->limits->burst = burst > 0 ? burst : 1;
    a->limits->concurrent = concurrent > 0 ? concurrent : 1;
}

void web_auth_close(struct web_auth *a)
{
    if (a->limits != NULL)
        limits_unref(a->limits);
    a->limits = NULL;
}

void web_auth_stats(const struct web_auth *a, struct web_auth_stats *out)
{
    const struct web_auth_limits *l = a->limits;
    *out = (struct web_auth_stats){0};
    if (l != NULL)
        *out = (struct web_auth_stats){.checks = l->checks, .refused_peer = l->refused_peer,
                                       .refused_busy = l->refused_busy, .running = l->running};
}

/* Takes one check from peer's bucket: 0, or the seconds until one is there. */
static unsigned peer_take(struct web_auth_limits *l, const char *addr, uint64_t now)
{
    struct auth_peer *p = NULL;
    HASH_FIND_STR(l->peers, addr, p);
    if (p == NULL) {
        if (l->n_peers >= AUTH_MAX_PEERS) {
            /* Forget the addresses whose bucket is full again: they lose nothing. */
            struct auth_peer *q, *tmp;
            HASH_ITER(hh, l->peers, q, tmp)
                if ((double)(now - q->last_ms) * l->rate / 1000.0 + q->tokens >= l->burst) {
                    HASH_DEL(l->peers, q);
                    pc_free(q);
                    l->n_peers--;
                }
        }
        p = pc_calloc(1, sizeof *p);
        pc_strlcpy(p->addr, addr, sizeof p->addr);
        p->tokens = l->burst;
        p->last_ms = now;
        HASH_ADD_STR(l->peers, addr, p);
        l->n_peers++;
    }
    p->tokens += (double)(now - p->last_ms) * l->rate / 1000.0;
    if (p->tokens > l->burst)
        p->tokens = l->burst;
    p->last_ms = now;
    if (p->tokens >= 1.0) {
        p->tokens -= 1.0;
        return 0;
    }
    return (unsigned)((1.0 - p->tokens) / l->rate) + 1;
}

static void mac_hex(const struct web_auth *a, const char *msg, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), a->key, sizeof a->key, (const unsigned char *)msg, len, mac, &n);
    for (unsigned i = 0; i < 32 && i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static void make_token(const struct web_auth *a, const char *user, int64_t expires, char *out,
                       size_t cap)
{
    char plain[400];
    int len = snprintf(plain, sizeof plain, "%s\n%lld", user, (long long)expires);
    unsigned char b64[600];
    int blen = EVP_EncodeBlock(b64, (const unsigned char *)plain, len);
    char mac[65];
    mac_hex(a, (const char *)b64, (size_t)blen, mac);
    snprintf(out, cap, "%s.%s", b64, mac);
}

void web_auth_token(const struct web_auth *a, const char *user, int64_t *expires, char *out,
                    size_t cap)
{
    *expires = pc_wall_us() / 1000000 + (int64_t)a->token_minutes * 60;
    make_token(a, user, *expires, out, cap);
}

static bool write_file(const char *path, const void *p, size_t len)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = write(fd, p, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    return ok && rename(tmp, path) == 0;
}

bool web_auth_init(struct web_auth *a, uv_loop_t *loop, const char *data_dir, const char *domain,
                   bool auth_off, unsigned token_minutes, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->loop = loop;
    a->auth_off = auth_off;
    a->token_minutes = token_minutes;
    pc_strlcpy(a->domain, domain, sizeof a->domain);
    char path[1024];
    snprintf(path, sizeof path, "%s/web.key", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, a->key, sizeof a->key);
        close(fd);
        if (n != (ssize_t)sizeof a->key) {
            snprintf(err, errlen, "%s is damaged (not %zu bytes): delete it (signed-in web users "
                     "will have to sign in again)", path, sizeof a->key);
            return false;
        }
    } else {
        pc_random_bytes(a->key, sizeof a->key);
        if (!write_file(path, a->key, sizeof a->key)) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return false;
        }
    }
    /* The local administrator's token: whoever can read the data directory administers the
     * node anyway. Ten years; a new key (delete web.key) revokes it. */
    make_token(a, LOCAL_ADMIN, pc_wall_us() / 1000000 + 10LL * 365 * 86400, a->local_token,
               sizeof a->local_token);
    snprintf(path, sizeof path, "%s/admin.token", data_dir);
    char line[600];
    int n = snprintf(line, sizeof line, "%s\n", a->local_token);
    if (!write_file(path, line, (size_t)n)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return false;
    }
    a->limits = pc_calloc(1, sizeof *a->limits);
    a->limits->refs = 1;
    web_auth_set_limits(a, 10, 30, 2);
    return true;
}

/* The stored form of a user name typed at sign-in: "alice", "alice@dom", "sip:Alice@dom". */
static void normalise(const struct web_auth *a, const char *in, char *out, size_t cap)
{
    char *uri = chat_user_uri(in, a->domain);
    pc_strlcpy(out, uri, cap);
    pc_free(uri);
}

/* 0 when user may use the web services now, else 401 with why. */
int web_auth_identify(const struct web_auth *a, const struct meta *m, const char *user,
                      struct web_identity *id, const char **why)
{
    memset(id, 0, sizeof *id);
    if (strcmp(user, LOCAL_ADMIN) == 0) {
        pc_strlcpy(id->user, user, sizeof id->user);
        id->admin = true;
        return 0;
    }
    const struct meta_user *u = meta_user(m, user);
    if (u == NULL && !a->auth_off) {
        *why = "unknown user or wrong password";
        return 401;
    }
    if (u != NULL && u->disabled) {
        *why = "this user is disabled: ask an administrator";
        return 401;
    }
    pc_strlcpy(id->user, user, sizeof id->user);
    id->admin = u != NULL && u->admin;
    return 0;
}

int web_auth_bearer(const struct web_auth *a, const struct meta *m, const char *token,
                    struct web_identity *id, const char **why)
{
    const char *dot = strrchr(token, '.');
    size_t blen = dot != NULL ? (size_t)(dot - token) : 0;
    char mac[65];
    if (dot == NULL || blen == 0 || blen > 590 || blen % 4 != 0 || strlen(dot + 1) != 64) {
        *why = "malformed token: sign in again";
        return 401;
    }
    mac_hex(a, token, blen, mac);
    if (CRYPTO_memcmp(mac, dot + 1, 64) != 0) {
        *why = "invalid token (issued by another node, or the node's key changed): sign in again";
        return 401;
    }
    unsigned char plain[600];
    int n = EVP_DecodeBlock(plain, (const unsigned char *)token, (int)blen);
    if (n <= 0) {
        *why = "malformed token: sign in again";
        return 401;
    }
    plain[n] = '\0';
    char *nl = strrchr((char *)plain, '\n'); /* the last: names hold no newline, but be sure */
    if (nl == NULL) {
        *why = "malformed token: sign in again";
        return 401;
    }
    *nl = '\0';
    long long expires = strtoll(nl + 1, NULL, 10);
    if (expires < pc_wall_us() / 1000000) {
        *why = "the sign-in has expired: sign in again";
        return 401;
    }
    return web_auth_identify(a, m, (const char *)plain, id, why);
}

struct pw_check {
    uv_work_t work;
    char user[300];
    char *stored;
    char *password;
    bool ok;
    web_auth_cb cb;
    void *arg;
    struct web_auth_limits *limits; /* a reference */
};

static void pw_work(uv_work_t *w)
{
    struct pw_check *c = w->data;
    if (c->stored != NULL) {
        c->ok = chat_passwd_check(c->stored, c->password);
    } else {
        /* An unknown user, or one without a password: spend the same time, then refuse. */
        pc_free(chat_passwd_make("sip:nobody@invalid", "invalid", c->password));
        c->ok = false;
    }
}

static void pw_done(uv_work_t *w, int status)
{
    struct pw_check *c = w->data;
    c->cb(c->arg, status == 0 && c->ok, c->user);
    OPENSSL_cleanse(c->password, strlen(c->password));
    c->limits->running--;
    limits_unref(c->limits);
    pc_free(c->password);
    pc_free(c->stored);
    pc_free(c);
}

int web_auth_password(struct web_auth *a, const struct meta *m, const char *peer, const char *user,
                      const char *password, web_auth_cb cb, void *arg, unsigned *retry_after_s)
{
    *retry_after_s = 0;
    char uri[300];
    normalise(a, user, uri, sizeof uri);
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p < 0x20 || *p == 0x7f) { /* no such user can exist */
            cb(arg, false, uri);
            return 0;
        }
    if (a->auth_off) { /* as SIP with [auth] mode = off: the password is not checked */
        cb(arg, true, uri);
        return 0;
    }
    /* A flood of guesses (or of Basic headers) must neither starve the thread pool, which
     * raft's disk work and file I/O share, nor make guessing cheap: per address first, then
     * node-wide. */
    struct web_auth_limits *l = a->limits;
    unsigned wait_s = peer_take(l, peer != NULL ? peer : "", pc_mono_ms());
    if (wait_s > 0) {
        l->refused_peer++;
        *retry_after_s = wait_s;
        return 429;
    }
    if (l->running >= l->concurrent) {
        l->refused_busy++;
        *retry_after_s = 1;
        return 503;
    }
    const struct meta_user *u = meta_user(m, uri);
    struct pw_check *c = pc_calloc(1, sizeof *c);
    c->work.data = c;
    pc_strlcpy(c->user, uri, sizeof c->user);
    c->stored = u != NULL && u->password_hash != NULL ? pc_strdup(u->password_hash) : NULL;
    c->password = pc_strdup(password);
    c->cb = cb;
    c->arg = arg;
    c->limits = l;
    if (uv_queue_work(a->loop, &c->work, pw_work, pw_done) != 0) {
        cb(arg, false, uri);
        pc_free(c->password);
        pc_free(c->stored);
        pc_free(c);
        return 0;
    }
    l->refs++;
    l->running++;
    l->checks++;
    return 0;
}
