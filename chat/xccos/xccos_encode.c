/* XCCOS encoding: struct xccos_msg -> XML, written by hand into a pc_buf.
 *
 * The element shapes follow shared/protocol/XCCOS.md exactly (attribute order included),
 * because SIPE's reader is forgiving about XML but a byte-identical shape is what the
 * samples were verified against. No XML declaration: neither SIPE nor Lync sends one. */
#include "chat/xccos/xccos.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat/xccos/xccos_int.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

/* ---- escaping ------------------------------------------------------------------------ */

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Length of the valid UTF-8 character at p, or 0 if the bytes there are not one. */
static size_t utf8_char_len(const unsigned char *p, size_t left)
{
    size_t n;
    if (*p < 0x80)
        return 1;
    else if ((*p & 0xe0) == 0xc0)
        n = 2;
    else if ((*p & 0xf0) == 0xe0)
        n = 3;
    else if ((*p & 0xf8) == 0xf0)
        n = 4;
    else
        return 0;
    return n <= left && pc_utf8_valid((const char *)p, n) ? n : 0;
}

/* True if XML 1.0 can carry the character at all, escaped or not: not the C0 controls
 * other than TAB/LF/CR, and not U+FFFE/U+FFFF (valid UTF-8, but not XML characters). */
static bool xml_allowed(const unsigned char *p, size_t n)
{
    if (n == 1)
        return *p >= 0x20 || *p == '\t' || *p == '\n' || *p == '\r';
    return !(n == 3 && p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf));
}

/* The entity for a byte that must not appear literally, or NULL. CR is always escaped:
 * a literal CR would be folded into LF by the receiving parser. In attributes LF and TAB
 * are escaped too, since attribute-value normalisation turns them into spaces. */
static const char *entity_for(unsigned char c, bool attr)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&apos;";
    case '\r': return "&#13;";
    case '\n': return attr ? "&#10;" : NULL;
    case '\t': return attr ? "&#9;" : NULL;
    }
    return NULL;
}

/* Copies runs of harmless bytes in one append and replaces the rest one character at a
 * time; a byte that starts no valid character is replaced on its own. */
static void escape_n(struct pc_buf *out, const char *s, size_t len, bool attr)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *run = p; /* start of bytes not yet copied */
    size_t left = len;
    while (left > 0) {
        size_t n = utf8_char_len(p, left);
        const char *ent = n == 1 ? entity_for(*p, attr) : NULL;
        if (n > 0 && ent == NULL && xml_allowed(p, n)) {
            p += n;
            left -= n;
            continue;
        }
        pc_buf_append(out, run, (size_t)(p - run));
        pc_buf_puts(out, ent != NULL ? ent : replacement);
        size_t skip = n > 0 ? n : 1;
        p += skip;
        left -= skip;
        run = p;
    }
    pc_buf_append(out, run, (size_t)(p - run));
}

void xccos_escape(struct pc_buf *out, const char *s)
{
    if (s != NULL)
        escape_n(out, s, strlen(s), false);
}

void xccos_escape_attr(struct pc_buf *out, const char *s)
{
    if (s != NULL)
        escape_n(out, s, strlen(s), true);
}

/* ---- small writers -------------------------------------------------------------------- */

/* ` name="value"`, or nothing when value is NULL. */
static void put_attr(struct pc_buf *out, const char *name, const char *value)
{
    if (value == NULL)
        return;
    pc_buf_printf(out, " %s=\"", name);
    xccos_escape_attr(out, value);
    pc_buf_putc(out, '"');
}

static void put_attr_u64(struct pc_buf *out, const char *name, uint64_t v)
{
    if (v != 0)
        pc_buf_printf(out, " %s=\"%" PRIu64 "\"", name, v);
}

static void put_attr_ts(struct pc_buf *out, const char *name, int64_t us)
{
    if (us == 0)
        return;
    char iso[PC_ISO_LEN];
    pc_time_iso(us, iso);
    put_attr(out, name, iso);
}

/* `<name>text</name>`, always with both tags (SIPE wants a <chat> element even if empty). */
static void put_text_elem(struct pc_buf *out, const char *name, const char *text)
{
    pc_buf_printf(out, "<%s>", name);
    xccos_escape(out, text);
    pc_buf_printf(out, "</%s>", name);
}

/* Closes an element whose start tag ended at content_start (just after its '>'). An element
 * that received no content becomes self-closing, the form the samples use (<data/>). */
static void close_elem(struct pc_buf *out, size_t content_start, const char *name)
{
    if (out->len == content_start) {
        out->data[out->len - 1] = '/';
        pc_buf_putc(out, '>');
    } else {
        pc_buf_printf(out, "</%s>", name);
    }
}

/* `<cmd id="cmd:join" seqid="1">` and friends. */
static void open_op(struct pc_buf *out, const char *elem, const char *prefix,
                    const struct xccos_msg *m)
{
    pc_buf_printf(out, "<%s id=\"", elem);
    if (m->op == XCCOS_OP_UNKNOWN && m->op_name != NULL) {
        /* Keep the name the client sent, under this element's own prefix. */
        pc_buf_puts(out, prefix);
        xccos_escape_attr(out, xccos_id_name(m->op_name));
    } else {
        pc_buf_puts(out, prefix);
        pc_buf_puts(out, xccos_op_name(m->op));
    }
    pc_buf_putc(out, '"');
    put_attr(out, "seqid", m->seqid != NULL ? m->seqid : "1");
    pc_buf_putc(out, '>');
}

/* ---- commands ------------------------------------------------------------------------- */

static void put_chanids(struct pc_buf *out, const struct xccos_msg *m)
{
    for (size_t i = 0; i < m->n_chanids; i++) {
        /* key is the position in the list, as SIPE numbers it. */
        pc_buf_printf(out, "<chanid key=\"%zu\"", i);
        put_attr(out, "domain", m->chanids[i].domain);
        put_attr(out, "value", m->chanids[i].value);
        pc_buf_puts(out, "/>");
    }
}

static void put_chanib_uri(struct pc_buf *out, const char *uri)
{
    pc_buf_puts(out, "<chanib");
    put_attr(out, "uri", uri);
    pc_buf_puts(out, "/>");
}

static void put_cmd_data(struct pc_buf *out, const struct xccos_msg *m)
{
    switch (m->op) {
    case XCCOS_OP_GETSERVERINFO:
        pc_buf_puts(out, "<sib");
        put_attr(out, "domain", m->domain != NULL ? m->domain : m->server.domain);
        put_attr(out, "infoType", m->server.info_type);
        pc_buf_puts(out, "/>");
        break;
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN:
        put_chanids(out, m);
        break;
    case XCCOS_OP_PART:
        put_chanib_uri(out, m->chan_uri);
        break;
    case XCCOS_OP_BCCONTEXT:
        put_chanib_uri(out, m->chan_uri);
        pc_buf_puts(out, "<bcq><last");
        put_attr_u64(out, "cnt", m->history_count);
        put_attr_u64(out, "msgid", m->history_before);
        pc_buf_puts(out, "/></bcq>");
        break;
    case XCCOS_OP_GETINV:
        pc_buf_puts(out, "<inv inviteId=\"1\"");
        put_attr(out, "domain", m->domain);
        pc_buf_puts(out, "/>");
        break;
    case XCCOS_OP_CHANSRCH:
        pc_buf_puts(out, "<qib");
        put_attr(out, "qtype", m->query_type != NULL ? m->query_type : "BYNAME");
        put_attr(out, "criteria", m->query != NULL ? m->query : "");
        put_attr(out, "extended", m->query_extended ? "true" : "false");
        pc_buf_puts(out, "/>");
        break;
    case XCCOS_OP_GETASSOCIATIONS:
        pc_buf_puts(out, "<assoc");
        put_attr(out, "role", m->assoc_kind != NULL ? m->assoc_kind : "member");
        pc_buf_puts(out, "/>");
        break;
    default:
        break;
    }
}

/* ---- replies -------------------------------------------------------------------------- */

static void put_user(struct pc_buf *out, const struct xccos_user *u)
{
    pc_buf_puts(out, "<uib");
    put_attr(out, "id", u->id);
    put_attr(out, "uri", u->uri);
    pc_buf_puts(out, "/>");
}

/* An aib naming the users of one role; an empty list is left out, since SIPE would add an
 * empty nick for it. */
static void put_aib(struct pc_buf *out, int key, const char *ids)
{
    if (ids == NULL || ids[0] == '\0')
        return;
    pc_buf_printf(out, "<aib key=\"%d\"", key);
    put_attr(out, "value", ids);
    pc_buf_puts(out, "/>");
}

/* rpl:join / rpl:bjoin room: who is in it, by uib id. */
static void put_room_joined(struct pc_buf *out, const struct xccos_room *r)
{
    pc_buf_puts(out, "<chanib");
    put_attr(out, "uri", r->uri);
    put_attr(out, "name", r->name);
    put_attr(out, "topic", r->topic);
    pc_buf_putc(out, '>');
    size_t start = out->len;
    put_aib(out, XCCOS_AIB_MEMBER, r->member_ids);
    put_aib(out, XCCOS_AIB_MANAGER, r->manager_ids);
    close_elem(out, start, "chanib");
}

static void put_info(struct pc_buf *out, const char *elem, const char *id, const char *value)
{
    pc_buf_printf(out, "<%s", elem);
    put_attr(out, "id", id);
    pc_buf_putc(out, '>');
    xccos_escape(out, value);
    pc_buf_printf(out, "</%s>", elem);
}

/* rpl:chansrch / rpl:getassociations room: directory columns SIPE shows. */
static void put_room_listed(struct pc_buf *out, const struct xccos_room *r)
{
    char ucnt[24];
    snprintf(ucnt, sizeof ucnt, "%u", r->user_count);
    pc_buf_puts(out, "<chanib");
    put_attr(out, "uri", r->uri);
    put_attr(out, "name", r->name);
    put_attr(out, "description", r->description);
    pc_buf_putc(out, '>');
    put_info(out, "info", XCCOS_INFO_UCNT, ucnt);
    put_info(out, "info", XCCOS_INFO_VISIBILITY, r->is_private ? "private" : "public");
    put_info(out, "prop", XCCOS_PROP_FILEPOST, r->filepost ? "true" : "false");
    put_info(out, "prop", XCCOS_PROP_INVITE, r->invite ? "true" : "false");
    put_info(out, "prop", XCCOS_PROP_LOGGED, r->logged ? "true" : "false");
    pc_buf_puts(out, "</chanib>");
}

/* Attributes shared by a live grpchat and a history msg. */
static void put_chat_attrs(struct pc_buf *out, const struct xccos_chat *c, const char *room_uri)
{
    put_attr(out, "chanUri", c->chan_uri != NULL ? c->chan_uri : room_uri);
    put_attr(out, "author", c->author);
    put_attr_ts(out, "ts", c->ts_us);
    put_attr_u64(out, "msgid", c->msg_id);
}

/* rpl:bccontext room: its messages, oldest first, each shaped like a live grpchat. */
static void put_room_history(struct pc_buf *out, const struct xccos_room *r)
{
    pc_buf_puts(out, "<chanib");
    put_attr(out, "uri", r->uri);
    pc_buf_putc(out, '>');
    size_t start = out->len;
    for (size_t i = 0; i < r->n_msgs; i++) {
        pc_buf_puts(out, "<msg id=\"grpchat\"");
        put_chat_attrs(out, &r->msgs[i], r->uri);
        pc_buf_putc(out, '>');
        put_text_elem(out, "chat", r->msgs[i].text);
        pc_buf_puts(out, "</msg>");
    }
    close_elem(out, start, "chanib");
}

static void put_failed(struct pc_buf *out, const struct xccos_failed *f)
{
    pc_buf_puts(out, "<fib");
    put_attr(out, "key", f->reason);
    put_attr(out, "domain", f->domain);
    put_attr(out, "value", f->value);
    pc_buf_puts(out, "/>");
}

static void put_invite(struct pc_buf *out, size_t index, const struct xccos_invite *v)
{
    pc_buf_printf(out, "<inv inviteId=\"%zu\"", index + 1);
    put_attr(out, "chanUri", v->chan_uri);
    put_attr(out, "name", v->name);
    put_attr(out, "inviter", v->inviter);
    put_attr_ts(out, "ts", v->ts_us);
    pc_buf_puts(out, "/>");
}

static void put_server_info(struct pc_buf *out, const struct xccos_server_info *s)
{
    pc_buf_puts(out, "<sib");
    put_attr(out, "infoType", s->info_type);
    put_attr_ts(out, "serverTime", s->server_time_us);
    put_attr_u64(out, "searchLimit", s->search_limit);
    put_attr_u64(out, "messageSizeLimit", s->message_size_limit);
    put_attr_u64(out, "storySizeLimit", s->story_size_limit);
    put_attr(out, "rootUri", s->root_uri);
    put_attr(out, "dbVersion", s->db_version);
    pc_buf_puts(out, "/>");
}

static void put_joined(struct pc_buf *out, const struct xccos_msg *m)
{
    for (size_t i = 0; i < m->n_users; i++)
        put_user(out, &m->users[i]);
    for (size_t i = 0; i < m->n_rooms; i++)
        put_room_joined(out, &m->rooms[i]);
    for (size_t i = 0; i < m->n_failed; i++)
        put_failed(out, &m->failed[i]);
}

static void put_rpl_data(struct pc_buf *out, const struct xccos_msg *m)
{
    switch (m->op) {
    case XCCOS_OP_REQURI:
        if (m->uri != NULL) {
            pc_buf_puts(out, "<uib");
            put_attr(out, "uri", m->uri);
            pc_buf_puts(out, "/>");
        }
        break;
    case XCCOS_OP_GETSERVERINFO:
        put_server_info(out, &m->server);
        break;
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN:
        put_joined(out, m);
        break;
    case XCCOS_OP_PART:
        for (size_t i = 0; i < m->n_rooms; i++)
            put_chanib_uri(out, m->rooms[i].uri);
        if (m->n_rooms == 0 && m->chan_uri != NULL)
            put_chanib_uri(out, m->chan_uri);
        break;
    case XCCOS_OP_CHANSRCH:
    case XCCOS_OP_GETASSOCIATIONS:
        for (size_t i = 0; i < m->n_rooms; i++)
            put_room_listed(out, &m->rooms[i]);
        break;
    case XCCOS_OP_BCCONTEXT:
        /* SIPE reads only the first chanib of a history reply. */
        if (m->n_rooms > 0)
            put_room_history(out, &m->rooms[0]);
        break;
    case XCCOS_OP_GETINV:
        for (size_t i = 0; i < m->n_invites; i++)
            put_invite(out, i, &m->invites[i]);
        break;
    default:
        break;
    }
}

static void put_resp(struct pc_buf *out, const struct xccos_msg *m)
{
    int code = m->resp_code != 0 ? m->resp_code : XCCOS_RESP_OK;
    const char *text = m->resp_text;
    if (text == NULL)
        text = code == XCCOS_RESP_OK ? XCCOS_RESP_OK_TEXT : "";
    pc_buf_printf(out, "<resp code=\"%d\">", code);
    xccos_escape(out, text);
    pc_buf_puts(out, "</resp>");
}

/* ---- notices -------------------------------------------------------------------------- */

/* ntc:join names the room by domain and id on an aib inside the user, unlike rpl:join. */
static void put_ntc_join(struct pc_buf *out, const struct xccos_presence *p)
{
    pc_buf_puts(out, "<uib");
    put_attr(out, "uri", p->user_uri);
    pc_buf_putc(out, '>');
    size_t start = out->len;
    if (p->chan_uri != NULL) {
        struct pc_str domain = {"", 0}, id = pc_str_c(p->chan_uri);
        /* Callers pass canonical URIs; anything else goes out whole as the value. */
        if (!xccos_chan_uri_parts(p->chan_uri, &domain, &id))
            id = pc_str_c(p->chan_uri);
        pc_buf_printf(out, "<aib key=\"%d\" domain=\"",
                      p->manager ? XCCOS_AIB_MANAGER : XCCOS_AIB_MEMBER);
        escape_n(out, domain.p, domain.len, true);
        pc_buf_puts(out, "\" value=\"");
        escape_n(out, id.p, id.len, true);
        pc_buf_puts(out, "\"/>");
    }
    close_elem(out, start, "uib");
}

static void put_ntc_part(struct pc_buf *out, const struct xccos_presence *p)
{
    pc_buf_puts(out, "<chanib");
    put_attr(out, "uri", p->chan_uri);
    pc_buf_putc(out, '>');
    size_t start = out->len;
    if (p->user_uri != NULL) {
        pc_buf_puts(out, "<uib");
        put_attr(out, "uri", p->user_uri);
        pc_buf_puts(out, "/>");
    }
    close_elem(out, start, "chanib");
}

static void put_ntc_data(struct pc_buf *out, const struct xccos_msg *m)
{
    switch (m->op) {
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN:
        put_ntc_join(out, &m->presence);
        break;
    case XCCOS_OP_PART:
        put_ntc_part(out, &m->presence);
        break;
    default:
        break;
    }
}

/* ---- envelope ------------------------------------------------------------------------- */

typedef void put_data_fn(struct pc_buf *out, const struct xccos_msg *m);

static void put_data(struct pc_buf *out, const struct xccos_msg *m, put_data_fn *fn)
{
    pc_buf_puts(out, "<data>");
    size_t start = out->len;
    fn(out, m);
    close_elem(out, start, "data");
}

static void put_grpchat(struct pc_buf *out, const struct xccos_msg *m)
{
    pc_buf_puts(out, "<grpchat id=\"grpchat\"");
    put_attr(out, "seqid", m->seqid != NULL ? m->seqid : "1");
    put_chat_attrs(out, &m->chat, NULL);
    pc_buf_putc(out, '>');
    put_text_elem(out, m->chat.story ? "story" : "chat", m->chat.text);
    pc_buf_puts(out, "</grpchat>");
}

void xccos_encode(const struct xccos_msg *m, struct pc_buf *out)
{
    pc_buf_puts(out, "<xccos ver=\"1\"");
    put_attr(out, "envid", m->envid != NULL ? m->envid : "0");
    pc_buf_puts(out, " xmlns=\"" XCCOS_NS "\">");
    switch (m->kind) {
    case XCCOS_KIND_CMD:
        open_op(out, "cmd", "cmd:", m);
        put_data(out, m, put_cmd_data);
        pc_buf_puts(out, "</cmd>");
        break;
    case XCCOS_KIND_RPL:
        open_op(out, "rpl", "rpl:", m);
        if (m->cmd_seqid != NULL || m->cmd_envid != NULL) {
            pc_buf_puts(out, "<commandid");
            put_attr(out, "seqid", m->cmd_seqid);
            put_attr(out, "envid", m->cmd_envid);
            pc_buf_puts(out, "/>");
        }
        put_resp(out, m);
        put_data(out, m, put_rpl_data);
        pc_buf_puts(out, "</rpl>");
        break;
    case XCCOS_KIND_NTC:
        open_op(out, "ntc", "ntc:", m);
        put_data(out, m, put_ntc_data);
        pc_buf_puts(out, "</ntc>");
        break;
    case XCCOS_KIND_GRPCHAT:
        put_grpchat(out, m);
        break;
    }
    pc_buf_puts(out, "</xccos>");
}
