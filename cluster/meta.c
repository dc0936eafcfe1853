/* Metadata state: in-memory indexes, deterministic apply, load from the store. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster/meta.h"
#include "cluster/meta_int.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "compliance/compl_event.h"
#include "storage/store.h"
#include "storage/store_keys.h"

/* The metadata raft group is group 0; its applied index lives under that number. */
enum { META_GROUP = 0, NAME_MAX_CHARS = 256, DESC_MAX_BYTES = 4096 };

/* ---- principals ------------------------------------------------------------------------ */

void meta_principals_add(struct meta_principals *p, const char *item)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcasecmp(p->items[i], item) == 0)
            return;
    p->items = pc_realloc(p->items, (p->n + 1) * sizeof *p->items);
    p->items[p->n] = pc_strdup(item);
    pc_str_lower(p->items[p->n]);
    p->n++;
}

void meta_principals_copy(struct meta_principals *dst, const struct meta_principals *src)
{
    meta_principals_clear(dst);
    for (size_t i = 0; i < src->n; i++)
        meta_principals_add(dst, src->items[i]);
}

void meta_principals_clear(struct meta_principals *p)
{
    for (size_t i = 0; i < p->n; i++)
        pc_free(p->items[i]);
    pc_free(p->items);
    p->items = NULL;
    p->n = 0;
}

bool meta_principals_match(const struct meta_principals *p, const char *user)
{
    const char *at = strchr(user, '@');
    for (size_t i = 0; i < p->n; i++) {
        const char *it = p->items[i];
        if (strcmp(it, "*") == 0 || strcasecmp(it, user) == 0)
            return true;
        if (it[0] == '*' && it[1] == '@' && at != NULL && strcasecmp(it + 2, at + 1) == 0)
            return true;
    }
    return false;
}

/* A principal is "*", "*@domain" or "sip:user@domain" (a bare "user@domain" gets "sip:"). */
bool meta_principals_parse(struct meta_principals *p, const char *list, char *err, size_t errlen)
{
    const char *s = list;
    while (*s != '\0') {
        while (*s == ',' || *s == ' ' || *s == ';' || *s == '\t')
            s++;
        const char *e = s;
        while (*e != '\0' && *e != ',' && *e != ' ' && *e != ';' && *e != '\t')
            e++;
        if (e == s)
            break;
        char item[260];
        size_t n = (size_t)(e - s);
        if (n > 250) {
            snprintf(err, errlen, "principal longer than 250 characters");
            return false;
        }
        memcpy(item, s, n);
        item[n] = '\0';
        char full[264];
        if (strcmp(item, "*") == 0 || strncmp(item, "*@", 2) == 0)
            snprintf(full, sizeof full, "%s", item);
        else if (strncasecmp(item, "sip:", 4) == 0)
            snprintf(full, sizeof full, "%s", item);
        else
            snprintf(full, sizeof full, "sip:%s", item);
        const char *at = strchr(full, '@');
        bool ok = strcmp(full, "*") == 0 || (at != NULL && at[1] != '\0' && strchr(at + 1, '@') == NULL);
        for (const char *c = full; ok && *c; c++)
            if ((unsigned char)*c <= ' ' || *c == '<' || *c == '>' || *c == '"' || *c == '&')
                ok = false;
        if (!ok) {
            snprintf(err, errlen, "'%s' is not a user (sip:user@domain), '*@domain' or '*'", item);
            return false;
        }
        meta_principals_add(p, full);
        s = e;
    }
    return true;
}

/* ---- record copies ---------------------------------------------------------------------- */

static char *dup_or_empty(const char *s)
{
    return pc_strdup(s != NULL ? s : "");
}

void meta_room_clear(struct meta_room *r)
{
    pc_free(r->name);
    pc_free(r->name_key);
    pc_free(r->description);
    pc_free(r->creator);
    meta_principals_clear(&r->managers);
    meta_principals_clear(&r->members);
    meta_principals_clear(&r->presenters);
    memset(r, 0, sizeof *r);
}

void meta_room_copy(struct meta_room *dst, const struct meta_room *src)
{
    memset(dst, 0, sizeof *dst);
    dst->no = src->no;
    memcpy(dst->guid, src->guid, sizeof dst->guid);
    dst->name = dup_or_empty(src->name);
    dst->name_key = dup_or_empty(src->name);
    pc_str_lower(dst->name_key);
    dst->description = dup_or_empty(src->description);
    dst->category_no = src->category_no;
    dst->privacy = src->privacy;
    dst->type = src->type;
    dst->disabled = src->disabled;
    dst->invitations = src->invitations;
    meta_principals_copy(&dst->managers, &src->managers);
    meta_principals_copy(&dst->members, &src->members);
    meta_principals_copy(&dst->presenters, &src->presenters);
    dst->creator = dup_or_empty(src->creator);
    dst->created_us = src->created_us;
    dst->shard = src->shard;
    dst->keep_days = src->keep_days;
    dst->keep_messages = src->keep_messages;
}

static uint32_t keep(uint32_t room, uint32_t category)
{
    if (room == META_KEEP_INHERIT)
        return category;
    return room == META_KEEP_FOREVER ? 0 : room;
}

void meta_room_retention(const struct meta *m, const struct meta_room *rm, uint32_t *days,
                         uint32_t *messages)
{
    const struct meta_category *c = meta_category_by_no(m, rm->category_no);
    *days = keep(rm->keep_days, c != NULL ? c->keep_days : 0);
    *messages = keep(rm->keep_messages, c != NULL ? c->keep_messages : 0);
}

void meta_category_clear(struct meta_category *c)
{
    pc_free(c->name);
    pc_free(c->description);
    meta_principals_clear(&c->allowed);
    meta_principals_clear(&c->denied);
    meta_principals_clear(&c->creators);
    memset(c, 0, sizeof *c);
}

void meta_category_copy(struct meta_category *dst, const struct meta_category *src)
{
    memset(dst, 0, sizeof *dst);
    dst->no = src->no;
    memcpy(dst->guid, src->guid, sizeof dst->guid);
    dst->name = dup_or_empty(src->name);
    dst->description = dup_or_empty(src->description);
    meta_principals_copy(&dst->allowed, &src->allowed);
    meta_principals_copy(&dst->denied, &src->denied);
    meta_principals_copy(&dst->creators, &src->creators);
    dst->file_upload = src->file_upload;
    dst->chat_history = src->chat_history;
    dst->invitations = src->invitations;
    dst->keep_days = src->keep_days;
    dst->keep_messages = src->keep_messages;
}

void meta_user_clear(struct meta_user *u)
{
    pc_free(u->uri);
    pc_free(u->display_name);
    pc_free(u->password_hash);
    memset(u, 0, sizeof *u);
}

void meta_user_copy(struct meta_user *dst, const struct meta_user *src)
{
    memset(dst, 0, sizeof *dst);
    dst->uri = dup_or_empty(src->uri);
    pc_str_lower(dst->uri);
    dst->display_name = dup_or_empty(src->display_name);
    dst->disabled = src->disabled;
    dst->chat_enabled = src->chat_enabled;
    dst->admin = src->admin;
    dst->password_hash = src->password_hash ? pc_strdup(src->password_hash) : NULL;
}

/* ---- lookups ---------------------------------------------------------------------------- */

struct meta_room *meta_room_by_no(const struct meta *m, uint64_t no)
{
    struct meta_room *r = NULL;
    HASH_FIND(hh_no, m->rooms_by_no, &no, sizeof no, r);
    return r;
}

struct meta_room *meta_room_by_guid(const struct meta *m, const char *guid)
{
    struct meta_room *r = NULL;
    char key[PC_GUID_LEN];
    if (!pc_strlcpy(key, guid, sizeof key))
        return NULL;
    pc_str_lower(key);
    HASH_FIND(hh_guid, m->rooms_by_guid, key, strlen(key), r);
    return r;
}

struct meta_room *meta_room_by_name(const struct meta *m, const char *name)
{
    struct meta_room *r = NULL;
    char key[NAME_MAX_CHARS * 4 + 1];
    if (!pc_strlcpy(key, name, sizeof key))
        return NULL;
    pc_str_lower(key);
    HASH_FIND(hh_name, m->rooms_by_name, key, strlen(key), r);
    return r;
}

struct meta_category *meta_category_by_no(const struct meta *m, uint64_t no)
{
    struct meta_category *c = NULL;
    HASH_FIND(hh_no, m->cats_by_no, &no, sizeof no, c);
    return c;
}

struct meta_category *meta_category_by_guid(const struct meta *m, const char *guid)
{
    struct meta_category *c = NULL;
    HASH_FIND(hh_guid, m->cats_by_guid, guid, strlen(guid), c);
    return c;
}

struct meta_category *meta_category_by_name(const struct meta *m, const char *name)
{
    struct meta_category *c, *tmp;
    HASH_ITER(hh_no, m->cats_by_no, c, tmp)
        if (strcasecmp(c->name, name) == 0)
            return c;
    return NULL;
}

struct meta_user *meta_user(const struct meta *m, const char *uri)
{
    struct meta_user *u = NULL;
    char key[STORE_URI_MAX];
    if (!pc_strlcpy(key, uri, sizeof key))
        return NULL;
    pc_str_lower(key);
    HASH_FIND_STR(m->users, key, u);
    return u;
}

static struct meta_user_extra *extra_of(const struct meta *m, const char *uri)
{
    struct meta_user_extra *x = NULL;
    HASH_FIND_STR(m->extras, uri, x);
    return x;
}

static struct meta_user_extra *extra_get(struct meta *m, const char *uri)
{
    struct meta_user_extra *x = extra_of(m, uri);
    if (x == NULL) {
        x = pc_calloc(1, sizeof *x);
        x->uri = pc_strdup(uri);
        x->next_invite_id = 1;
        HASH_ADD_KEYPTR(hh, m->extras, x->uri, strlen(x->uri), x);
    }
    return x;
}

bool meta_follows(const struct meta *m, const char *user, uint64_t room_no)
{
    struct meta_user_extra *x = extra_of(m, user);
    for (size_t i = 0; x != NULL && i < x->n_follows; i++)
        if (x->follows[i] == room_no)
            return true;
    return false;
}

size_t meta_invites(const struct meta *m, const char *user, uint64_t after_id,
                    const struct meta_invite **out, size_t max)
{
    struct meta_user_extra *x = extra_of(m, user);
    size_t n = 0;
    for (size_t i = 0; x != NULL && i < x->n_invites && n < max; i++)
        if (x->invites[i].id > after_id)
            out[n++] = &x->invites[i];
    return n;
}

size_t meta_room_count(const struct meta *m)
{
    return HASH_CNT(hh_no, m->rooms_by_no);
}

uint32_t meta_shard_of(const char *guid, uint32_t shard_count)
{
    /* FNV-1a over the lower-cased GUID: stable across releases and machines. */
    uint64_t h = 1469598103934665603ull;
    for (const char *p = guid; *p; p++) {
        h ^= (uint64_t)tolower((unsigned char)*p);
        h *= 1099511628211ull;
    }
    /* FNV's low bits mix poorly and shard counts are often powers of two: finish with a
     * murmur-style avalanche so every input bit reaches the bits the modulo keeps. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return shard_count > 0 ? (uint32_t)(h % shard_count) : 0;
}

const char *meta_privacy_name(enum meta_privacy p)
{
    return p == META_OPEN ? "open" : p == META_CLOSED ? "closed" : "secret";
}

bool meta_privacy_parse(const char *s, enum meta_privacy *out)
{
    if (strcasecmp(s, "open") == 0)
        *out = META_OPEN;
    else if (strcasecmp(s, "closed") == 0)
        *out = META_CLOSED;
    else if (strcasecmp(s, "secret") == 0)
        *out = META_SECRET;
    else
        return false;
    return true;
}

/* ---- index maintenance ------------------------------------------------------------------ */

static void room_index(struct meta *m, struct meta_room *r)
{
    HASH_ADD(hh_no, m->rooms_by_no, no, sizeof r->no, r);
    HASH_ADD(hh_guid, m->rooms_by_guid, guid, strlen(r->guid), r);
    HASH_ADD_KEYPTR(hh_name, m->rooms_by_name, r->name_key, strlen(r->name_key), r);
}

static void room_unindex_free(struct meta *m, struct meta_room *r)
{
    HASH_DELETE(hh_no, m->rooms_by_no, r);
    HASH_DELETE(hh_guid, m->rooms_by_guid, r);
    HASH_DELETE(hh_name, m->rooms_by_name, r);
    meta_room_clear(r);
    pc_free(r);
}

static void category_index(struct meta *m, struct meta_category *c)
{
    HASH_ADD(hh_no, m->cats_by_no, no, sizeof c->no, c);
    HASH_ADD(hh_guid, m->cats_by_guid, guid, strlen(c->guid), c);
}

static void category_unindex_free(struct meta *m, struct meta_category *c)
{
    HASH_DELETE(hh_no, m->cats_by_no, c);
    HASH_DELETE(hh_guid, m->cats_by_guid, c);
    meta_category_clear(c);
    pc_free(c);
}

static void user_index(struct meta *m, struct meta_user *u)
{
    HASH_ADD_KEYPTR(hh, m->users, u->uri, strlen(u->uri), u);
}

void meta_free(struct meta *m)
{
    struct meta_room *r, *rt;
    HASH_ITER(hh_no, m->rooms_by_no, r, rt)
        room_unindex_free(m, r);
    struct meta_category *c, *ct;
    HASH_ITER(hh_no, m->cats_by_no, c, ct)
        category_unindex_free(m, c);
    struct meta_user *u, *ut;
    HASH_ITER(hh, m->users, u, ut) {
        HASH_DEL(m->users, u);
        meta_user_clear(u);
        pc_free(u);
    }
    struct meta_user_extra *x, *xt;
    HASH_ITER(hh, m->extras, x, xt) {
        HASH_DEL(m->extras, x);
        for (size_t i = 0; i < x->n_invites; i++)
            pc_free(x->invites[i].inviter);
        pc_free(x->invites);
        pc_free(x->follows);
        pc_free(x->uri);
        pc_free(x);
    }
    meta_free_compl(m);
    memset(m, 0, sizeof *m);
}

/* ---- apply ------------------------------------------------------------------------------ */

#define fail meta_fail

void meta_fail(struct meta_result *res, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    res->status = status;
    vsnprintf(res->errmsg, sizeof res->errmsg, fmt, ap);
    va_end(ap);
}


static void put_u64_global(struct store_batch *b, const char *name, uint64_t v)
{
    uint8_t k[STORE_KEY_MAX], val[8];
    size_t kl = store_key_global(k, name);
    pc_be64_write(val, v);
    store_batch_put(b, STORE_CF_META, k, kl, val, 8);
}

static bool valid_name(const char *name, struct meta_result *res, const char *what)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || pc_utf8_count(name, n) > NAME_MAX_CHARS || !pc_utf8_valid(name, n)) {
        fail(res, PC_EINVAL, "%s name must be 1 to 256 characters of UTF-8", what);
        return false;
    }
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20) {
            fail(res, PC_EINVAL, "%s name must not contain control characters", what);
            return false;
        }
    return true;
}

static bool valid_description(const char *d, struct meta_result *res)
{
    size_t n = d != NULL ? strlen(d) : 0;
    if (n > DESC_MAX_BYTES || !pc_utf8_valid(d != NULL ? d : "", n)) {
        fail(res, PC_EINVAL, "%s", "description must be at most 4096 bytes of UTF-8");
        return false;
    }
    return true;
}

static void apply_category_put(struct meta *m, const struct meta_op *op, struct store_batch *b,
                               struct meta_result *res)
{
    const struct meta_category *in = &op->cat;
    if (!valid_name(in->name, res, "category") || !valid_description(in->description, res))
        return;
    struct meta_category *same = meta_category_by_name(m, in->name);
    if ((same != NULL && same->no != in->no) || meta_room_by_name(m, in->name) != NULL) {
        fail(res, PC_EEXIST, "the name '%s' is already used by a category or room", in->name);
        return;
    }
    struct meta_category *old = in->no != 0 ? meta_category_by_no(m, in->no) : NULL;
    if (in->no != 0 && old == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such category");
        return;
    }
    if (in->no == 0 && (in->guid[0] == '\0' || meta_category_by_guid(m, in->guid) != NULL)) {
        fail(res, PC_EINVAL, "%s", "a new category needs a fresh GUID");
        return;
    }
    struct meta_category *c = pc_calloc(1, sizeof *c);
    meta_category_copy(c, in);
    if (old != NULL) {
        memcpy(c->guid, old->guid, sizeof c->guid);
        category_unindex_free(m, old);
    } else {
        c->no = ++m->next_category_no;
        put_u64_global(b, "next_category_no", m->next_category_no);
    }
    category_index(m, c);
    struct pc_buf v = {0};
    meta_category_encode(c, &v);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_tag_u64(k, STORE_TAG_CATEGORY, c->no), v.data, v.len);
    pc_buf_free(&v);
    res->no = c->no;
}

static void apply_category_del(struct meta *m, const struct meta_op *op, struct store_batch *b,
                               struct meta_result *res)
{
    struct meta_category *c = meta_category_by_no(m, op->cat.no);
    if (c == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such category");
        return;
    }
    struct meta_room *r, *tmp;
    HASH_ITER(hh_no, m->rooms_by_no, r, tmp)
        if (r->category_no == c->no) {
            fail(res, PC_EBUSY, "category still holds rooms (e.g. '%s'); remove them first", r->name);
            return;
        }
    uint8_t k[STORE_KEY_MAX];
    store_batch_delete(b, STORE_CF_META, k, store_key_tag_u64(k, STORE_TAG_CATEGORY, c->no));
    category_unindex_free(m, c);
}

static void apply_room_put(struct meta *m, const struct meta_op *op, struct store_batch *b,
                           struct meta_result *res)
{
    const struct meta_room *in = &op->room;
    if (!valid_name(in->name, res, "room") || !valid_description(in->description, res))
        return;
    if (meta_category_by_no(m, in->category_no) == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such category");
        return;
    }
    struct meta_room *same = meta_room_by_name(m, in->name);
    if ((same != NULL && same->no != in->no) || meta_category_by_name(m, in->name) != NULL) {
        fail(res, PC_EEXIST, "the name '%s' is already used by a room or category", in->name);
        return;
    }
    struct meta_room *old = in->no != 0 ? meta_room_by_no(m, in->no) : NULL;
    if (in->no != 0 && old == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such room");
        return;
    }
    if (in->no == 0 && (strlen(in->guid) != PC_GUID_LEN - 1 || meta_room_by_guid(m, in->guid))) {
        fail(res, PC_EINVAL, "%s", "a new room needs a fresh GUID");
        return;
    }
    struct meta_room *r = pc_calloc(1, sizeof *r);
    meta_room_copy(r, in);
    pc_str_lower(r->guid);
    if (old != NULL) {
        /* Identity, origin and placement never change with an update. */
        memcpy(r->guid, old->guid, sizeof r->guid);
        r->shard = old->shard;
        r->created_us = old->created_us;
        pc_free(r->creator);
        r->creator = pc_strdup(old->creator);
        room_unindex_free(m, old);
    } else {
        r->no = ++m->next_room_no;
        r->shard = meta_shard_of(r->guid, m->shard_count);
        r->created_us = op->ts_us;
        pc_free(r->creator);
        r->creator = pc_strdup(op->actor);
        put_u64_global(b, "next_room_no", m->next_room_no);
    }
    room_index(m, r);
    struct pc_buf v = {0};
    meta_room_encode(r, &v);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_tag_u64(k, STORE_TAG_ROOM, r->no), v.data, v.len);
    pc_buf_free(&v);
    res->no = r->no;
}

static void apply_room_del(struct meta *m, const struct meta_op *op, struct store_batch *b,
                           struct meta_result *res)
{
    struct meta_room *r = meta_room_by_no(m, op->room.no);
    if (r == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such room");
        return;
    }
    uint8_t k[STORE_KEY_MAX];
    store_batch_delete(b, STORE_CF_META, k, store_key_tag_u64(k, STORE_TAG_ROOM, r->no));
    res->no = r->no;
    room_unindex_free(m, r);
}

static bool valid_user_uri(const char *uri)
{
    size_t n = uri != NULL ? strlen(uri) : 0;
    if (n < 7 || n >= STORE_URI_MAX || strncmp(uri, "sip:", 4) != 0)
        return false;
    const char *at = strchr(uri, '@');
    if (at == NULL || at == uri + 4 || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (const char *p = uri; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == '"' || *p == ';' ||
            *p == '&' || *p == ',')
            return false;
    return true;
}

static void apply_user_put(struct meta *m, const struct meta_op *op, struct store_batch *b,
                           struct meta_result *res)
{
    if (!valid_user_uri(op->user.uri)) {
        fail(res, PC_EINVAL, "'%s' is not a valid user URI (sip:user@domain)", op->user.uri ? op->user.uri : "");
        return;
    }
    struct meta_user *u = pc_calloc(1, sizeof *u);
    meta_user_copy(u, &op->user);
    struct meta_user *old = meta_user(m, u->uri);
    if (old != NULL) {
        HASH_DEL(m->users, old);
        meta_user_clear(old);
        pc_free(old);
    }
    user_index(m, u);
    struct pc_buf v = {0};
    meta_user_encode(u, &v);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_user(k, u->uri), v.data, v.len);
    pc_buf_free(&v);
}

static void apply_user_del(struct meta *m, const struct meta_op *op, struct store_batch *b,
                           struct meta_result *res)
{
    struct meta_user *u = meta_user(m, op->user.uri ? op->user.uri : "");
    if (u == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such user");
        return;
    }
    uint8_t k[STORE_KEY_MAX];
    store_batch_delete(b, STORE_CF_META, k, store_key_user(k, u->uri));
    HASH_DEL(m->users, u);
    meta_user_clear(u);
    pc_free(u);
}

static void apply_follow(struct meta *m, const struct meta_op *op, struct store_batch *b,
                         struct meta_result *res)
{
    if (meta_room_by_no(m, op->room_no) == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such room");
        return;
    }
    struct meta_user_extra *x = extra_get(m, op->target_user);
    size_t i = 0;
    while (i < x->n_follows && x->follows[i] < op->room_no)
        i++;
    bool present = i < x->n_follows && x->follows[i] == op->room_no;
    uint8_t k[STORE_KEY_MAX];
    size_t kl = store_key_user_room(k, STORE_TAG_FOLLOW, x->uri, op->room_no);
    if (op->flag && !present) {
        x->follows = pc_realloc(x->follows, (x->n_follows + 1) * sizeof *x->follows);
        memmove(x->follows + i + 1, x->follows + i, (x->n_follows - i) * sizeof *x->follows);
        x->follows[i] = op->room_no;
        x->n_follows++;
        store_batch_put(b, STORE_CF_META, k, kl, "", 0);
    } else if (!op->flag && present) {
        memmove(x->follows + i, x->follows + i + 1, (x->n_follows - i - 1) * sizeof *x->follows);
        x->n_follows--;
        store_batch_delete(b, STORE_CF_META, k, kl);
    }
}

static void encode_invite(const struct meta_invite *inv, struct pc_buf *v)
{
    pc_bin_put_u8(v, 1);
    pc_bin_put_uv(v, inv->room_no);
    pc_bin_put_str(v, inv->inviter);
    pc_bin_put_sv(v, inv->ts_us);
}

static void apply_invite(struct meta *m, const struct meta_op *op, struct store_batch *b,
                         struct meta_result *res)
{
    if (meta_room_by_no(m, op->room_no) == NULL) {
        fail(res, PC_ENOTFOUND, "%s", "no such room");
        return;
    }
    struct meta_user_extra *x = extra_get(m, op->target_user);
    x->invites = pc_realloc(x->invites, (x->n_invites + 1) * sizeof *x->invites);
    struct meta_invite *inv = &x->invites[x->n_invites++];
    inv->id = x->next_invite_id++;
    inv->room_no = op->room_no;
    inv->inviter = pc_strdup(op->actor);
    inv->ts_us = op->ts_us;
    struct pc_buf v = {0};
    encode_invite(inv, &v);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_user_room(k, STORE_TAG_INVITE, x->uri, inv->id),
                    v.data, v.len);
    pc_buf_free(&v);
    res->no = inv->id;
}

static void apply_init(struct meta *m, const struct meta_op *op, struct store_batch *b,
                       struct meta_result *res)
{
    if (m->domain[0] != '\0') {
        if (strcasecmp(m->domain, op->domain) != 0 || m->shard_count != op->shard_count)
            fail(res, PC_EEXIST, "pool already initialised for domain %s", m->domain);
        return;
    }
    pc_strlcpy(m->domain, op->domain, sizeof m->domain);
    m->shard_count = op->shard_count;
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_global(k, "domain"), m->domain, strlen(m->domain));
    put_u64_global(b, "shard_count", m->shard_count);
}

/* Membership is an operator's change of the pool: compare-and-set, so that two operators
 * changing it at once cannot silently undo each other. */
static void apply_nodes(struct meta *m, const struct meta_op *op, struct store_batch *b,
                        struct meta_result *res)
{
    if (strcmp(m->nodes, op->prev_nodes) != 0) {
        fail(res, PC_EBUSY, "the pool's membership changed meanwhile (now: %s); retry",
             m->nodes[0] ? m->nodes : "as created");
        return;
    }
    if (op->nodes[0] == '\0' || strchr(op->nodes, '=') == NULL) {
        fail(res, PC_EINVAL, "%s", "a pool needs at least one node");
        return;
    }
    pc_strlcpy(m->nodes, op->nodes, sizeof m->nodes);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_global(k, "nodes"), m->nodes, strlen(m->nodes));
}

static void apply_settings(struct meta *m, const struct meta_op *op, struct store_batch *b,
                           struct meta_result *res)
{
    const struct meta_settings *s = &op->settings;
    if (s->default_history > 500 || s->participant_update_limit > 1000000 ||
        s->max_file_kb > 4u * 1024 * 1024) {
        fail(res, PC_EINVAL, "%s", "settings out of range: default_history 1-500, "
             "participant_update_limit up to 1000000, max_file_kb up to 4194304");
        return;
    }
    m->settings = *s;
    struct pc_buf v = {0};
    meta_settings_encode(s, &v);
    uint8_t k[STORE_KEY_MAX];
    store_batch_put(b, STORE_CF_META, k, store_key_global(k, "settings"), v.data, v.len);
    pc_buf_free(&v);
}

/* Room changes are compliance events, written in the same batch as the change so that an
 * event exists exactly when its change does. */
static void room_event(struct meta *m, uint64_t index, const struct meta_op *op,
                       const struct meta_room *before, const struct meta_room *after,
                       struct store_batch *b)
{
    const struct meta_room *r = after != NULL ? after : before;
    struct compl_event ev = {.ts_us = op->ts_us, .node = op->node, .user = op->actor,
                             .room_no = r->no, .room_guid = r->guid, .room_name = r->name};
    uint32_t n = 0;
    if (before == NULL) {
        ev.type = COMPL_ROOM_CREATED;
        ev.content = meta_privacy_name(r->privacy);
        compl_event_put(b, m->compl_mask, 0, index, n++, &ev);
        return;
    }
    if (after == NULL) {
        ev.type = COMPL_ROOM_DELETED;
        ev.content = "";
        compl_event_put(b, m->compl_mask, 0, index, n++, &ev);
        return;
    }
    bool acl_changed = false;
    const struct meta_principals *pb[3] = {&before->managers, &before->members, &before->presenters};
    const struct meta_principals *pa[3] = {&after->managers, &after->members, &after->presenters};
    for (int i = 0; i < 3; i++) {
        if (pb[i]->n != pa[i]->n)
            acl_changed = true;
        for (size_t j = 0; !acl_changed && j < pa[i]->n; j++)
            if (!meta_principals_match(pb[i], pa[i]->items[j]) || strcmp(pa[i]->items[j], pb[i]->items[j]) != 0)
                acl_changed = true;
    }
    if (acl_changed) {
        ev.type = COMPL_MEMBERSHIP;
        ev.content = "members, managers or presenters changed";
        compl_event_put(b, m->compl_mask, 0, index, n++, &ev);
    }
    ev.type = COMPL_ROOM_CHANGED;
    ev.content = after->disabled && !before->disabled ? "disabled" : "properties changed";
    compl_event_put(b, m->compl_mask, 0, index, n++, &ev);
}

void meta_apply(struct meta *m, uint64_t index, const struct meta_op *op,
                struct store_batch *batch, struct meta_result *res)
{
    memset(res, 0, sizeof *res);
    struct meta_room before = {0};
    bool had_room = false;
    if (op->kind == META_OP_ROOM_PUT || op->kind == META_OP_ROOM_DEL) {
        const struct meta_room *old = op->room.no != 0 ? meta_room_by_no(m, op->room.no) : NULL;
        if (old != NULL) {
            meta_room_copy(&before, old);
            had_room = true;
        }
    }
    switch (op->kind) {
    case META_OP_CATEGORY_PUT: apply_category_put(m, op, batch, res); break;
    case META_OP_CATEGORY_DEL: apply_category_del(m, op, batch, res); break;
    case META_OP_ROOM_PUT: apply_room_put(m, op, batch, res); break;
    case META_OP_ROOM_DEL: apply_room_del(m, op, batch, res); break;
    case META_OP_USER_PUT: apply_user_put(m, op, batch, res); break;
    case META_OP_USER_DEL: apply_user_del(m, op, batch, res); break;
    case META_OP_FOLLOW: apply_follow(m, op, batch, res); break;
    case META_OP_INVITE: apply_invite(m, op, batch, res); break;
    case META_OP_INIT: apply_init(m, op, batch, res); break;
    case META_OP_NODES: apply_nodes(m, op, batch, res); break;
    case META_OP_SETTINGS: apply_settings(m, op, batch, res); break;
    case META_OP_COMPL_CURSOR: meta_apply_compl_cursor(m, op, batch, res); break;
    case META_OP_COMPL_FORGET: meta_apply_compl_forget(m, op, batch, res); break;
    default: fail(res, PC_EINVAL, "%s", "unknown metadata operation");
    }
    if (res->status == 0 && (op->kind == META_OP_ROOM_PUT || op->kind == META_OP_ROOM_DEL))
        room_event(m, index, op, had_room ? &before : NULL,
                   op->kind == META_OP_ROOM_PUT ? meta_room_by_no(m, res->no) : NULL, batch);
    meta_room_clear(&before);
    m->applied_index = index;
    uint8_t k[STORE_KEY_MAX], v[8];
    pc_be64_write(v, index);
    store_batch_put(batch, STORE_CF_STATE, k, store_key_applied(k, META_GROUP), v, 8);
}

/* ---- load ------------------------------------------------------------------------------- */

static uint64_t get_u64_global(struct store *st, const char *name)
{
    uint8_t k[STORE_KEY_MAX];
    struct pc_buf v = {0};
    uint64_t r = 0;
    if (store_get(st, STORE_CF_META, k, store_key_global(k, name), &v) == 0 && v.len == 8)
        r = pc_be64_read((const uint8_t *)v.data);
    pc_buf_free(&v);
    return r;
}

static int load_record(struct meta *m, struct pc_str key, struct pc_str val)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, val.p, val.len);
    const uint8_t *k = (const uint8_t *)key.p;
    switch (k[0]) {
    case STORE_TAG_CATEGORY: {
        struct meta_category *c = pc_calloc(1, sizeof *c);
        if (meta_category_decode(&r, c) != 0) {
            meta_category_clear(c);
            pc_free(c);
            return PC_ECORRUPT;
        }
        category_index(m, c);
        return 0;
    }
    case STORE_TAG_ROOM: {
        struct meta_room *rm = pc_calloc(1, sizeof *rm);
        if (meta_room_decode(&r, rm) != 0) {
            meta_room_clear(rm);
            pc_free(rm);
            return PC_ECORRUPT;
        }
        rm->name_key = pc_strdup(rm->name);
        pc_str_lower(rm->name_key);
        room_index(m, rm);
        return 0;
    }
    case STORE_TAG_USER: {
        struct meta_user *u = pc_calloc(1, sizeof *u);
        if (meta_user_decode(&r, u) != 0) {
            meta_user_clear(u);
            pc_free(u);
            return PC_ECORRUPT;
        }
        user_index(m, u);
        return 0;
    }
    case STORE_TAG_FOLLOW:
    case STORE_TAG_INVITE: {
        const char *nul = memchr(key.p + 1, '\0', key.len - 1);
        if (nul == NULL || (size_t)(key.p + key.len - nul) != 9)
            return PC_ECORRUPT;
        char *uri = pc_strndup(key.p + 1, (size_t)(nul - key.p - 1));
        uint64_t id = pc_be64_read((const uint8_t *)nul + 1);
        struct meta_user_extra *x = extra_get(m, uri);
        pc_free(uri);
        if (k[0] == STORE_TAG_FOLLOW) {
            x->follows = pc_realloc(x->follows, (x->n_follows + 1) * sizeof *x->follows);
            x->follows[x->n_follows++] = id; /* keys arrive sorted */
            return 0;
        }
        if (pc_bin_get_u8(&r) != 1)
            return PC_ECORRUPT;
        x->invites = pc_realloc(x->invites, (x->n_invites + 1) * sizeof *x->invites);
        struct meta_invite *inv = &x->invites[x->n_invites++];
        inv->id = id;
        inv->room_no = pc_bin_get_uv(&r);
        inv->inviter = pc_bin_get_str(&r, 255);
        inv->ts_us = pc_bin_get_sv(&r);
        if (id >= x->next_invite_id)
            x->next_invite_id = id + 1;
        return r.err;
    }
    case STORE_TAG_CURSOR:
        return meta_load_compl_cursor(m, key, val);
    default:
        return 0; /* globals are read separately */
    }
}

int meta_load(struct meta *m, struct store *st)
{
    memset(m, 0, sizeof *m);
    struct store_iter *it = store_iter_new(st, STORE_CF_META, NULL, 0, NULL, 0);
    int rc = 0;
    for (store_iter_first(it); store_iter_valid(it); store_iter_next(it)) {
        struct pc_str k = store_iter_key(it);
        if (k.len == 0)
            continue;
        rc = load_record(m, k, store_iter_value(it));
        if (rc != 0) {
            pc_error("meta: corrupt record with key tag '%c' in the metadata store", k.p[0]);
            break;
        }
    }
    if (rc == 0)
        rc = store_iter_status(it);
    store_iter_free(it);
    if (rc != 0) {
        meta_free(m);
        return rc;
    }
    m->next_category_no = get_u64_global(st, "next_category_no");
    m->next_room_no = get_u64_global(st, "next_room_no");
    m->shard_count = (uint32_t)get_u64_global(st, "shard_count");
    uint8_t k[STORE_KEY_MAX];
    struct pc_buf v = {0};
    if (store_get(st, STORE_CF_META, k, store_key_global(k, "domain"), &v) == 0)
        pc_strlcpy(m->domain, v.data, sizeof m->domain);
    pc_buf_reset(&v);
    if (store_get(st, STORE_CF_META, k, store_key_global(k, "nodes"), &v) == 0)
        pc_strlcpy(m->nodes, v.data, sizeof m->nodes);
    pc_buf_reset(&v);
    if (store_get(st, STORE_CF_META, k, store_key_global(k, "settings"), &v) == 0) {
        struct pc_bin_reader r;
        pc_bin_reader_init(&r, v.data, v.len);
        if (meta_settings_decode(&r, &m->settings) != 0)
            memset(&m->settings, 0, sizeof m->settings); /* the nodes' own files decide */
    }
    pc_buf_reset(&v);
    if (store_get(st, STORE_CF_STATE, k, store_key_applied(k, META_GROUP), &v) == 0 && v.len == 8)
        m->applied_index = pc_be64_read((const uint8_t *)v.data);
    pc_buf_free(&v);
    return 0;
}
