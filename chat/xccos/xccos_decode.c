/* XCCOS decoding: untrusted bytes -> struct xccos_msg through a locked-down libxml2.
 *
 * Defence in layers, so that a mistake in one is caught by the next (each layer alone
 * was checked to refuse the DTD tests in tests/unit/test_xccos.c):
 *  1. before parsing: size, UTF-8, NUL bytes and any "<!DOCTYPE" are refused, so entity
 *     bombs and XXE never reach libxml2;
 *  2. while parsing: no entity substitution, no DTD loading, no network; a DOCTYPE that
 *     slipped through stops the parser at once; element count and depth are counted in
 *     SAX callbacks so a hostile document is cut off before its tree is built;
 *  3. after parsing: a document that still carries a DTD is refused.
 * The tree is then read the way SIPE reads XML (sipe-xml.c): element names case-sensitive,
 * attribute names and id values case-insensitive, namespace prefixes ignored below the
 * root, and an element's text is its direct character data. Every string is copied into
 * the message's arena so the libxml2 document can be freed before returning. */
#include "chat/xccos/xccos.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "chat/xccos/xccos_int.h"
#include "common/pc_err.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

/* NONET and no NOENT/DTDLOAD/DTDATTR/DTDVALID keep libxml2 from fetching or expanding
 * anything. IGNORE_ENC makes the forced "UTF-8" stick even if the document declares
 * another encoding, which is what makes the byte scan for "<!DOCTYPE" sound. NOCDATA
 * turns CDATA into plain text so <chat><![CDATA[…]]></chat> reads like SIPE's text. */
#define PARSE_OPTIONS                                                                       \
    (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC |     \
     XML_PARSE_NOCDATA)

#define WHY_LEN 160

/* ---- error text ----------------------------------------------------------------------- */

/* Formats into errmsg and makes it one printable line: libxml2 messages end in '\n' and
 * may quote bytes from the attacker's document. */
static void set_errmsg(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_errmsg(char *errmsg, size_t errlen, const char *fmt, ...)
{
    if (errmsg == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, errlen, fmt, ap);
    va_end(ap);
    size_t n = strlen(errmsg);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)errmsg[i] < 0x20 || errmsg[i] == 0x7f)
            errmsg[i] = ' ';
    while (n > 0 && errmsg[n - 1] == ' ')
        errmsg[--n] = '\0';
}

/* ---- parse-time guard ----------------------------------------------------------------- */

/* State for the SAX callbacks, reached through ctxt->_private (libxml2 never touches it). */
struct guard {
    const struct xccos_limits *lim;
    size_t elements;
    size_t depth;
    int rc;                 /* first limit or DTD violation; 0 if none */
    char why[WHY_LEN];      /* its description */
    char xml_err[WHY_LEN];  /* first error libxml2 reported */
    startElementNsSAX2Func start; /* libxml2's tree builder, which we wrap */
    endElementNsSAX2Func end;
};

static void guard_stop(xmlParserCtxtPtr ctxt, int rc, const char *why)
{
    struct guard *g = ctxt->_private;
    if (g->rc == 0) {
        g->rc = rc;
        pc_strlcpy(g->why, why, sizeof g->why);
    }
    xmlStopParser(ctxt);
}

static void on_start(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                     const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                     int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct guard *g = ctxt->_private;
    if (++g->elements > g->lim->max_elements) {
        guard_stop(ctxt, PC_ETOOBIG, "too many elements");
        return;
    }
    if (++g->depth > g->lim->max_depth) {
        guard_stop(ctxt, PC_ETOOBIG, "elements nested too deep");
        return;
    }
    g->start(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
             nb_defaulted, attributes);
}

static void on_end(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                   const xmlChar *uri)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct guard *g = ctxt->_private;
    g->depth--;
    g->end(ctx, localname, prefix, uri);
}

static void on_dtd(void *ctx, const xmlChar *name, const xmlChar *external_id,
                   const xmlChar *system_id)
{
    (void)name;
    (void)external_id;
    (void)system_id;
    guard_stop(ctx, PC_EPROTO, "DTD not allowed");
}

/* Keeps the first error for errmsg; installed per context so nothing reaches stderr and no
 * process-wide libxml2 handler is changed. */
static void on_xml_error(void *ctx, xmlErrorPtr err)
{
    xmlParserCtxtPtr ctxt = ctx;
    struct guard *g = ctxt->_private;
    if (err == NULL || err->level < XML_ERR_ERROR || g->xml_err[0] != '\0')
        return;
    snprintf(g->xml_err, sizeof g->xml_err, "line %d: %s", err->line,
             err->message != NULL ? err->message : "error");
}

/* ---- parsing -------------------------------------------------------------------------- */

static int precheck(const char *body, size_t len, const struct xccos_limits *lim,
                    char *errmsg, size_t errlen)
{
    if (body == NULL || len == 0) {
        set_errmsg(errmsg, errlen, "empty body");
        return PC_EPROTO;
    }
    if (len > lim->max_bytes || len > INT_MAX) {
        set_errmsg(errmsg, errlen, "body of %zu bytes exceeds the limit of %zu", len,
                   lim->max_bytes);
        return PC_ETOOBIG;
    }
    if (!pc_utf8_valid(body, len)) {
        set_errmsg(errmsg, errlen, "body is not valid UTF-8");
        return PC_EPROTO;
    }
    if (memchr(body, '\0', len) != NULL) {
        set_errmsg(errmsg, errlen, "body contains a NUL byte");
        return PC_EPROTO;
    }
    /* Also matches inside a comment or CDATA; no client writes that, so refusing is
     * cheaper than reasoning about where a DTD may hide. */
    if (memmem(body, len, "<!DOCTYPE", 9) != NULL) {
        set_errmsg(errmsg, errlen, "DTD not allowed");
        return PC_EPROTO;
    }
    return 0;
}

/* Installs the guard into a fresh context; false if this libxml2 lacks the SAX2 builder. */
static bool guard_install(xmlParserCtxtPtr ctxt, struct guard *g)
{
    xmlSAXHandlerPtr sax = ctxt->sax;
    if (sax == NULL || sax->initialized != XML_SAX2_MAGIC || sax->startElementNs == NULL ||
        sax->endElementNs == NULL)
        return false;
    g->start = sax->startElementNs;
    g->end = sax->endElementNs;
    sax->startElementNs = on_start;
    sax->endElementNs = on_end;
    sax->internalSubset = on_dtd;
    sax->externalSubset = on_dtd;
    sax->serror = on_xml_error;
    ctxt->_private = g;
    return true;
}

/* The parse verdict, in order of precedence: our own stop beats libxml2's complaint, since
 * a stopped parser may hand back a truncated but "well-formed" tree. */
static int parse_verdict(xmlParserCtxtPtr ctxt, const struct guard *g, xmlDocPtr doc,
                         char *errmsg, size_t errlen)
{
    if (g->rc != 0) {
        set_errmsg(errmsg, errlen, "%s", g->why);
        return g->rc;
    }
    if (doc == NULL || !ctxt->wellFormed) {
        set_errmsg(errmsg, errlen, "not well-formed XML: %s",
                   g->xml_err[0] != '\0' ? g->xml_err : "parse failed");
        return PC_EPROTO;
    }
    if (!ctxt->nsWellFormed) {
        set_errmsg(errmsg, errlen, "namespace error: %s", g->xml_err);
        return PC_EPROTO;
    }
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        set_errmsg(errmsg, errlen, "DTD not allowed");
        return PC_EPROTO;
    }
    return 0;
}

static int parse(const char *body, size_t len, const struct xccos_limits *lim,
                 xmlDocPtr *docp, char *errmsg, size_t errlen)
{
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        set_errmsg(errmsg, errlen, "libxml2 could not allocate a parser");
        return PC_ENOMEM;
    }
    struct guard g = {.lim = lim};
    if (!guard_install(ctxt, &g)) {
        xmlFreeParserCtxt(ctxt);
        set_errmsg(errmsg, errlen, "libxml2 has no SAX2 tree builder");
        return PC_ENOMEM;
    }
    /* "UTF-8" overrides any encoding declaration (see PARSE_OPTIONS). */
    xmlDocPtr doc = xmlCtxtReadMemory(ctxt, body, (int)len, NULL, "UTF-8", PARSE_OPTIONS);
    int rc = parse_verdict(ctxt, &g, doc, errmsg, errlen);
    xmlFreeParserCtxt(ctxt);
    if (rc != 0) {
        if (doc != NULL)
            xmlFreeDoc(doc);
        return rc;
    }
    *docp = doc;
    return 0;
}

/* ---- tree reading helpers ------------------------------------------------------------- */

struct dec {
    struct xccos_msg *msg;
    const struct xccos_limits *lim;
    char *errmsg;
    size_t errlen;
};

static int fail(struct dec *d, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct dec *d, int rc, const char *fmt, ...)
{
    char line[WHY_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    set_errmsg(d->errmsg, d->errlen, "%s", line);
    return rc;
}

static const char *name_of(const xmlNode *n)
{
    return (const char *)n->name;
}

/* Element names are case-sensitive, as in SIPE; prefixes are already stripped by libxml2. */
static bool is_elem(const xmlNode *n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && strcmp(name_of(n), name) == 0;
}

static xmlNode *first_elem(const xmlNode *parent, const char *name)
{
    if (parent == NULL)
        return NULL;
    for (xmlNode *c = parent->children; c != NULL; c = c->next)
        if (is_elem(c, name))
            return c;
    return NULL;
}

static size_t count_elems(const xmlNode *parent, const char *name)
{
    size_t n = 0;
    if (parent != NULL)
        for (xmlNode *c = parent->children; c != NULL; c = c->next)
            n += is_elem(c, name);
    return n;
}

/* Concatenates the text and CDATA nodes of a sibling list into the arena; an element's own
 * character data, or an attribute's value. Never NULL. */
static const char *text_of_nodes(struct dec *d, const xmlNode *first)
{
    size_t len = 0;
    for (const xmlNode *c = first; c != NULL; c = c->next)
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
            len += strlen((const char *)c->content);
    char *s = pc_arena_alloc(&d->msg->arena, len + 1);
    size_t off = 0;
    for (const xmlNode *c = first; c != NULL; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content) {
            size_t n = strlen((const char *)c->content);
            memcpy(s + off, c->content, n);
            off += n;
        }
    }
    s[off] = '\0';
    return s;
}

static const char *text_of(struct dec *d, const xmlNode *n)
{
    return text_of_nodes(d, n->children);
}

/* Attribute names are case-insensitive, as in SIPE. */
static const xmlAttr *find_attr(const xmlNode *n, const char *name)
{
    for (const xmlAttr *a = n->properties; a != NULL; a = a->next)
        if (strcasecmp((const char *)a->name, name) == 0)
            return a;
    return NULL;
}

/* The attribute's value copied into the arena; NULL when absent. */
static const char *attr(struct dec *d, const xmlNode *n, const char *name)
{
    const xmlAttr *a = find_attr(n, name);
    return a != NULL ? text_of_nodes(d, a->children) : NULL;
}

/* Parses a decimal string into [0, max]; a present but malformed value is a protocol error
 * rather than 0, so "cnt=abc" never silently means "default". */
static int parse_number(struct dec *d, const char *what, const char *s,
                        unsigned long long max, unsigned long long *out)
{
    if (!pc_parse_u64(s, 0, max, out))
        return fail(d, PC_EPROTO, "%s is not a number in range: \"%.40s\"", what, s);
    return 0;
}

/* Optional numeric attribute; *out is left alone when it is absent. */
static int attr_number(struct dec *d, const xmlNode *n, const char *name,
                       unsigned long long max, unsigned long long *out)
{
    const char *s = attr(d, n, name);
    return s != NULL ? parse_number(d, name, s, max, out) : 0;
}

static int attr_unsigned(struct dec *d, const xmlNode *n, const char *name, unsigned *out)
{
    unsigned long long v = *out;
    int rc = attr_number(d, n, name, UINT_MAX, &v);
    *out = (unsigned)v;
    return rc;
}

/* Timestamps are read leniently (see xccos.h): unparsable means absent. */
static int64_t attr_time(struct dec *d, const xmlNode *n, const char *name)
{
    const char *s = attr(d, n, name);
    int64_t us = 0;
    if (s == NULL || !pc_time_parse_iso(s, &us))
        return 0;
    return us;
}

static const char *required_attr(struct dec *d, const xmlNode *n, const char *name, int *rc)
{
    const char *v = attr(d, n, name);
    if (v == NULL && *rc == 0)
        *rc = fail(d, PC_EPROTO, "<%s> without %s", name_of(n), name);
    return v;
}

/* Allocates an arena array for n list entries after checking the list limit. */
static int list_alloc(struct dec *d, size_t n, size_t size, const char *what, void **out)
{
    *out = NULL;
    if (n > d->lim->max_list)
        return fail(d, PC_ETOOBIG, "%zu %s entries exceed the limit of %zu", n, what,
                    d->lim->max_list);
    if (n > 0)
        *out = pc_arena_alloc(&d->msg->arena, n * size);
    return 0;
}

/* ---- shared pieces -------------------------------------------------------------------- */

/* A live grpchat or a history <msg>. chanUri is required: without it nobody can tell
 * which room the line belongs to. author is optional because the server replaces it. */
static int decode_chat(struct dec *d, const xmlNode *n, struct xccos_chat *c)
{
    int rc = 0;
    c->chan_uri = required_attr(d, n, "chanUri", &rc);
    if (rc != 0)
        return rc;
    c->author = attr(d, n, "author");
    c->ts_us = attr_time(d, n, "ts");
    unsigned long long id = 0;
    rc = attr_number(d, n, "msgid", UINT64_MAX, &id);
    if (rc != 0)
        return rc;
    c->msg_id = id;
    /* A story (Lync's long post) carries its text in <story>; the server bounds it by
     * storySizeLimit, not messageSizeLimit, so which element it came in is kept. */
    const xmlNode *chat = first_elem(n, "chat");
    if (chat == NULL && (chat = first_elem(n, "story")) != NULL)
        c->story = true;
    if (chat == NULL)
        return fail(d, PC_EPROTO, "<%s> without <chat> or <story>", name_of(n));
    c->text = text_of(d, chat);
    return 0;
}

/* <info>/<prop> flags of a chansrch room; ids compared case-insensitively, as SIPE does. */
static int decode_room_flag(struct dec *d, const xmlNode *n, struct xccos_room *r)
{
    const char *id = attr(d, n, "id");
    const char *v = text_of(d, n);
    if (id == NULL)
        return 0;
    if (strcasecmp(id, XCCOS_INFO_UCNT) == 0) {
        unsigned long long cnt = 0;
        int rc = parse_number(d, "ucnt", v, UINT_MAX, &cnt);
        r->user_count = (unsigned)cnt;
        return rc;
    }
    /* SIPE matches only the misspelt id; the correct spelling costs nothing to accept. */
    if (strcasecmp(id, XCCOS_INFO_VISIBILITY) == 0 ||
        strcasecmp(id, "urn:parlano:ma:info:visibility") == 0)
        r->is_private = strcasecmp(v, "private") == 0;
    else if (strcasecmp(id, XCCOS_PROP_FILEPOST) == 0)
        r->filepost = strcasecmp(v, "true") == 0;
    else if (strcasecmp(id, XCCOS_PROP_INVITE) == 0)
        r->invite = strcasecmp(v, "true") == 0;
    else if (strcasecmp(id, XCCOS_PROP_LOGGED) == 0)
        r->logged = strcasecmp(v, "true") == 0;
    return 0;
}

/* aib key 12276 lists managers, any other key members (SIPE's reading). Several aibs of one
 * role are merged into one comma list. */
static void decode_room_aib(struct dec *d, const xmlNode *n, struct xccos_room *r)
{
    const char *key = attr(d, n, "key");
    const char *value = attr(d, n, "value");
    if (value == NULL || value[0] == '\0')
        return;
    bool manager = key != NULL && strcmp(key, "12276") == 0;
    const char **ids = manager ? &r->manager_ids : &r->member_ids;
    *ids = *ids == NULL ? value : pc_arena_printf(&d->msg->arena, "%s,%s", *ids, value);
}

/* <msg id="grpchat"> children of a bccontext room; SIPE compares that id case-sensitively
 * and skips other msgs, so do we. */
static bool is_history_msg(struct dec *d, const xmlNode *n)
{
    if (!is_elem(n, "msg"))
        return false;
    const char *id = attr(d, n, "id");
    return id != NULL && strcmp(id, "grpchat") == 0;
}

static int decode_room_history(struct dec *d, const xmlNode *n, struct xccos_room *r)
{
    size_t count = 0;
    for (const xmlNode *c = n->children; c != NULL; c = c->next)
        count += is_history_msg(d, c);
    int rc = list_alloc(d, count, sizeof *r->msgs, "msg", (void **)&r->msgs);
    for (const xmlNode *c = n->children; rc == 0 && c != NULL; c = c->next)
        if (is_history_msg(d, c))
            rc = decode_chat(d, c, &r->msgs[r->n_msgs++]);
    return rc;
}

/* One decoder for every <chanib> shape (join, chansrch, part, bccontext): each reply
 * simply leaves the other fields empty. */
static int decode_room(struct dec *d, const xmlNode *n, struct xccos_room *r)
{
    r->uri = attr(d, n, "uri");
    r->name = attr(d, n, "name");
    r->description = attr(d, n, "description");
    r->topic = attr(d, n, "topic");
    int rc = 0;
    for (const xmlNode *c = n->children; rc == 0 && c != NULL; c = c->next) {
        if (is_elem(c, "info") || is_elem(c, "prop"))
            rc = decode_room_flag(d, c, r);
        else if (is_elem(c, "aib"))
            decode_room_aib(d, c, r);
    }
    return rc != 0 ? rc : decode_room_history(d, n, r);
}

/* Reads the id and seqid of a cmd/rpl/ntc. The id is compared case-insensitively, as SIPE
 * does; an id we do not know is op UNKNOWN, not an error, so the server can answer
 * ERR_UNKNOWN_COMMAND instead of dropping the request. */
static int decode_op_header(struct dec *d, const xmlNode *n)
{
    struct xccos_msg *m = d->msg;
    int rc = 0;
    m->op_name = required_attr(d, n, "id", &rc);
    if (rc != 0)
        return rc;
    m->op = xccos_op_lookup(m->kind, xccos_id_name(m->op_name));
    m->seqid = attr(d, n, "seqid");
    return 0;
}

/* ---- commands ------------------------------------------------------------------------- */

static int decode_chanids(struct dec *d, const xmlNode *data)
{
    struct xccos_msg *m = d->msg;
    size_t count = count_elems(data, "chanid");
    if (count == 0)
        return fail(d, PC_EPROTO, "%s without <chanid>", m->op_name);
    int rc = list_alloc(d, count, sizeof *m->chanids, "chanid", (void **)&m->chanids);
    for (const xmlNode *c = data->children; rc == 0 && c != NULL; c = c->next) {
        if (!is_elem(c, "chanid"))
            continue;
        struct xccos_chanid *ch = &m->chanids[m->n_chanids++];
        ch->domain = required_attr(d, c, "domain", &rc);
        ch->value = required_attr(d, c, "value", &rc);
    }
    return rc;
}

/* part and bccontext name their room as <chanib uri=…/>. */
static int decode_cmd_room(struct dec *d, const xmlNode *data)
{
    const xmlNode *chanib = first_elem(data, "chanib");
    if (chanib == NULL)
        return fail(d, PC_EPROTO, "%s without <chanib>", d->msg->op_name);
    int rc = 0;
    d->msg->chan_uri = required_attr(d, chanib, "uri", &rc);
    return rc;
}

/* <bcq><last cnt="25" [msgid="1234"]/></bcq>; msgid is pchat's paging extension. */
static int decode_bccontext(struct dec *d, const xmlNode *data)
{
    int rc = decode_cmd_room(d, data);
    const xmlNode *last = first_elem(first_elem(data, "bcq"), "last");
    if (rc != 0 || last == NULL)
        return rc;
    rc = attr_unsigned(d, last, "cnt", &d->msg->history_count);
    unsigned long long before = 0;
    if (rc == 0)
        rc = attr_number(d, last, "msgid", UINT64_MAX, &before);
    d->msg->history_before = before;
    return rc;
}

/* True if any attribute value below n starts with "manag". The request's exact shape is
 * unknown (XCCOS-NOTES.md), so any spelling that says "manager" somewhere wins. */
static bool mentions_manager(struct dec *d, const xmlNode *n)
{
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        for (const xmlAttr *a = c->properties; a != NULL; a = a->next)
            if (strncasecmp(text_of_nodes(d, a->children), "manag", 5) == 0)
                return true;
        if (mentions_manager(d, c))
            return true;
    }
    return false;
}

static void decode_chansrch(struct dec *d, const xmlNode *data)
{
    const xmlNode *qib = first_elem(data, "qib");
    if (qib == NULL)
        return;
    d->msg->query_type = attr(d, qib, "qtype");
    d->msg->query = attr(d, qib, "criteria");
    const char *ext = attr(d, qib, "extended");
    d->msg->query_extended = ext != NULL && strcasecmp(ext, "true") == 0;
}

static void decode_getserverinfo(struct dec *d, const xmlNode *data)
{
    const xmlNode *sib = first_elem(data, "sib");
    if (sib == NULL)
        return;
    d->msg->domain = attr(d, sib, "domain");
    d->msg->server.domain = d->msg->domain;
    d->msg->server.info_type = attr(d, sib, "infoType");
}

static int decode_cmd(struct dec *d, const xmlNode *cmd)
{
    struct xccos_msg *m = d->msg;
    int rc = decode_op_header(d, cmd);
    if (rc != 0)
        return rc;
    /* SIPE always sends <data>, possibly empty; a missing one reads as empty. */
    const xmlNode *data = first_elem(cmd, "data");
    switch (m->op) {
    case XCCOS_OP_GETSERVERINFO:
        decode_getserverinfo(d, data);
        return 0;
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN:
        return decode_chanids(d, data);
    case XCCOS_OP_PART:
        return decode_cmd_room(d, data);
    case XCCOS_OP_BCCONTEXT:
        return decode_bccontext(d, data);
    case XCCOS_OP_GETINV: {
        const xmlNode *inv = first_elem(data, "inv");
        m->domain = inv != NULL ? attr(d, inv, "domain") : NULL;
        return 0;
    }
    case XCCOS_OP_CHANSRCH:
        decode_chansrch(d, data);
        return 0;
    case XCCOS_OP_GETASSOCIATIONS:
        m->assoc_kind = data != NULL && mentions_manager(d, data) ? "manager" : "member";
        return 0;
    default:
        return 0;
    }
}

/* ---- replies -------------------------------------------------------------------------- */

static int decode_users(struct dec *d, const xmlNode *data)
{
    struct xccos_msg *m = d->msg;
    int rc = list_alloc(d, count_elems(data, "uib"), sizeof *m->users, "uib",
                        (void **)&m->users);
    for (const xmlNode *c = data->children; rc == 0 && c != NULL; c = c->next) {
        if (!is_elem(c, "uib"))
            continue;
        struct xccos_user *u = &m->users[m->n_users++];
        u->id = attr(d, c, "id");
        u->uri = attr(d, c, "uri");
    }
    return rc;
}

static int decode_rooms(struct dec *d, const xmlNode *data)
{
    struct xccos_msg *m = d->msg;
    int rc = list_alloc(d, count_elems(data, "chanib"), sizeof *m->rooms, "chanib",
                        (void **)&m->rooms);
    for (const xmlNode *c = data->children; rc == 0 && c != NULL; c = c->next)
        if (is_elem(c, "chanib"))
            rc = decode_room(d, c, &m->rooms[m->n_rooms++]);
    return rc;
}

static int decode_failed(struct dec *d, const xmlNode *data)
{
    struct xccos_msg *m = d->msg;
    int rc = list_alloc(d, count_elems(data, "fib"), sizeof *m->failed, "fib",
                        (void **)&m->failed);
    for (const xmlNode *c = data->children; rc == 0 && c != NULL; c = c->next) {
        if (!is_elem(c, "fib"))
            continue;
        struct xccos_failed *f = &m->failed[m->n_failed++];
        f->reason = attr(d, c, "key");
        f->domain = attr(d, c, "domain");
        f->value = attr(d, c, "value");
    }
    return rc;
}

static int decode_invites(struct dec *d, const xmlNode *data)
{
    struct xccos_msg *m = d->msg;
    int rc = list_alloc(d, count_elems(data, "inv"), sizeof *m->invites, "inv",
                        (void **)&m->invites);
    for (const xmlNode *c = data->children; rc == 0 && c != NULL; c = c->next) {
        if (!is_elem(c, "inv"))
            continue;
        struct xccos_invite *v = &m->invites[m->n_invites++];
        v->chan_uri = attr(d, c, "chanUri");
        v->name = attr(d, c, "name");
        v->inviter = attr(d, c, "inviter");
        v->ts_us = attr_time(d, c, "ts");
    }
    return rc;
}

static int decode_server_info(struct dec *d, const xmlNode *data)
{
    const xmlNode *sib = first_elem(data, "sib");
    if (sib == NULL)
        return 0;
    struct xccos_server_info *s = &d->msg->server;
    s->info_type = attr(d, sib, "infoType");
    s->server_time_us = attr_time(d, sib, "serverTime");
    s->root_uri = attr(d, sib, "rootUri");
    s->db_version = attr(d, sib, "dbVersion");
    int rc = attr_unsigned(d, sib, "searchLimit", &s->search_limit);
    if (rc == 0)
        rc = attr_unsigned(d, sib, "messageSizeLimit", &s->message_size_limit);
    if (rc == 0)
        rc = attr_unsigned(d, sib, "storySizeLimit", &s->story_size_limit);
    return rc;
}

/* Every list a reply can carry is read whatever the op; replies that do not use a list
 * simply have none. Only the per-op conveniences (uri, chan_uri) depend on the op. */
static int decode_rpl_data(struct dec *d, const xmlNode *data)
{
    struct xccos_msg *m = d->msg;
    int rc = decode_users(d, data);
    if (rc == 0)
        rc = decode_rooms(d, data);
    if (rc == 0)
        rc = decode_failed(d, data);
    if (rc == 0)
        rc = decode_invites(d, data);
    if (rc == 0)
        rc = decode_server_info(d, data);
    if (rc != 0)
        return rc;
    if (m->op == XCCOS_OP_REQURI && m->n_users > 0)
        m->uri = m->users[0].uri;
    if (m->op == XCCOS_OP_PART && m->n_rooms > 0)
        m->chan_uri = m->rooms[0].uri;
    return 0;
}

static int decode_rpl(struct dec *d, const xmlNode *rpl)
{
    struct xccos_msg *m = d->msg;
    int rc = decode_op_header(d, rpl);
    if (rc != 0)
        return rc;
    const xmlNode *cid = first_elem(rpl, "commandid");
    if (cid != NULL) {
        m->cmd_seqid = attr(d, cid, "seqid");
        m->cmd_envid = attr(d, cid, "envid");
    }
    const xmlNode *resp = first_elem(rpl, "resp");
    if (resp != NULL) {
        unsigned long long code = 0;
        rc = attr_number(d, resp, "code", 999, &code);
        m->resp_code = (int)code;
        m->resp_text = text_of(d, resp);
    }
    const xmlNode *data = first_elem(rpl, "data");
    if (rc == 0 && data != NULL)
        rc = decode_rpl_data(d, data);
    return rc;
}

/* ---- notices and chat ----------------------------------------------------------------- */

/* ntc:join: <uib uri=U><aib key=K domain=D value=ID/></uib>; only the first user and room
 * are kept, which is all the server ever sends per notice. */
static int decode_ntc_join(struct dec *d, const xmlNode *data)
{
    struct xccos_presence *p = &d->msg->presence;
    const xmlNode *uib = first_elem(data, "uib");
    const xmlNode *aib = first_elem(uib, "aib");
    if (uib == NULL || aib == NULL)
        return fail(d, PC_EPROTO, "ntc:join without <uib><aib>");
    int rc = 0;
    p->user_uri = required_attr(d, uib, "uri", &rc);
    const char *domain = required_attr(d, aib, "domain", &rc);
    const char *value = required_attr(d, aib, "value", &rc);
    if (rc != 0)
        return rc;
    p->chan_uri = pc_arena_printf(&d->msg->arena, XCCOS_CHAN_PREFIX "%s/%s", domain, value);
    const char *key = attr(d, aib, "key");
    p->manager = key != NULL && strcmp(key, "12276") == 0;
    return 0;
}

/* ntc:part: <chanib uri=C><uib uri=U/></chanib>. */
static int decode_ntc_part(struct dec *d, const xmlNode *data)
{
    struct xccos_presence *p = &d->msg->presence;
    const xmlNode *chanib = first_elem(data, "chanib");
    const xmlNode *uib = first_elem(chanib, "uib");
    if (chanib == NULL || uib == NULL)
        return fail(d, PC_EPROTO, "ntc:part without <chanib><uib>");
    int rc = 0;
    p->chan_uri = required_attr(d, chanib, "uri", &rc);
    p->user_uri = required_attr(d, uib, "uri", &rc);
    return rc;
}

static int decode_ntc(struct dec *d, const xmlNode *ntc)
{
    int rc = decode_op_header(d, ntc);
    if (rc != 0)
        return rc;
    const xmlNode *data = first_elem(ntc, "data");
    switch (d->msg->op) {
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN:
        return decode_ntc_join(d, data);
    case XCCOS_OP_PART:
        return decode_ntc_part(d, data);
    default:
        return 0;
    }
}

/* SIPE does not check the id of a grpchat element, so neither do we. */
static int decode_grpchat(struct dec *d, const xmlNode *n)
{
    d->msg->op = XCCOS_OP_GRPCHAT;
    d->msg->op_name = attr(d, n, "id");
    d->msg->seqid = attr(d, n, "seqid");
    return decode_chat(d, n, &d->msg->chat);
}

/* ---- envelope ------------------------------------------------------------------------- */

static enum xccos_kind kind_of(const xmlNode *n)
{
    if (is_elem(n, "cmd"))
        return XCCOS_KIND_CMD;
    if (is_elem(n, "rpl"))
        return XCCOS_KIND_RPL;
    if (is_elem(n, "ntc"))
        return XCCOS_KIND_NTC;
    if (is_elem(n, "grpchat"))
        return XCCOS_KIND_GRPCHAT;
    return 0;
}

/* Finds the one cmd/rpl/ntc/grpchat child. Unknown siblings are ignored for forward
 * compatibility; two payloads are refused because a message holds exactly one. */
static int find_payload(struct dec *d, const xmlNode *root, const xmlNode **payload)
{
    *payload = NULL;
    for (const xmlNode *c = root->children; c != NULL; c = c->next) {
        enum xccos_kind k = kind_of(c);
        if (k == 0)
            continue;
        if (*payload != NULL)
            return fail(d, PC_EPROTO, "envelope holds both <%s> and <%s>",
                        name_of(*payload), name_of(c));
        *payload = c;
        d->msg->kind = k;
    }
    if (*payload == NULL)
        return fail(d, PC_EPROTO, "envelope holds no cmd, rpl, ntc or grpchat");
    return 0;
}

static int decode_root(struct dec *d, const xmlNode *root)
{
    if (root == NULL || !is_elem(root, "xccos"))
        return fail(d, PC_EPROTO, "root element is <%.40s>, not <xccos>",
                    root != NULL ? name_of(root) : "");
    if (root->ns != NULL && root->ns->href != NULL &&
        strcmp((const char *)root->ns->href, XCCOS_NS) != 0)
        return fail(d, PC_EPROTO, "root element in namespace \"%.60s\"",
                    (const char *)root->ns->href);
    d->msg->envid = attr(d, root, "envid");
    const xmlNode *payload;
    int rc = find_payload(d, root, &payload);
    if (rc != 0)
        return rc;
    switch (d->msg->kind) {
    case XCCOS_KIND_CMD:
        return decode_cmd(d, payload);
    case XCCOS_KIND_RPL:
        return decode_rpl(d, payload);
    case XCCOS_KIND_NTC:
        return decode_ntc(d, payload);
    case XCCOS_KIND_GRPCHAT:
        return decode_grpchat(d, payload);
    }
    return fail(d, PC_EPROTO, "unknown payload");
}

/* Zero fields take their defaults, so a caller can tighten one limit alone. */
static struct xccos_limits effective_limits(const struct xccos_limits *l)
{
    struct xccos_limits e = xccos_default_limits;
    if (l != NULL) {
        e.max_bytes = l->max_bytes != 0 ? l->max_bytes : e.max_bytes;
        e.max_elements = l->max_elements != 0 ? l->max_elements : e.max_elements;
        e.max_depth = l->max_depth != 0 ? l->max_depth : e.max_depth;
        e.max_list = l->max_list != 0 ? l->max_list : e.max_list;
    }
    return e;
}

int xccos_decode(const char *body, size_t len, const struct xccos_limits *limits,
                 struct xccos_msg *out, char *errmsg, size_t errlen)
{
    struct xccos_limits lim = effective_limits(limits);
    memset(out, 0, sizeof *out);
    set_errmsg(errmsg, errlen, "%s", "");
    int rc = precheck(body, len, &lim, errmsg, errlen);
    xmlDocPtr doc = NULL;
    if (rc == 0)
        rc = parse(body, len, &lim, &doc, errmsg, errlen);
    if (rc == 0) {
        struct dec d = {.msg = out, .lim = &lim, .errmsg = errmsg, .errlen = errlen};
        rc = decode_root(&d, xmlDocGetRootElement(doc));
        xmlFreeDoc(doc);
    }
    if (rc != 0)
        xccos_msg_free(out);
    return rc;
}
