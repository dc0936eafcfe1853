/* pchat-check: the four checks over the parsed logs (see main.c's usage text). */
#include "tests/checker/checker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NOT_FOUND SIZE_MAX

/* A text for a message: quoted, escaped as in the logs, cut after ~140 bytes. Four rotating
 * buffers, so up to four may appear in one printf. */
static const char *show(const char *s)
{
    static char bufs[4][160];
    static unsigned k;
    char *b = bufs[k++ % 4];
    size_t w = 0;
    b[w++] = '"';
    for (; *s != '\0' && w < 140; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\t' || c == '\n' || c == '\\') {
            b[w++] = '\\';
            b[w++] = c == '\t' ? 't' : c == '\n' ? 'n' : '\\';
        } else if (c < 0x20 || c == 0x7f) {
            w += (size_t)snprintf(b + w, 5, "\\x%02x", c);
        } else {
            b[w++] = (char)c;
        }
    }
    if (*s != '\0') {
        memcpy(b + w, "...", 3);
        w += 3;
    }
    b[w++] = '"';
    b[w] = '\0';
    return b;
}

/* Prints one violation; returns true if checking should stop there. */
__attribute__((format(printf, 4, 5)))
static bool violation(struct checker *ck, const struct file *f, unsigned long line,
                      const char *fmt, ...)
{
    va_list ap;
    fputs("pchat-check: VIOLATION: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" (%s:%lu)\n", f->name, line);
    ck->violations++;
    return !ck->all;
}

static const struct hist *hist_of(const struct room *r, size_t node)
{
    return node < r->nhist ? &r->hist[node] : NULL;
}

static const struct hist *ref_hist(const struct room *r)
{
    return r->ref >= 0 ? &r->hist[r->ref] : NULL;
}

/* Index of seq in an ascending history, or NOT_FOUND. */
static size_t find_seq(const struct hist *h, uint64_t seq)
{
    if (h == NULL)
        return NOT_FOUND;
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (h->v[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < h->n && h->v[lo].seq == seq ? lo : NOT_FOUND;
}

void ck_index(struct checker *ck)
{
    /* The reference history of a room: most messages, then highest last seq, then first. */
    for (struct room *r = ck->rooms; r != NULL; r = r->hh.next) {
        for (size_t i = 0; i < r->nhist; i++) {
            const struct hist *h = &r->hist[i], *best = ref_hist(r);
            if (h->n == 0)
                continue;
            if (best == NULL || h->n > best->n ||
                (h->n == best->n && h->v[h->n - 1].seq > best->v[best->n - 1].seq))
                r->ref = (long)i;
        }
    }
    for (size_t i = 0; i < ck->nnodes; i++) {
        for (struct room *r = ck->rooms; r != NULL; r = r->hh.next) {
            const struct hist *h = hist_of(r, i);
            for (size_t k = 0; h != NULL && k < h->n; k++) {
                struct entry *e = &h->v[k];
                struct post *p;
                HASH_FIND(hh_text, r->by_text, e->text, strlen(e->text), p);
                e->post = p;
                if (p == NULL)
                    continue;
                if (p->mark != i + 1) {
                    p->mark = i + 1;
                    p->nodes_present++;
                    if (r->ref == (long)i)
                        p->ref_entry = e;
                } else {
                    e->dup_of = p->last_seen;
                }
                p->last_seen = e;
            }
        }
    }
    for (size_t k = 0; k < ck->nposts; k++) {
        struct post *p = ck->posts[k];
        p->mark = 0;
        p->last_seen = NULL;
        switch (p->out) {
        case OUT_ACKED: ck->acked++; break;
        case OUT_REFUSED: ck->refused++; break;
        case OUT_NONE:
        case OUT_UNKNOWN:
            ck->unknown++;
            if (p->nodes_present > 0)
                ck->committed_unknown++;
            break;
        }
    }
}

/* 1. Acked posts in every node's history exactly once, refused in none, others at most once. */
static bool check_posts(struct checker *ck)
{
    for (size_t i = 0; i < ck->nnodes; i++) {
        const struct node *nd = ck->nodes[i];
        for (struct room *r = ck->rooms; r != NULL; r = r->hh.next) {
            const struct hist *h = hist_of(r, i);
            for (size_t k = 0; h != NULL && k < h->n; k++) {
                const struct entry *e = &h->v[k];
                struct post *p = e->post;
                if (p == NULL)
                    continue;
                p->mark = i + 1;
                if (p->out == OUT_REFUSED && e->dup_of == NULL &&
                    violation(ck, nd->file, e->line,
                              "refused post committed: client %s msgid %s %s (refused at "
                              "%s:%lu%s%s) is seq %" PRIu64 " in node %s's history of room %s",
                              p->client->name, p->msgid, show(p->text), p->client->file->name,
                              p->out_line, *p->reason ? ": " : "", p->reason, e->seq, nd->name,
                              r->name))
                    return true;
                if (e->dup_of != NULL &&
                    violation(ck, nd->file, e->line,
                              "post committed twice: client %s msgid %s %s is seq %" PRIu64
                              " and seq %" PRIu64 " in node %s's history of room %s",
                              p->client->name, p->msgid, show(p->text), e->dup_of->seq, e->seq,
                              nd->name, r->name))
                    return true;
            }
        }
        for (size_t k = 0; k < ck->nposts; k++) {
            const struct post *p = ck->posts[k];
            if (p->out != OUT_ACKED || p->mark == i + 1)
                continue;
            if (ck->allow_lag && p->room->ref != (long)i)
                continue; /* a lagging node; check 2 proves it a prefix of the reference */
            if (violation(ck, p->client->file, p->out_line,
                          "acked post lost: client %s msgid %s %s is not in node %s's history "
                          "of room %s",
                          p->client->name, p->msgid, show(p->text), nd->name, p->room->name))
                return true;
        }
    }
    for (size_t k = 0; ck->allow_lag && ck->nnodes > 0 && k < ck->nposts; k++) {
        const struct post *p = ck->posts[k];
        if (p->out == OUT_ACKED && p->room->ref < 0 &&
            violation(ck, p->client->file, p->out_line,
                      "acked post lost: client %s msgid %s %s: no node has a history of room %s",
                      p->client->name, p->msgid, show(p->text), p->room->name))
            return true;
    }
    return false;
}

/* 2a. Each node's history of each room: strictly increasing seqs, no holes. */
static bool check_hist_order(struct checker *ck)
{
    for (size_t i = 0; i < ck->nnodes; i++) {
        const struct node *nd = ck->nodes[i];
        for (struct room *r = ck->rooms; r != NULL; r = r->hh.next) {
            const struct hist *h = hist_of(r, i);
            uint64_t prev = 0;
            for (size_t k = 0; h != NULL && k < h->n; k++) {
                const struct entry *e = &h->v[k];
                if (e->seq <= prev) {
                    if (violation(ck, nd->file, e->line,
                                  "history not in seq order: node %s room %s has seq %" PRIu64
                                  " after seq %" PRIu64,
                                  nd->name, r->name, e->seq, prev))
                        return true;
                    continue;
                }
                if (!ck->allow_gaps && e->seq != prev + 1) {
                    char range[48] = "";
                    if (e->seq - 1 > prev + 1)
                        snprintf(range, sizeof(range), "..%" PRIu64, e->seq - 1);
                    if (violation(ck, nd->file, e->line,
                                  "history gap: node %s room %s lacks seq %" PRIu64
                                  "%s (next is seq %" PRIu64 ")",
                                  nd->name, r->name, prev + 1, range, e->seq))
                        return true;
                }
                prev = e->seq;
            }
        }
    }
    return false;
}

/* 2b. All nodes' histories of a room equal the reference (or, with --allow-lag, a prefix). */
static bool check_hist_agree(struct checker *ck)
{
    for (struct room *r = ck->rooms; r != NULL; r = r->hh.next) {
        const struct hist *b = ref_hist(r);
        if (b == NULL)
            continue;
        const struct node *bn = ck->nodes[r->ref];
        for (size_t i = 0; i < ck->nnodes; i++) {
            if ((long)i == r->ref)
                continue;
            const struct node *an = ck->nodes[i];
            const struct hist *a = hist_of(r, i);
            size_t na = a != NULL ? a->n : 0, ia = 0, ib = 0;
            while (ia < na || ib < b->n) {
                const struct entry *ea = ia < na ? &a->v[ia] : NULL;
                const struct entry *eb = ib < b->n ? &b->v[ib] : NULL;
                bool stop;
                if (ea != NULL && eb != NULL && ea->seq == eb->seq) {
                    ia++;
                    ib++;
                    if (strcmp(ea->author, eb->author) == 0 && strcmp(ea->text, eb->text) == 0)
                        continue;
                    stop = violation(ck, an->file, ea->line,
                                     "histories disagree: room %s seq %" PRIu64
                                     " is %s: %s at node %s but %s: %s at node %s (%s:%lu)",
                                     r->name, ea->seq, ea->author, show(ea->text), an->name,
                                     eb->author, show(eb->text), bn->name, bn->file->name,
                                     eb->line);
                } else if (eb != NULL && (ea == NULL || eb->seq < ea->seq)) {
                    if (ck->allow_lag && ea == NULL)
                        break; /* a prefix: the node lags */
                    stop = violation(ck, bn->file, eb->line,
                                     "history %s: node %s lacks room %s seq %" PRIu64
                                     " (%s: %s) that node %s has",
                                     ea == NULL ? "lag" : "hole", an->name, r->name, eb->seq,
                                     eb->author, show(eb->text), bn->name);
                } else {
                    stop = violation(ck, an->file, ea->line,
                                     "histories diverge: node %s has room %s seq %" PRIu64
                                     " (%s: %s) that node %s (the longest history) lacks",
                                     an->name, r->name, ea->seq, ea->author, show(ea->text),
                                     bn->name);
                }
                if (stop)
                    return true;
                break; /* one report per node and room */
            }
        }
    }
    return false;
}

/* 3. Live deliveries of one client. */
struct delivered {
    uint64_t seq;
    unsigned long line;
};

struct dstate {
    struct room *room;
    struct delivered *acc; /* accepted deliveries, strictly increasing seq */
    size_t nacc, cap;
    size_t last_idx;       /* the last accepted delivery's index in the reference history */
    size_t since_join;     /* deliveries accepted since the last J (or the first delivery) */
    unsigned long since_line;
    UT_hash_handle hh;
};

static bool find_delivered(const struct dstate *st, uint64_t seq, unsigned long *line)
{
    size_t lo = 0, hi = st->nacc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->acc[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < st->nacc && st->acc[lo].seq == seq) {
        *line = st->acc[lo].line;
        return true;
    }
    return false;
}

/* Without node dumps, deliveries are checked against each other instead of the history. */
struct dkey {
    const struct room *room;
    uint64_t seq;
};

struct dseen {
    struct dkey key;
    const struct client *client;
    const struct event *ev;
    UT_hash_handle hh;
};

static bool cross_check(struct checker *ck, const struct client *c, const struct event *ev)
{
    const struct room *r = ev->room;
    struct dkey key;
    memset(&key, 0, sizeof(key));
    key.room = r;
    key.seq = ev->seq;
    struct dseen *s;
    HASH_FIND(hh, ck->seen, &key, sizeof(key), s);
    if (s == NULL) {
        s = pc_calloc(1, sizeof(*s));
        s->key = key;
        s->client = c;
        s->ev = ev;
        HASH_ADD(hh, ck->seen, key, sizeof(key), s);
    } else if ((strcmp(s->ev->author, ev->author) != 0 || strcmp(s->ev->text, ev->text) != 0) &&
               violation(ck, c->file, ev->line,
                         "deliveries disagree: client %s room %s seq %" PRIu64
                         " is %s: %s but client %s got %s: %s (%s:%lu)",
                         c->name, r->name, ev->seq, ev->author, show(ev->text), s->client->name,
                         s->ev->author, show(s->ev->text), s->client->file->name, s->ev->line)) {
        return true;
    }
    struct post *p;
    HASH_FIND(hh_text, r->by_text, ev->text, strlen(ev->text), p);
    if (p == NULL)
        return false;
    if (p->out == OUT_REFUSED &&
        violation(ck, c->file, ev->line,
                  "refused post delivered: client %s msgid %s %s (refused at %s:%lu) is seq %" PRIu64
                  " at client %s",
                  p->client->name, p->msgid, show(p->text), p->client->file->name, p->out_line,
                  ev->seq, c->name))
        return true;
    if (p->deliv_seq == 0) {
        p->deliv_seq = ev->seq;
        p->deliv_client = c;
        p->deliv_line = ev->line;
    } else if (p->deliv_seq != ev->seq &&
               violation(ck, c->file, ev->line,
                         "post delivered at two seqs: client %s msgid %s %s is seq %" PRIu64
                         " here but seq %" PRIu64 " at client %s (%s:%lu)",
                         p->client->name, p->msgid, show(p->text), ev->seq, p->deliv_seq,
                         p->deliv_client->name, p->deliv_client->file->name, p->deliv_line)) {
        return true;
    }
    return false;
}

static bool check_recv(struct checker *ck, const struct client *c, struct dstate *st,
                       const struct event *ev)
{
    const struct room *r = ev->room;
    const struct file *f = c->file;
    unsigned long first;
    if (st->nacc > 0 && ev->seq <= st->acc[st->nacc - 1].seq) {
        const struct delivered *last = &st->acc[st->nacc - 1];
        if (find_delivered(st, ev->seq, &first))
            return violation(ck, f, ev->line,
                             "duplicate delivery: client %s room %s seq %" PRIu64
                             " was already delivered at line %lu",
                             c->name, r->name, ev->seq, first);
        return violation(ck, f, ev->line,
                         "delivery out of order: client %s room %s got seq %" PRIu64
                         " after seq %" PRIu64 " (line %lu)",
                         c->name, r->name, ev->seq, last->seq, last->line);
    }

    const struct hist *h = ref_hist(r);
    size_t idx = find_seq(h, ev->seq);
    if (ck->nnodes == 0) {
        if (cross_check(ck, c, ev))
            return true;
    } else {
        if (idx == NOT_FOUND) {
            if (h == NULL) {
                if (violation(ck, f, ev->line,
                              "delivered message not in history: client %s room %s seq %" PRIu64
                              " (%s: %s): no node has a history of room %s",
                              c->name, r->name, ev->seq, ev->author, show(ev->text), r->name))
                    return true;
            } else if (violation(ck, f, ev->line,
                                 "delivered message not in history: client %s room %s seq %" PRIu64
                                 " (%s: %s) is not in node %s's history (the longest)",
                                 c->name, r->name, ev->seq, ev->author, show(ev->text),
                                 ck->nodes[r->ref]->name)) {
                return true;
            }
        } else {
            const struct entry *he = &h->v[idx];
            if ((strcmp(he->author, ev->author) != 0 || strcmp(he->text, ev->text) != 0) &&
                violation(ck, f, ev->line,
                          "delivery differs from history: client %s room %s seq %" PRIu64
                          " is %s: %s but node %s has %s: %s (%s:%lu)",
                          c->name, r->name, ev->seq, ev->author, show(ev->text),
                          ck->nodes[r->ref]->name, he->author, show(he->text),
                          ck->nodes[r->ref]->file->name, he->line))
                return true;
        }
    }

    if (st->since_join > 0) {
        uint64_t prev = st->acc[st->nacc - 1].seq, missed = 0;
        if (idx != NOT_FOUND && st->last_idx != NOT_FOUND) {
            /* No message of the history skipped (with --allow-gaps seqs may have holes). */
            if (idx > st->last_idx + 1)
                missed = h->v[st->last_idx + 1].seq;
        } else if (ev->seq != prev + 1) {
            missed = prev + 1;
        }
        if (missed != 0 &&
            violation(ck, f, ev->line,
                      "delivery gap: client %s room %s got seq %" PRIu64 " after seq %" PRIu64
                      ", missed seq %" PRIu64 " (live since line %lu)",
                      c->name, r->name, ev->seq, prev, missed, st->since_line))
            return true;
    } else if (st->since_line == 0) {
        st->since_line = ev->line; /* deliveries before any J: live since the first */
    }

    st->acc = ck_grow(st->acc, &st->cap, st->nacc + 1, sizeof(*st->acc));
    st->acc[st->nacc++] = (struct delivered){ev->seq, ev->line};
    st->last_idx = idx;
    st->since_join++;
    return false;
}

static bool check_client(struct checker *ck, const struct client *c)
{
    struct dstate *states = NULL, *st, *tmp;
    bool stop = false;
    for (size_t k = 0; k < c->nev && !stop; k++) {
        const struct event *ev = &c->ev[k];
        if (ev->kind == EV_ACK) {
            const struct post *p = ev->post;
            /* An acked post missing from the history was reported by check 1. */
            if (p->ref_entry != NULL && p->ref_entry->seq != p->ack_seq)
                stop = violation(ck, c->file, ev->line,
                                 "ack seq mismatch: client %s msgid %s %s was acked as seq %" PRIu64
                                 " but is seq %" PRIu64 " in node %s's history of room %s",
                                 c->name, p->msgid, show(p->text), p->ack_seq,
                                 p->ref_entry->seq, ck->nodes[p->room->ref]->name,
                                 p->room->name);
            continue;
        }
        HASH_FIND_PTR(states, &ev->room, st);
        if (st == NULL) {
            st = pc_calloc(1, sizeof(*st));
            st->room = ev->room;
            st->last_idx = NOT_FOUND;
            HASH_ADD_PTR(states, room, st);
        }
        if (ev->kind == EV_JOIN) {
            st->since_join = 0;
            st->since_line = ev->line;
        } else {
            stop = check_recv(ck, c, st, ev);
        }
    }
    HASH_ITER(hh, states, st, tmp) {
        HASH_DEL(states, st);
        pc_free(st->acc);
        pc_free(st);
    }
    return stop;
}

static bool check_deliveries(struct checker *ck)
{
    bool stop = false;
    for (struct client *c = ck->clients; c != NULL && !stop; c = c->hh.next)
        stop = check_client(ck, c);
    /* Without node dumps an ack's seq is checked against the post's delivered seq. */
    for (size_t k = 0; k < ck->nposts && !stop && ck->nnodes == 0; k++) {
        const struct post *p = ck->posts[k];
        if (p->out == OUT_ACKED && p->ack_seq != 0 && p->deliv_seq != 0 &&
            p->ack_seq != p->deliv_seq)
            stop = violation(ck, p->client->file, p->out_line,
                             "ack seq mismatch: client %s msgid %s %s was acked as seq %" PRIu64
                             " but delivered as seq %" PRIu64 " at client %s (%s:%lu)",
                             p->client->name, p->msgid, show(p->text), p->ack_seq, p->deliv_seq,
                             p->deliv_client->name, p->deliv_client->file->name, p->deliv_line);
    }
    struct dseen *s, *tmp;
    HASH_ITER(hh, ck->seen, s, tmp) {
        HASH_DEL(ck->seen, s);
        pc_free(s);
    }
    return stop;
}

/* 4. Every history message was sent, by its author. */
static bool check_foreign(struct checker *ck)
{
    for (size_t i = 0; i < ck->nnodes; i++) {
        const struct node *nd = ck->nodes[i];
        for (struct room *r = ck->rooms; r != NULL; r = r->hh.next) {
            const struct hist *h = hist_of(r, i);
            for (size_t k = 0; h != NULL && k < h->n; k++) {
                const struct entry *e = &h->v[k];
                const struct post *p = e->post;
                if (p == NULL) {
                    if (!ck->allow_foreign &&
                        violation(ck, nd->file, e->line,
                                  "foreign message: node %s room %s seq %" PRIu64
                                  " (%s: %s) was sent by no client log",
                                  nd->name, r->name, e->seq, e->author, show(e->text)))
                        return true;
                } else if (e->dup_of == NULL && strcmp(e->author, p->client->author) != 0 &&
                           violation(ck, nd->file, e->line,
                                     "author mismatch: node %s room %s seq %" PRIu64
                                     " %s has author %s but client %s sent it (%s:%lu)",
                                     nd->name, r->name, e->seq, show(e->text), e->author,
                                     p->client->name, p->client->file->name, p->line)) {
                    return true;
                }
            }
        }
    }
    return false;
}

bool ck_run(struct checker *ck)
{
    if (!check_posts(ck) && !check_hist_order(ck) && !check_hist_agree(ck) &&
        !check_deliveries(ck))
        check_foreign(ck);
    return ck->violations == 0;
}

void ck_print_counts(const struct checker *ck, const char *prefix)
{
    printf("pchat-check: %s%zu clients, %zu nodes, %zu rooms, %zu sent, %zu acked, %zu refused, "
           "%zu unknown (%zu committed), %zu deliveries checked\n",
           prefix, ck->nclients, ck->nnodes, ck->nrooms, ck->nposts, ck->acked, ck->refused,
           ck->unknown, ck->committed_unknown, ck->delivered);
}

void ck_free(struct checker *ck)
{
    struct client *c, *ctmp;
    HASH_ITER(hh, ck->clients, c, ctmp) {
        HASH_DEL(ck->clients, c);
        HASH_CLEAR(hh_id, c->by_id);
        pc_free(c->ev);
        pc_free(c);
    }
    struct node *n, *ntmp;
    HASH_ITER(hh, ck->nodes_by_name, n, ntmp) {
        HASH_DEL(ck->nodes_by_name, n);
        pc_free(n);
    }
    pc_free(ck->nodes);
    struct room *r, *rtmp;
    HASH_ITER(hh, ck->rooms, r, rtmp) {
        HASH_DEL(ck->rooms, r);
        HASH_CLEAR(hh_text, r->by_text);
        for (size_t i = 0; i < r->nhist; i++)
            pc_free(r->hist[i].v);
        pc_free(r->hist);
        pc_free(r);
    }
    for (size_t k = 0; k < ck->nposts; k++)
        pc_free(ck->posts[k]);
    pc_free(ck->posts);
    for (size_t k = 0; k < ck->nfiles; k++) {
        pc_free(ck->files[k]->buf);
        pc_free(ck->files[k]);
    }
    pc_free(ck->files);
    *ck = (struct checker){0};
}
