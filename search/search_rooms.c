/* Which rooms a user may search: the ones whose history the user may read, decided by
 * chat_acl_check(CHAT_JOIN) exactly as for history over XCCOS. A secret room the user is
 * not in is answered as if it did not exist, named or not. */
#include "search/search_rooms.h"

#include <stdio.h>
#include <string.h>

#include "chat/chat_acl.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"

/* A room by name, or by its ma-chan://<domain>/<guid> URI. */
static const struct meta_room *find(const struct meta *m, const char *ref)
{
    if (strncmp(ref, "ma-chan://", 10) == 0) {
        const char *slash = strrchr(ref + 10, '/');
        return slash != NULL ? meta_room_by_guid(m, slash + 1) : NULL;
    }
    return meta_room_by_name(m, ref);
}

static void push(uint64_t **rooms, size_t *n, size_t *cap, uint64_t no)
{
    for (size_t i = 0; i < *n; i++)
        if ((*rooms)[i] == no)
            return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *rooms = pc_realloc(*rooms, *cap * sizeof **rooms);
    }
    (*rooms)[(*n)++] = no;
}

int search_rooms_for(const struct meta *m, const char *user, const char *refs, uint64_t **rooms,
                     size_t *n, char *err, size_t errlen)
{
    size_t cap = 0;
    *rooms = NULL;
    *n = 0;
    if (refs == NULL || refs[0] == '\0') {
        struct meta_room *r, *tmp;
        HASH_ITER(hh_no, m->rooms_by_no, r, tmp) {
            if (chat_acl_check(m, r, user, CHAT_JOIN, NULL) == 0)
                push(rooms, n, &cap, r->no);
        }
        if (*n == 0) {
            snprintf(err, errlen, "there is no room whose history you may read");
            return PC_ENOTFOUND;
        }
        return 0;
    }
    /* Named rooms: comma-separated. Every one must be readable, so that a typo is an error
     * rather than fewer results. */
    char ref[300];
    const char *p = refs;
    size_t named = 0;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof ref || ++named > SEARCH_ROOMS_NAMED_MAX) {
            snprintf(err, errlen, len == 0 ? "an empty room name in room=…"
                     : len >= sizeof ref ? "a room name in room=… is too long"
                     : "too many rooms named in room=… (at most %d)", SEARCH_ROOMS_NAMED_MAX);
            pc_free(*rooms);
            *rooms = NULL;
            *n = 0;
            return PC_EINVAL;
        }
        memcpy(ref, p, len);
        ref[len] = '\0';
        const char *why = NULL;
        const struct meta_room *r = find(m, ref);
        int rc = chat_acl_check(m, r, user, CHAT_JOIN, &why);
        if (rc != 0) {
            if (rc == PC_ENOTFOUND)
                snprintf(err, errlen, "no room named '%s'", ref);
            else
                snprintf(err, errlen, "you may not search room '%s': %s", ref,
                         why != NULL ? why : "not allowed");
            pc_free(*rooms);
            *rooms = NULL;
            *n = 0;
            return rc == PC_ENOTFOUND ? PC_ENOTFOUND : PC_EDENIED;
        }
        push(rooms, n, &cap, r->no);
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}
