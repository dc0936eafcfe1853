/* Per-user limits of this node: how many chat sessions a user may hold, and how fast a user
 * may post (a token bucket: `post_rate` posts per second on average, bursts of `post_burst`).
 * A node-local guard against a runaway client or a script: it protects the node and the
 * room's other users, it is not a pool-wide quota. */
#include <string.h>

#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

struct chat_user_limits {
    UT_hash_handle hh;
    char user[256];
    unsigned sessions;
    double tokens;
    uint64_t refill_ms;
};

static struct chat_user_limits *get(struct chat_service *svc, const char *user, bool create)
{
    struct chat_user_limits *u = NULL;
    HASH_FIND_STR(svc->limits, user, u);
    if (u == NULL && create) {
        u = pc_calloc(1, sizeof *u);
        pc_strlcpy(u->user, user, sizeof u->user);
        u->tokens = svc->cfg.post_burst;
        u->refill_ms = pc_mono_ms();
        HASH_ADD_STR(svc->limits, user, u);
    }
    return u;
}

bool chat_limits_session_open(struct chat_service *svc, const char *user)
{
    struct chat_user_limits *u = get(svc, user, true);
    if (svc->cfg.max_sessions_per_user != 0 && u->sessions >= svc->cfg.max_sessions_per_user) {
        svc->stats.sessions_refused++;
        return false;
    }
    u->sessions++;
    return true;
}

void chat_limits_session_close(struct chat_service *svc, const char *user)
{
    struct chat_user_limits *u = get(svc, user, false);
    if (u == NULL)
        return;
    if (u->sessions > 0)
        u->sessions--;
    if (u->sessions == 0) {
        HASH_DEL(svc->limits, u);
        pc_free(u);
    }
}

bool chat_limits_may_post(struct chat_service *svc, const char *user)
{
    if (svc->cfg.post_rate == 0)
        return true;
    struct chat_user_limits *u = get(svc, user, true);
    uint64_t now = pc_mono_ms();
    u->tokens += (double)(now - u->refill_ms) * svc->cfg.post_rate / 1000.0;
    if (u->tokens > svc->cfg.post_burst)
        u->tokens = svc->cfg.post_burst;
    u->refill_ms = now;
    if (u->tokens < 1.0) {
        svc->stats.posts_rate_limited++;
        return false;
    }
    u->tokens -= 1.0;
    return true;
}

void chat_limits_free(struct chat_service *svc)
{
    struct chat_user_limits *u, *tmp;
    HASH_ITER(hh, svc->limits, u, tmp) {
        HASH_DEL(svc->limits, u);
        pc_free(u);
    }
}
