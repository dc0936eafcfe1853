#include "tests/lib/tl_load.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "common/pc_alloc.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

#define MAX_WINDOW 64

struct slot {
    bool busy;
    uint64_t msgid;
    uint32_t cseq;
    char text[64];
};

struct tl_poster {
    char name[32];
    char user[128];
    char room[256];
    int ports[8];
    size_t n_ports, port_i;
    unsigned window;
    struct tl_client *c; /* NULL while disconnected */
    uint64_t next_msgid;
    uint64_t next_retry_ms;
    struct slot slots[MAX_WINDOW];
    struct tl_poster_stats st;
    FILE *log;
};

/* The checker's field escaping: backslash, tab and newline. */
static void put_field(FILE *f, const char *s)
{
    fputc('\t', f);
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\t')
            fputs("\\t", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void log_line(FILE *f, const char *type, int nfields, ...)
{
    va_list ap;
    va_start(ap, nfields);
    fputs(type, f);
    for (int i = 0; i < nfields; i++)
        put_field(f, va_arg(ap, const char *));
    va_end(ap);
    fputc('\n', f);
}

static void log_u64(FILE *f, const char *type, uint64_t a, const char *b)
{
    char n[24];
    snprintf(n, sizeof n, "%llu", (unsigned long long)a);
    log_line(f, type, b ? 2 : 1, n, b);
}

static bool connect_and_join(struct tl_poster *p)
{
    char why[200];
    int port = p->ports[p->port_i % p->n_ports];
    struct tl_client *c = tl_client_try(port, p->user, why, sizeof why);
    if (c == NULL)
        return false;
    struct pcc_event *ev = tl_join(c, p->room);
    bool ok = ev != NULL && ev->msg.resp_code == 200;
    pcc_event_free(ev);
    if (!ok) {
        tl_client_close(c);
        return false;
    }
    tl_drain(c);
    p->c = c;
    log_line(p->log, "J", 1, p->room);
    return true;
}

struct tl_poster *tl_poster_new(const char *name, const char *user, const int *ports, size_t n_ports,
                                const char *room_uri, unsigned window, const char *log_path)
{
    struct tl_poster *p = pc_calloc(1, sizeof *p);
    pc_strlcpy(p->name, name, sizeof p->name);
    pc_strlcpy(p->user, user, sizeof p->user);
    pc_strlcpy(p->room, room_uri, sizeof p->room);
    assert_true(n_ports > 0 && n_ports <= 8);
    memcpy(p->ports, ports, n_ports * sizeof *ports);
    p->n_ports = n_ports;
    p->window = window < MAX_WINDOW ? window : MAX_WINDOW;
    p->log = fopen(log_path, "w");
    assert_non_null(p->log);
    char author[140];
    snprintf(author, sizeof author, "%s%s", strncmp(user, "sip:", 4) == 0 ? "" : "sip:", user);
    log_line(p->log, "C", 2, name, author);
    assert_true(connect_and_join(p));
    return p;
}

static void finish(struct tl_poster *p, struct slot *s, const char *type, const char *why)
{
    log_u64(p->log, type, s->msgid, why);
    if (type[0] == 'A') {
        p->st.acked++;
        p->st.last_ack_ms = pc_mono_ms();
    } else if (type[0] == 'F') {
        p->st.refused++;
    } else {
        p->st.unknown++;
    }
    s->busy = false;
}

static void lost_connection(struct tl_poster *p, const char *why)
{
    for (unsigned i = 0; i < p->window; i++)
        if (p->slots[i].busy)
            finish(p, &p->slots[i], "U", why);
    tl_client_close(p->c);
    p->c = NULL;
    p->port_i++; /* try the next node */
    p->st.reconnects++;
}

/* SIP answers that prove the post was never committed. */
static bool never_committed(int status)
{
    return status == 400 || status == 403 || status == 404 || status == 413 || status == 503;
}

static void on_event(struct tl_poster *p, struct pcc_event *ev)
{
    if (ev->kind == PCC_EV_CLOSED) {
        lost_connection(p, ev->reason);
        return;
    }
    if (ev->kind == PCC_EV_SIP_RESPONSE) {
        for (unsigned i = 0; i < p->window; i++) {
            struct slot *s = &p->slots[i];
            if (!s->busy || s->cseq != ev->cseq)
                continue;
            if (ev->status == 200)
                finish(p, s, "A", NULL);
            else {
                char why[240];
                snprintf(why, sizeof why, "%d %s", ev->status, ev->reason);
                finish(p, s, never_committed(ev->status) ? "F" : "U", why);
            }
        }
        return;
    }
    if (ev->kind != PCC_EV_XCCOS || ev->msg.kind != XCCOS_KIND_GRPCHAT)
        return;
    const struct xccos_chat *m = &ev->msg.chat;
    char seq[24];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)m->msg_id);
    log_line(p->log, "R", 4, m->chan_uri, seq, m->author, m->text);
    p->st.delivered++;
    /* The echo of our own post acknowledges it too (that is how SIPE sees it). */
    for (unsigned i = 0; i < p->window; i++) {
        struct slot *s = &p->slots[i];
        if (s->busy && m->text != NULL && strcmp(s->text, m->text) == 0) {
            log_u64(p->log, "A", s->msgid, seq);
            p->st.acked++;
            p->st.last_ack_ms = pc_mono_ms();
            s->busy = false;
        }
    }
}

static void step(struct tl_poster *p, bool posting)
{
    if (p->c == NULL) {
        uint64_t now = pc_mono_ms();
        if (now < p->next_retry_ms)
            return;
        if (!connect_and_join(p)) {
            p->port_i++;
            p->next_retry_ms = now + 200;
            return;
        }
    }
    struct pcc_event *ev;
    while (p->c != NULL && (ev = pcc_next_event(p->c->pcc)) != NULL) {
        on_event(p, ev);
        pcc_event_free(ev);
    }
    if (p->c == NULL || !posting)
        return;
    for (unsigned i = 0; i < p->window; i++) {
        struct slot *s = &p->slots[i];
        if (s->busy)
            continue;
        s->msgid = ++p->next_msgid;
        char text[sizeof s->text]; /* not straight into s->text: gcc sees p->name alias it */
        snprintf(text, sizeof text, "%s#%llu", p->name, (unsigned long long)s->msgid);
        memcpy(s->text, text, sizeof text);
        char id[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)s->msgid);
        log_line(p->log, "S", 3, p->room, id, s->text);
        s->cseq = pcc_post(p->c->pcc, p->room, s->text);
        s->busy = true;
        p->st.sent++;
        if (s->cseq == 0) /* the client was not ready: nothing went out */
            finish(p, s, "F", "client not ready, not sent");
    }
}

void tl_posters_run(struct tl_poster *const *p, size_t n, unsigned ms, bool posting)
{
    uint64_t deadline = pc_mono_ms() + ms;
    while (pc_mono_ms() < deadline) {
        for (size_t i = 0; i < n; i++)
            step(p[i], posting);
        tl_spin(2);
    }
}

void tl_posters_fire(struct tl_poster *const *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        step(p[i], true);
    uv_run(tl_loop(), UV_RUN_NOWAIT); /* out to the sockets, answers not awaited */
}

static size_t in_flight(const struct tl_poster *p)
{
    size_t n = 0;
    for (unsigned i = 0; i < p->window; i++)
        n += p->slots[i].busy;
    return n;
}

bool tl_posters_settle(struct tl_poster *const *p, size_t n, unsigned ms)
{
    uint64_t deadline = pc_mono_ms() + ms;
    for (;;) {
        size_t busy = 0;
        for (size_t i = 0; i < n; i++)
            busy += in_flight(p[i]);
        if (busy == 0)
            return true;
        if (pc_mono_ms() >= deadline)
            return false;
        tl_posters_run(p, n, 20, false);
    }
}

void tl_poster_stats(const struct tl_poster *p, struct tl_poster_stats *out)
{
    *out = p->st;
}

void tl_poster_free(struct tl_poster *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->window; i++)
        if (p->slots[i].busy)
            finish(p, &p->slots[i], "U", "test ended before the answer");
    tl_client_close(p->c);
    fclose(p->log);
    pc_free(p);
}

size_t tl_dump_history(int port, const char *node_label, const char *room_uri, const char *path)
{
    struct tl_client *c = tl_client_new(port, "admin@example.test");
    struct pcc_event *ev = tl_join(c, room_uri);
    assert_int_equal(ev->msg.resp_code, 200);
    pcc_event_free(ev);
    /* Pages come newest first; collect them, then write oldest first. */
    struct pcc_event **pages = NULL;
    size_t n_pages = 0, total = 0;
    uint64_t before = 0;
    for (;;) {
        ev = tl_history(c, room_uri, 100, before);
        assert_int_equal(ev->msg.resp_code, 200);
        size_t k = ev->msg.n_rooms > 0 ? ev->msg.rooms[0].n_msgs : 0;
        if (k == 0) {
            pcc_event_free(ev);
            break;
        }
        pages = pc_realloc(pages, (n_pages + 1) * sizeof *pages);
        pages[n_pages++] = ev;
        total += k;
        before = ev->msg.rooms[0].msgs[0].msg_id;
        if (before <= 1)
            break;
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    log_line(f, "N", 1, node_label);
    for (size_t i = n_pages; i-- > 0;) {
        const struct xccos_room *r = &pages[i]->msg.rooms[0];
        for (size_t j = 0; j < r->n_msgs; j++) {
            char seq[24];
            snprintf(seq, sizeof seq, "%llu", (unsigned long long)r->msgs[j].msg_id);
            log_line(f, "H", 4, room_uri, seq, r->msgs[j].author, r->msgs[j].text);
        }
        pcc_event_free(pages[i]);
    }
    fclose(f);
    pc_free(pages);
    tl_client_close(c);
    return total;
}

int tl_check(const char *args)
{
    const char *build = getenv("PCHAT_BUILD");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/bin/pchat-check %s 2>&1", build ? build : "build", args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    while (fgets(line, sizeof line, p) != NULL)
        fprintf(stderr, "    %s", line);
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
