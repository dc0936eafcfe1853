/* XCCOS codec: operation names, message lifetime and room-URI helpers shared by the
 * decoder and the encoder. */
#include "chat/xccos/xccos.h"

#include <string.h>
#include <strings.h>

#include "chat/xccos/xccos_int.h"

const struct xccos_limits xccos_default_limits = {
    .max_bytes = 256 * 1024,
    .max_elements = 20000,
    .max_depth = 16,
    .max_list = 5000,
};

/* Wire names, indexed by enum xccos_op. */
static const char *const op_names[XCCOS_OP_COUNT] = {
    [XCCOS_OP_UNKNOWN] = "unknown",
    [XCCOS_OP_REQURI] = "requri",
    [XCCOS_OP_GETSERVERINFO] = "getserverinfo",
    [XCCOS_OP_GETASSOCIATIONS] = "getassociations",
    [XCCOS_OP_BJOIN] = "bjoin",
    [XCCOS_OP_JOIN] = "join",
    [XCCOS_OP_PART] = "part",
    [XCCOS_OP_BCCONTEXT] = "bccontext",
    [XCCOS_OP_GETINV] = "getinv",
    [XCCOS_OP_CHANSRCH] = "chansrch",
    [XCCOS_OP_GRPCHAT] = "grpchat",
};

const char *xccos_op_name(enum xccos_op op)
{
    if ((int)op < 0 || op >= XCCOS_OP_COUNT)
        return op_names[XCCOS_OP_UNKNOWN];
    return op_names[op];
}

/* Notices exist only for membership changes; grpchat is an element of its own, never an
 * id under cmd/rpl/ntc. */
static bool op_valid_for(enum xccos_kind kind, enum xccos_op op)
{
    switch (kind) {
    case XCCOS_KIND_CMD:
    case XCCOS_KIND_RPL:
        return op != XCCOS_OP_GRPCHAT;
    case XCCOS_KIND_NTC:
        return op == XCCOS_OP_JOIN || op == XCCOS_OP_BJOIN || op == XCCOS_OP_PART;
    case XCCOS_KIND_GRPCHAT:
        return op == XCCOS_OP_GRPCHAT;
    }
    return false;
}

const char *xccos_id_name(const char *id)
{
    static const char *const prefixes[] = {"cmd:", "rpl:", "ntc:"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncasecmp(id, prefixes[i], 4) == 0)
            return id + 4;
    return id;
}

enum xccos_op xccos_op_lookup(enum xccos_kind kind, const char *name)
{
    if (name == NULL)
        return XCCOS_OP_UNKNOWN;
    /* SIPE's source comment spells the reply "rpl:getservinfo"; accept both. */
    if (strcasecmp(name, "getservinfo") == 0)
        name = op_names[XCCOS_OP_GETSERVERINFO];
    for (int op = XCCOS_OP_UNKNOWN + 1; op < XCCOS_OP_COUNT; op++)
        if (strcasecmp(name, op_names[op]) == 0)
            return op_valid_for(kind, (enum xccos_op)op) ? (enum xccos_op)op : XCCOS_OP_UNKNOWN;
    return XCCOS_OP_UNKNOWN;
}

void xccos_msg_init(struct xccos_msg *msg, enum xccos_kind kind, enum xccos_op op)
{
    memset(msg, 0, sizeof *msg);
    msg->kind = kind;
    msg->op = op;
}

void xccos_msg_free(struct xccos_msg *msg)
{
    pc_arena_free(&msg->arena);
    /* Zeroing makes a second free harmless and any use of a stale pointer obvious. */
    memset(msg, 0, sizeof *msg);
}

void xccos_msg_set_error(struct xccos_msg *msg, int code, const char *token, const char *detail)
{
    msg->resp_code = code;
    if (detail != NULL)
        msg->resp_text = pc_arena_printf(&msg->arena, "%s: %s", token, detail);
    else
        msg->resp_text = pc_arena_strdup(&msg->arena, token);
}

bool xccos_chan_uri_parts(const char *uri, struct pc_str *domain, struct pc_str *id)
{
    size_t plen = strlen(XCCOS_CHAN_PREFIX);
    if (uri == NULL || strncmp(uri, XCCOS_CHAN_PREFIX, plen) != 0)
        return false;
    const char *d = uri + plen;
    const char *slash = strchr(d, '/');
    if (slash == NULL || slash == d || slash[1] == '\0')
        return false;
    *domain = (struct pc_str){d, (size_t)(slash - d)};
    *id = pc_str_c(slash + 1);
    return true;
}

bool xccos_split_chan_uri(const char *uri, struct pc_arena *arena, const char **domain,
                          const char **id)
{
    struct pc_str d, i;
    if (!xccos_chan_uri_parts(uri, &d, &i))
        return false;
    *domain = pc_arena_strndup(arena, d.p, d.len);
    *id = pc_arena_strndup(arena, i.p, i.len);
    return true;
}
