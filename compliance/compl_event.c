#include "compliance/compl_event.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/pc_arena.h"
#include "common/pc_bin.h"
#include "common/pc_err.h"
#include "storage/store.h"
#include "storage/store_keys.h"

static const char *names[COMPL_TYPE_MAX] = {
    [COMPL_JOIN] = "JOIN",
    [COMPL_PART] = "PART",
    [COMPL_CHAT] = "CHAT",
    [COMPL_BACKCHAT] = "BACKCHAT",
    [COMPL_FILEUPLOAD] = "FILEUPLOAD",
    [COMPL_FILEDOWNLOAD] = "FILEDOWNLOAD",
    [COMPL_ROOM_CREATED] = "ROOMCREATED",
    [COMPL_ROOM_CHANGED] = "ROOMCHANGED",
    [COMPL_ROOM_DELETED] = "ROOMDELETED",
    [COMPL_MEMBERSHIP] = "MEMBERSHIP",
    [COMPL_MSG_REMOVED] = "MESSAGEREMOVED",
    [COMPL_MSG_REPLACED] = "MESSAGEREPLACED",
    [COMPL_PURGED] = "HISTORYPURGED",
};

const char *compl_type_name(enum compl_type t)
{
    return t > 0 && t < COMPL_TYPE_MAX ? names[t] : "UNKNOWN";
}

bool compl_classes_parse(const char *list, unsigned *mask)
{
    unsigned m = 0;
    char buf[512];
    if (strlen(list) >= sizeof buf)
        return false;
    memcpy(buf, list, strlen(list) + 1);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (strcasecmp(tok, "none") == 0)
            continue;
        if (strcasecmp(tok, "lync") == 0) {
            m |= COMPL_CLASSES_LYNC;
            continue;
        }
        if (strcasecmp(tok, "all") == 0) {
            m |= COMPL_CLASSES_ALL;
            continue;
        }
        bool found = false;
        for (int t = 1; t < COMPL_TYPE_MAX; t++)
            if (strcasecmp(tok, names[t]) == 0 ||
                (strcasecmp(tok, "post") == 0 && t == COMPL_CHAT) ||
                (strcasecmp(tok, "read") == 0 && t == COMPL_BACKCHAT)) {
                m |= COMPL_CLASS(t);
                found = true;
            }
        if (!found)
            return false;
    }
    *mask = m;
    return true;
}

void compl_event_encode(const struct compl_event *ev, struct pc_buf *out)
{
    pc_bin_put_u8(out, 1);
    pc_bin_put_u8(out, (uint8_t)ev->type);
    pc_bin_put_sv(out, ev->ts_us);
    pc_bin_put_str(out, ev->node);
    pc_bin_put_str(out, ev->user);
    pc_bin_put_uv(out, ev->room_no);
    pc_bin_put_str(out, ev->room_guid);
    pc_bin_put_str(out, ev->room_name);
    pc_bin_put_uv(out, ev->seq);
    pc_bin_put_str(out, ev->content);
}

static const char *get_str(struct pc_bin_reader *r, struct pc_arena *a)
{
    struct pc_str s = pc_bin_get_bytes(r);
    return pc_arena_strndup(a, s.p, s.len);
}

int compl_event_decode(const void *in, size_t len, struct compl_event *ev, struct pc_arena *a)
{
    struct pc_bin_reader r;
    pc_bin_reader_init(&r, in, len);
    memset(ev, 0, sizeof *ev);
    if (pc_bin_get_u8(&r) != 1)
        return PC_ECORRUPT;
    uint8_t t = pc_bin_get_u8(&r);
    if (t == 0 || t >= COMPL_TYPE_MAX)
        return PC_ECORRUPT;
    ev->type = (enum compl_type)t;
    ev->ts_us = pc_bin_get_sv(&r);
    ev->node = get_str(&r, a);
    ev->user = get_str(&r, a);
    ev->room_no = pc_bin_get_uv(&r);
    ev->room_guid = get_str(&r, a);
    ev->room_name = get_str(&r, a);
    ev->seq = pc_bin_get_uv(&r);
    ev->content = get_str(&r, a);
    if (r.err == 0 && !pc_bin_at_end(&r))
        r.err = PC_ECORRUPT;
    return r.err;
}

void compl_event_put(struct store_batch *b, unsigned mask, uint32_t group, uint64_t index,
                     uint32_t n, const struct compl_event *ev)
{
    if ((mask & COMPL_CLASS(ev->type)) == 0)
        return;
    uint8_t k[STORE_COMPL_KEY_LEN];
    store_key_compl(k, group, index, n);
    struct pc_buf v = {0};
    compl_event_encode(ev, &v);
    store_batch_put(b, STORE_CF_COMPL, k, sizeof k, v.data, v.len);
    pc_buf_free(&v);
}

void compl_event_id(uint32_t group, uint64_t index, uint32_t n, char *buf)
{
    snprintf(buf, 48, "%u-%llu-%u", group, (unsigned long long)index, n);
}
