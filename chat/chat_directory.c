/* Commands answered from the local metadata replica: requri, getserverinfo, chansrch,
 * getassociations, getinv. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "chat/chat_acl.h"
#include "chat/chat_int.h"
#include "common/pc_alloc.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

void chat_cmd_requri(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    (void)m;
    /* Every node serves every room, so the "channel server" is the pool URI itself. */
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    r.uri = cmd->s->svc->cfg.chat_uri;
    chat_send(cmd->s, &r);
    xccos_msg_free(&r);
}

void chat_cmd_getserverinfo(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    cmd->s->pushes_history = true;
    struct chat_service *svc = cmd->s->svc;
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    r.server.domain = svc->cfg.domain;
    r.server.info_type = m->server.info_type != NULL ? m->server.info_type : "123";
    r.server.server_time_us = pc_wall_us();
    r.server.search_limit = svc->cfg.search_limit;
    r.server.message_size_limit = svc->cfg.message_max_chars;
    r.server.story_size_limit = svc->cfg.story_max_chars;
    /* The root category and database version are stable for the pool. */
    r.server.root_uri = pc_arena_printf(&r.arena, "ma-cat://%s/00000000-0000-0000-0000-000000000000",
                                        svc->cfg.domain);
    r.server.db_version = "6ed1c3a0-1b64-4c4e-9f6d-70636861740a";
    chat_send(cmd->s, &r);
    xccos_msg_free(&r);
}

void chat_room_listing(struct chat_service *svc, const struct meta_room *rm, struct xccos_room *out,
                       struct pc_arena *a)
{
    const struct meta *meta = cluster_meta(svc->cl);
    const struct meta_category *cat = meta_category_by_no(meta, rm->category_no);
    out->uri = chat_room_uri(svc, rm, a);
    out->name = rm->name;
    out->description = rm->description;
    out->user_count = cluster_room_users(svc->cl, rm->no);
    /* "private" is what SIPE's Private column shows: rooms outsiders cannot enter. */
    out->is_private = rm->privacy != META_OPEN;
    out->filepost = cat != NULL && cat->file_upload;
    out->invite = rm->invitations && cat != NULL && cat->invitations;
    out->logged = cat == NULL || cat->chat_history;
}

/* Does the room match a chansrch criteria? Words must all appear (case-insensitive) in the
 * name, or also in the description when the client asked for an extended search. */
static bool matches(const struct meta_room *rm, const char *criteria, bool extended)
{
    char buf[512];
    if (criteria == NULL || criteria[0] == '\0')
        return true;
    if (!pc_strlcpy(buf, criteria, sizeof buf))
        return false;
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w != NULL; w = strtok_r(NULL, " \t", &save)) {
        if (!pc_str_icontains(rm->name, w) && !(extended && pc_str_icontains(rm->description, w)))
            return false;
    }
    return true;
}

void chat_cmd_chansrch(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    struct chat_service *svc = cmd->s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    size_t cap = meta_room_count(meta);
    if (cap > svc->cfg.search_limit)
        cap = svc->cfg.search_limit;
    r.rooms = pc_arena_alloc(&r.arena, (cap + 1) * sizeof *r.rooms);
    struct meta_room *rm, *tmp;
    HASH_ITER(hh_no, meta->rooms_by_no, rm, tmp) {
        if (r.n_rooms >= cap)
            break;
        /* Secret rooms stay invisible to non-members: same check as every other answer. */
        if (chat_acl_check(meta, rm, cmd->s->user, CHAT_SEE, NULL) != 0)
            continue;
        if (!matches(rm, m->query, m->query_extended))
            continue;
        chat_room_listing(svc, rm, &r.rooms[r.n_rooms++], &r.arena);
    }
    chat_send(cmd->s, &r);
    xccos_msg_free(&r);
}

void chat_cmd_getassociations(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    struct chat_service *svc = cmd->s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    bool managers = m->assoc_kind != NULL && strcasecmp(m->assoc_kind, "manager") == 0;
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    size_t cap = meta_room_count(meta);
    if (cap > svc->cfg.search_limit)
        cap = svc->cfg.search_limit;
    r.rooms = pc_arena_alloc(&r.arena, (cap + 1) * sizeof *r.rooms);
    struct meta_room *rm, *tmp;
    HASH_ITER(hh_no, meta->rooms_by_no, rm, tmp) {
        if (r.n_rooms >= cap)
            break;
        bool listed = managers ? chat_acl_is_manager(rm, cmd->s->user)
                               : chat_acl_is_member(rm, cmd->s->user);
        /* Listing by pattern ("*@domain") makes everyone a member: only explicit entries
         * count as associations, so compare against the user's own URI. */
        if (!listed || chat_acl_check(meta, rm, cmd->s->user, CHAT_SEE, NULL) != 0)
            continue;
        const struct meta_principals *p = managers ? &rm->managers : &rm->members;
        bool explicit_entry = false;
        for (size_t i = 0; i < p->n; i++)
            if (strcasecmp(p->items[i], cmd->s->user) == 0)
                explicit_entry = true;
        if (!managers && !explicit_entry)
            explicit_entry = chat_acl_is_manager(rm, cmd->s->user) ||
                             meta_principals_match(&rm->presenters, cmd->s->user);
        if (!explicit_entry)
            continue;
        chat_room_listing(svc, rm, &r.rooms[r.n_rooms++], &r.arena);
    }
    chat_send(cmd->s, &r);
    xccos_msg_free(&r);
}

void chat_cmd_getinv(struct chat_cmd *cmd, const struct xccos_msg *m)
{
    (void)m;
    struct chat_service *svc = cmd->s->svc;
    const struct meta *meta = cluster_meta(svc->cl);
    const struct meta_invite *inv[100];
    /* SIPE always asks from id 1 and ignores the answer; Lync asks from its last seen id.
     * Either way, pending invitations to rooms the user may still see are listed. */
    size_t n = meta_invites(meta, cmd->s->user, 0, inv, 100);
    struct xccos_msg r;
    chat_reply_init(cmd, &r);
    r.invites = pc_arena_alloc(&r.arena, (n + 1) * sizeof *r.invites);
    for (size_t i = 0; i < n; i++) {
        const struct meta_room *rm = meta_room_by_no(meta, inv[i]->room_no);
        if (rm == NULL || chat_acl_check(meta, rm, cmd->s->user, CHAT_SEE, NULL) != 0)
            continue;
        struct xccos_invite *x = &r.invites[r.n_invites++];
        x->chan_uri = chat_room_uri(svc, rm, &r.arena);
        x->name = rm->name;
        x->inviter = inv[i]->inviter;
        x->ts_us = inv[i]->ts_us;
    }
    chat_send(cmd->s, &r);
    xccos_msg_free(&r);
}
