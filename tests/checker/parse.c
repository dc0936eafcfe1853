/* pchat-check input: reads a client log or a node dump into the checker's model. */
#include "tests/checker/checker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FIELDS 5

__attribute__((format(printf, 3, 4)))
static bool bad(const struct file *f, unsigned long line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "pchat-check: %s:%lu: ", f->name, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return false;
}

/* Reads the whole file (or stdin for "-"), NUL-terminated; NULL with errno on failure. */
static char *slurp(const char *path, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size + 1 > cap)
        cap = (size_t)st.st_size + 1;
    char *buf = pc_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = pc_realloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            pc_free(buf);
            if (fd != STDIN_FILENO)
                close(fd);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Undoes \t \n \\ in place; false on any other backslash sequence. */
static bool unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r != '\0'; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        switch (r[1]) {
        case 't': *w++ = '\t'; break;
        case 'n': *w++ = '\n'; break;
        case '\\': *w++ = '\\'; break;
        default: return false;
        }
        r++;
    }
    *w = '\0';
    return true;
}

/* A seq field: decimal digits only. */
static bool parse_seq(const char *s, uint64_t *out)
{
    if (*s == '\0')
        return false;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static struct room *get_room(struct checker *ck, const char *name)
{
    struct room *r;
    HASH_FIND(hh, ck->rooms, name, strlen(name), r);
    if (r == NULL) {
        r = pc_calloc(1, sizeof(*r));
        r->name = name;
        r->ref = -1;
        HASH_ADD_KEYPTR(hh, ck->rooms, r->name, strlen(r->name), r);
        ck->nrooms++;
    }
    return r;
}

static struct event *add_event(struct client *c, enum ev_kind kind, unsigned long line,
                               struct room *room)
{
    c->ev = ck_grow(c->ev, &c->cap, c->nev + 1, sizeof(*c->ev));
    struct event *e = &c->ev[c->nev++];
    *e = (struct event){.kind = kind, .line = line, .room = room};
    return e;
}

static const char *const outcome_name[] = {"none", "A", "F", "U"};

static bool client_record(struct checker *ck, struct file *f, unsigned long line, char **fld,
                          int nf)
{
    struct client *c = f->client;
    char type = fld[0][0];
    struct post *p;
    switch (type) {
    case 'S': {
        if (nf != 4)
            return bad(f, line, "S needs 3 fields (room, msgid, text), has %d", nf - 1);
        if (fld[1][0] == '\0' || fld[2][0] == '\0')
            return bad(f, line, "S with an empty room or msgid");
        HASH_FIND(hh_id, c->by_id, fld[2], strlen(fld[2]), p);
        if (p != NULL)
            return bad(f, line, "msgid %s already sent at line %lu", fld[2], p->line);
        struct room *r = get_room(ck, fld[1]);
        HASH_FIND(hh_text, r->by_text, fld[3], strlen(fld[3]), p);
        if (p != NULL)
            return bad(f, line,
                       "text not unique in room %s: also sent by client %s msgid %s (%s:%lu)",
                       r->name, p->client->name, p->msgid, p->client->file->name, p->line);
        p = pc_calloc(1, sizeof(*p));
        p->client = c;
        p->room = r;
        p->msgid = fld[2];
        p->text = fld[3];
        p->line = line;
        HASH_ADD_KEYPTR(hh_id, c->by_id, p->msgid, strlen(p->msgid), p);
        HASH_ADD_KEYPTR(hh_text, r->by_text, p->text, strlen(p->text), p);
        ck->posts = ck_grow(ck->posts, &ck->posts_cap, ck->nposts + 1, sizeof(*ck->posts));
        ck->posts[ck->nposts++] = p;
        return true;
    }
    case 'A':
    case 'F':
    case 'U': {
        if (nf < 2 || nf > 3)
            return bad(f, line, "%c needs a msgid and at most one more field, has %d fields",
                       type, nf - 1);
        HASH_FIND(hh_id, c->by_id, fld[1], strlen(fld[1]), p);
        if (p == NULL)
            return bad(f, line, "%c for msgid '%s' that no earlier S sent", type, fld[1]);
        if (p->out != OUT_NONE)
            return bad(f, line, "msgid %s already has outcome %s at line %lu", p->msgid,
                       outcome_name[p->out], p->out_line);
        p->out_line = line;
        if (type == 'A') {
            p->out = OUT_ACKED;
            if (nf == 3 && fld[2][0] != '\0' && !parse_seq(fld[2], &p->ack_seq))
                return bad(f, line, "bad seq '%s'", fld[2]);
            if (p->ack_seq != 0)
                add_event(c, EV_ACK, line, p->room)->post = p;
        } else {
            p->out = type == 'F' ? OUT_REFUSED : OUT_UNKNOWN;
            p->reason = nf == 3 ? fld[2] : "";
        }
        return true;
    }
    case 'J':
        if (nf != 2 || fld[1][0] == '\0')
            return bad(f, line, "J needs exactly one field, a room");
        add_event(c, EV_JOIN, line, get_room(ck, fld[1]));
        return true;
    case 'R': {
        if (nf != 5)
            return bad(f, line, "R needs 4 fields (room, seq, author, text), has %d", nf - 1);
        uint64_t seq;
        if (fld[1][0] == '\0')
            return bad(f, line, "R with an empty room");
        if (!parse_seq(fld[2], &seq) || seq == 0)
            return bad(f, line, "bad seq '%s' (a positive integer)", fld[2]);
        struct event *e = add_event(c, EV_RECV, line, get_room(ck, fld[1]));
        e->seq = seq;
        e->author = fld[3];
        e->text = fld[4];
        ck->delivered++;
        return true;
    }
    case 'C':
    case 'N':
        return bad(f, line, "a second %c record: a file is one client log or one node dump",
                   type);
    case 'H':
        return bad(f, line, "H record in a client log");
    default:
        return bad(f, line, "unknown record type '%c'", type);
    }
}

static bool node_record(struct checker *ck, struct file *f, unsigned long line, char **fld,
                        int nf)
{
    char type = fld[0][0];
    if (type == 'C' || type == 'N')
        return bad(f, line, "a second %c record: a file is one client log or one node dump",
                   type);
    if (type != 'H')
        return bad(f, line, "%s record type '%c' in a node dump",
                   strchr("SAFUJR", type) != NULL ? "client" : "unknown", type);
    if (nf != 5)
        return bad(f, line, "H needs 4 fields (room, seq, author, text), has %d", nf - 1);
    uint64_t seq;
    if (fld[1][0] == '\0')
        return bad(f, line, "H with an empty room");
    if (!parse_seq(fld[2], &seq) || seq == 0)
        return bad(f, line, "bad seq '%s' (a positive integer)", fld[2]);
    struct room *r = get_room(ck, fld[1]);
    size_t idx = f->node->idx;
    if (r->nhist <= idx) {
        r->hist = pc_realloc(r->hist, (idx + 1) * sizeof(*r->hist));
        memset(r->hist + r->nhist, 0, (idx + 1 - r->nhist) * sizeof(*r->hist));
        r->nhist = idx + 1;
    }
    struct hist *h = &r->hist[idx];
    h->v = ck_grow(h->v, &h->cap, h->n + 1, sizeof(*h->v));
    h->v[h->n++] = (struct entry){.seq = seq, .author = fld[3], .text = fld[4], .line = line};
    return true;
}

static bool first_record(struct checker *ck, struct file *f, unsigned long line, char **fld,
                         int nf)
{
    char type = fld[0][0];
    if (type != 'C' && type != 'N')
        return bad(f, line, "the first record must be C <client> or N <node>, not '%c'", type);
    if (type == 'N' && (nf != 2 || fld[1][0] == '\0'))
        return bad(f, line, "N needs exactly one non-empty field");
    if (type == 'C' && (nf < 2 || nf > 3 || fld[1][0] == '\0' || (nf == 3 && fld[2][0] == '\0')))
        return bad(f, line, "C needs a client name and optionally its author (both non-empty)");
    if (type == 'C') {
        struct client *c;
        HASH_FIND(hh, ck->clients, fld[1], strlen(fld[1]), c);
        if (c != NULL)
            return bad(f, line, "client %s already has a log: %s", c->name, c->file->name);
        c = pc_calloc(1, sizeof(*c));
        c->name = fld[1];
        c->author = nf == 3 ? fld[2] : fld[1];
        c->file = f;
        HASH_ADD_KEYPTR(hh, ck->clients, c->name, strlen(c->name), c);
        ck->nclients++;
        f->client = c;
    } else {
        struct node *n;
        HASH_FIND(hh, ck->nodes_by_name, fld[1], strlen(fld[1]), n);
        if (n != NULL)
            return bad(f, line, "node %s already has a dump: %s", n->name, n->file->name);
        n = pc_calloc(1, sizeof(*n));
        n->name = fld[1];
        n->file = f;
        n->idx = ck->nnodes;
        HASH_ADD_KEYPTR(hh, ck->nodes_by_name, n->name, strlen(n->name), n);
        ck->nodes = ck_grow(ck->nodes, &ck->nodes_cap, ck->nnodes + 1, sizeof(*ck->nodes));
        ck->nodes[ck->nnodes++] = n;
        f->node = n;
    }
    return true;
}

bool ck_parse_file(struct checker *ck, const char *path)
{
    ck->files = pc_realloc(ck->files, (ck->nfiles + 1) * sizeof(*ck->files));
    struct file *f = pc_calloc(1, sizeof(*f));
    ck->files[ck->nfiles++] = f;
    f->name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    size_t len;
    f->buf = slurp(path, &len);
    if (f->buf == NULL)
        return bad(f, 0, "cannot read: %s", strerror(errno));

    char *p = f->buf, *end = f->buf + len;
    unsigned long line = 0;
    while (p < end) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl != NULL ? nl : end;
        *le = '\0';
        if ((size_t)(le - p) != strlen(p))
            return bad(f, line, "NUL byte in line");
        char *start = p;
        p = le + 1;
        if (*start == '\0' || *start == '#')
            continue;

        char *fld[MAX_FIELDS];
        int nf = 0;
        for (char *q = start;;) {
            if (nf == MAX_FIELDS)
                return bad(f, line, "too many fields (at most %d)", MAX_FIELDS);
            fld[nf++] = q;
            char *tab = strchr(q, '\t');
            if (tab == NULL)
                break;
            *tab = '\0';
            q = tab + 1;
        }
        if (strlen(fld[0]) != 1)
            return bad(f, line, "record type '%s' is not one letter", fld[0]);
        for (int i = 1; i < nf; i++)
            if (!unescape(fld[i]))
                return bad(f, line, "field %d: bad escape (only \\t \\n \\\\)", i + 1);

        bool ok;
        if (f->client == NULL && f->node == NULL)
            ok = first_record(ck, f, line, fld, nf);
        else if (f->client != NULL)
            ok = client_record(ck, f, line, fld, nf);
        else
            ok = node_record(ck, f, line, fld, nf);
        if (!ok)
            return false;
    }
    if (f->client == NULL && f->node == NULL)
        return bad(f, line, "no records: expected C <client> or N <node>");
    return true;
}
