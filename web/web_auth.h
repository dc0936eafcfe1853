/* Who is asking: sign-in with the users' SIP credentials, signed tokens with an expiry, and
 * the node's local administrator token (what pchatctl on the node's machine uses). */
#ifndef WEB_AUTH_H
#define WEB_AUTH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct meta;

struct web_identity {
    char user[300]; /* "sip:alice@example.test", or "local:pchatctl" */
    bool admin;
};

/* Password checks cost a scrypt each in libuv's thread pool (shared with file I/O and
 * raft's disk work): bounded per client address and node-wide (web_auth.c). */
struct web_auth_limits;

struct web_auth {
    uv_loop_t *loop;
    struct web_auth_limits *limits;
    unsigned char key[32];   /* signs tokens; kept in <data_dir>/web.key across restarts */
    char domain[128];
    bool auth_off;
    unsigned token_minutes;
    char local_token[512];   /* written to <data_dir>/admin.token (mode 0600) */
};

/* Loads or creates the signing key and writes the local admin token. False with a reason. */
bool web_auth_init(struct web_auth *a, uv_loop_t *loop, const char *data_dir, const char *domain,
                   bool auth_off, unsigned token_minutes, char *err, size_t errlen);
/* Password checks allowed per client address: rate per second, bursts of burst; and at most
 * concurrent ones running on the node. Call after web_auth_init (defaults 10, 30, 2). */
void web_auth_set_limits(struct web_auth *a, unsigned rate, unsigned burst, unsigned concurrent);
/* Frees what web_auth_init made; checks still running finish on their own. */
void web_auth_close(struct web_auth *a);

struct web_auth_stats {
    uint64_t checks;          /* password checks run (scrypt) */
    uint64_t refused_peer;    /* refused: the address was over its rate (429) */
    uint64_t refused_busy;    /* refused: the node was at its concurrent checks (503) */
    unsigned running;         /* checks in the thread pool now */
};
void web_auth_stats(const struct web_auth *a, struct web_auth_stats *out);

/* A token for user valid for the configured lifetime; *expires gets its end (Unix s). */
void web_auth_token(const struct web_auth *a, const char *user, int64_t *expires, char *out,
                    size_t cap);

/* The identity a token stands for, checked against the current metadata (a disabled or
 * removed user's tokens stop working at once). 0, or 401 with why. */
int web_auth_bearer(const struct web_auth *a, const struct meta *m, const char *token,
                    struct web_identity *id, const char **why);

/* Checks a typed user name and password (scrypt runs in libuv's thread pool, not on the
 * loop). cb gets whether they match (always true with [auth] mode = off) and the user's
 * stored form; the caller then asks web_auth_identify, if it still cares. */
typedef void (*web_auth_cb)(void *arg, bool ok, const char *user);
/* Returns 0 (cb fires, maybe at once), or the HTTP status to answer instead, cb never called:
 * 429 when the client address peer has checked too many passwords lately, 503 when the node
 * is at its concurrent checks; *retry_after_s says when to come back. */
int web_auth_password(struct web_auth *a, const struct meta *m, const char *peer, const char *user,
                      const char *password, web_auth_cb cb, void *arg, unsigned *retry_after_s);

/* Whether user may use the web services now (exists, not disabled): 0, or 401 with why. */
int web_auth_identify(const struct web_auth *a, const struct meta *m, const char *user,
                      struct web_identity *id, const char **why);

#endif
