/* GET /api/search: full-text search of the history of the rooms the signed-in user may
 * read (docs/WEB.md). Parameters are checked here and refused with 400 and a reason; the
 * rooms are chosen by search_rooms_for (chat_acl, as for history over XCCOS); the search
 * itself runs in the thread pool (search/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"
#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "common/pc_time.h"
#include "search/search.h"
#include "search/search_expr.h"
#include "search/search_rooms.h"
#include "web/web_int.h"

struct search_call {
    struct http_ticket *ticket;
    struct web_service *w;
};

static json_t *hit_json(struct web_service *w, const struct search_hit *h)
{
    const struct meta_room *r = meta_room_by_no(cluster_meta(w->cl), h->room_no);
    if (r == NULL)
        return NULL; /* removed since */
    char when[PC_ISO_LEN], uri[400];
    pc_time_iso(h->ts_us, when);
    snprintf(uri, sizeof uri, "ma-chan://%s/%s", w->cfg.domain, r->guid);
    /* Stored texts are UTF-8 (checked on the way in); JSON refuses anything else, so a
     * damaged one shows '?' rather than failing the whole answer. */
    char *text = pc_strdup(h->text), *author = pc_strdup(h->author), *name = pc_strdup(r->name);
    pc_utf8_sanitize(text);
    pc_utf8_sanitize(author);
    pc_utf8_sanitize(name);
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s}", "room", name, "room_uri", uri, "seq",
                          (json_int_t)h->seq, "time", when, "author", author, "text", text);
    pc_free(text);
    pc_free(author);
    pc_free(name);
    return j;
}

static void searched(void *arg, const struct search_result *res)
{
    struct search_call *c = arg;
    struct http_req *r = http_ticket_req(c->ticket);
    if (r != NULL) {
        if (res->status != 0) {
            http_reply_error(r, res->status == PC_EINVAL ? 400 : 503, "%s",
                             res->error != NULL ? res->error : pc_strerror(res->status));
        } else {
            json_t *hits = json_array();
            for (size_t i = 0; i < res->n_hits; i++) {
                json_t *h = hit_json(c->w, &res->hits[i]);
                if (h != NULL)
                    json_array_append_new(hits, h);
            }
            json_t *ans = json_pack("{s:b, s:o, s:b, s:I}", "ok", 1, "hits", hits, "more",
                                    res->more, "index_lag", (json_int_t)res->lag);
            if (res->more) {
                char cursor[80];
                search_cursor_format(&res->next, cursor, sizeof cursor);
                json_object_set_new(ans, "next", json_string(cursor));
            }
            http_reply_json(r, 200, ans);
        }
    }
    http_ticket_release(c->ticket);
    pc_free(c);
}

/* from/to: a date (a whole day, so to=2026-11-24 includes that day) or a time. */
static bool parse_time(const char *s, bool end, int64_t *us)
{
    if (!pc_time_parse_iso(s, us))
        return false;
    if (end && strlen(s) == 10)
        *us += 86400LL * 1000000 - 1;
    return true;
}

/* "alice", "alice@example.test" or "sip:alice@example.test" → the stored form. */
static void author_uri(const char *domain, const char *a, char *out, size_t cap)
{
    const char *at = strchr(a, '@');
    if (strncasecmp(a, "sip:", 4) == 0)
        snprintf(out, cap, "sip:%s", a + 4);
    else if (at != NULL)
        snprintf(out, cap, "sip:%s", a);
    else
        snprintf(out, cap, "sip:%s@%s", a, domain);
    pc_str_lower(out);
}

/* Splits the comma-separated authors into arr (strings in buf). Returns the count, or -1. */
static int split_authors(const char *domain, const char *list, char buf[][300], const char **arr)
{
    int n = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= 250 || n == SEARCH_AUTHORS_MAX)
            return -1;
        char one[256];
        memcpy(one, p, len);
        one[len] = '\0';
        author_uri(domain, one, buf[n], sizeof buf[n]);
        arr[n] = buf[n];
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    return n;
}

/* Reads and checks the parameters; false when answered (400). */
static bool read_params(struct web_service *w, struct http_req *r, struct search_request *q,
                        char authors[][300], const char **author_ptrs)
{
    const char *v;
    q->text = http_query(r, "q");
    if ((v = http_query(r, "mode")) == NULL || strcmp(v, "any") == 0)
        q->mode = SEARCH_ANY;
    else if (strcmp(v, "all") == 0)
        q->mode = SEARCH_ALL;
    else if (strcmp(v, "phrase") == 0)
        q->mode = SEARCH_PHRASE;
    else {
        http_reply_error(r, 400, "mode=%s: use any (one of the words), all (every word) or "
                         "phrase (the words in this order)", v);
        return false;
    }
    if ((v = http_query(r, "case")) != NULL) {
        if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
            q->case_sensitive = true;
        else if (strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "no") != 0) {
            http_reply_error(r, 400, "case=%s: use case=1 (match case) or case=0", v);
            return false;
        }
    }
    if ((v = http_query(r, "from")) != NULL && v[0] != '\0' && !parse_time(v, false, &q->from_us)) {
        http_reply_error(r, 400, "from=%s is not a date: use 2026-11-24 or 2026-11-24T13:48:56Z", v);
        return false;
    }
    if ((v = http_query(r, "to")) != NULL && v[0] != '\0' && !parse_time(v, true, &q->to_us)) {
        http_reply_error(r, 400, "to=%s is not a date: use 2026-11-24 or 2026-11-24T13:48:56Z", v);
        return false;
    }
    if (q->from_us != 0 && q->to_us != 0 && q->from_us > q->to_us) {
        http_reply_error(r, 400, "from is after to: nothing can match");
        return false;
    }
    q->limit = SEARCH_LIMIT_DEFAULT;
    if ((v = http_query(r, "limit")) != NULL) {
        unsigned long long n;
        if (!pc_parse_u64(v, 1, SEARCH_LIMIT_MAX, &n)) {
            http_reply_error(r, 400, "limit=%s: give 1 to %d results per page", v, SEARCH_LIMIT_MAX);
            return false;
        }
        q->limit = (unsigned)n;
    }
    if ((v = http_query(r, "before")) != NULL && v[0] != '\0') {
        if (!search_cursor_parse(v, &q->before)) {
            http_reply_error(r, 400, "before=%s is not a cursor: pass the \"next\" value of the "
                             "previous page", v);
            return false;
        }
        q->has_before = true;
    }
    if ((v = http_query(r, "author")) != NULL && v[0] != '\0') {
        int n = split_authors(w->cfg.domain, v, authors, author_ptrs);
        if (n < 0) {
            http_reply_error(r, 400, "author=…: up to %d comma-separated users (alice, "
                             "alice@example.test or sip:alice@example.test)", SEARCH_AUTHORS_MAX);
            return false;
        }
        q->authors = author_ptrs;
        q->n_authors = (size_t)n;
    }
    return true;
}

void web_search_dispatch(struct web_service *w, struct http_req *r, struct web_req *wq)
{
    struct search *s = w->hooks.search;
    if (s == NULL) {
        http_reply_error(r, 503, "full-text search is not available on this node");
        return;
    }
    struct search_request q = {0};
    char authors[SEARCH_AUTHORS_MAX][300];
    const char *author_ptrs[SEARCH_AUTHORS_MAX];
    if (!read_params(w, r, &q, authors, author_ptrs))
        return;
    char err[400];
    /* The words first: a bad query is a 400 whatever the rooms. */
    struct pc_buf expr = {0};
    int rc = search_expr_build(q.text, q.mode, &expr, err, sizeof err);
    pc_buf_free(&expr);
    if (rc != 0) {
        http_reply_error(r, 400, "q: %s", err);
        return;
    }
    uint64_t *rooms = NULL;
    size_t n_rooms = 0;
    rc = search_rooms_for(cluster_meta(w->cl), wq->id.user, http_query(r, "room"), &rooms,
                          &n_rooms, err, sizeof err);
    if (rc != 0) {
        /* No readable room at all is an empty answer, not an error. */
        if (rc == PC_ENOTFOUND && http_query(r, "room") == NULL)
            http_reply_json(r, 200, json_pack("{s:b, s:[], s:b}", "ok", 1, "hits", "more", 0));
        else
            http_reply_error(r, rc == PC_ENOTFOUND ? 404 : rc == PC_EDENIED ? 403 : 400, "%s", err);
        return;
    }
    q.rooms = rooms;
    q.n_rooms = n_rooms;
    struct search_call *c = pc_calloc(1, sizeof *c);
    c->w = w;
    c->ticket = http_ticket_new(r);
    rc = search_run(s, &q, searched, c, err, sizeof err);
    pc_free(rooms);
    if (rc != 0) {
        http_ticket_release(c->ticket);
        pc_free(c);
        http_reply_error(r, rc == PC_EINVAL ? 400 : 503, "%s", err);
    }
}
