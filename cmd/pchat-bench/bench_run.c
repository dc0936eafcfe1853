/* The load engine of pchat-bench. One libuv loop drives every session through pcc, so
 * the sessions are real SIP/XCCOS clients (REGISTER, provisioning, INVITE, INFO), and the
 * measurements include the client's own parsing, as a real client's would.
 *
 * How a post is matched to its deliveries: its text starts with a tag
 *   "pb <run id> <session> <post no> <intended send time, ns>"
 * and every session that receives it computes the latency from the time in the tag (all
 * sessions share this process's monotonic clock). No table of sent posts is needed, and
 * the latency is measured from when the post was *meant* to go out, so a stalled
 * generator or server cannot hide its own delay (no coordinated omission). The author
 * recognises its own copy (the server's confirmation, as SIPE sees it) by the session
 * number in the tag. */
#include "cmd/pchat-bench/bench_run.h"
#include "cmd/pchat-bench/bench_scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "chat/client/pcc.h"
#include "common/pc_alloc.h"
#include "common/pc_rand.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

#define MAX_WINDOW 64
#define TAG "pb "

enum sess_state {
    S_IDLE,        /* not started */
    S_SIGNING_IN,
    S_READY,       /* signed in, waiting for a join slot */
    S_JOINING,
    S_HISTORY,
    S_JOINED,
    S_DEAD,        /* sign-in failed or the connection closed */
};

struct slot {
    uint32_t cseq;     /* 0 = free */
    uint64_t post_no;
};

struct sess {
    struct run *run;
    struct pcc *pcc;
    unsigned idx, room, node;
    enum sess_state st;
    bool posts;                  /* one of the posting users */
    uint64_t t_start_ns, t_join_ns, t_hist_ns;
    uint32_t join_cseq, hist_cseq;
    uint64_t last_seq;           /* newest room seq seen live (order check) */
    uint64_t lat_sum_ns, lat_n;  /* counted deliveries to this session (fairness) */
    uint64_t next_post_no;
    unsigned inflight;           /* closed loop: posts waiting for their echo */
    uint64_t backoff_until_ns;   /* closed loop: after a 503, wait before refilling */
    struct slot slots[];         /* closed loop: `window` slots */
};

enum phase { PH_SIGNIN, PH_SEARCH, PH_JOIN, PH_IDLE, PH_WAIT_GO, PH_POST, PH_DRAIN, PH_DONE };

struct room {
    char name[128];
    char uri[256];
    unsigned members;            /* sessions joined */
};

struct run {
    const struct bench_config *cfg;
    struct bench_result *res;
    uv_loop_t loop;
    uv_timer_t tick;             /* 1 ms: open-loop sends, refills, phase changes */
    uv_timer_t progress;         /* 1 s: a progress line */
    struct sess **s;             /* this process's sessions */
    unsigned n;
    uv_poll_t go;                /* sync_in: the other processes are ready too */
    bool go_open;
    struct room *rooms;
    enum phase phase;
    unsigned next_signin, signing_in, next_join, joining, signin_done, join_done;
    uint32_t search_cseq;
    char search_envid[24];
    uint64_t t0_ns, phase_ns;    /* run start, current phase start */
    uint64_t post_start_ns, measure_start_ns, post_end_ns, drain_end_ns, idle_end_ns;
    uint64_t open_next_ns;       /* open loop: intended time of the next post */
    double open_interval_ns;
    uint64_t open_k;             /* open loop: posts scheduled so far */
    unsigned open_rr;            /* open loop: next poster, round robin */
    unsigned n_posters;
    unsigned *posters;           /* session indexes of the posting users */
    uint64_t starved;            /* closed loop: sessions waiting out a 503 */
    uint64_t bench_cpu0;
    struct pc_loop_stats loop0;        /* the loop's passes when the window opened */
    char text_pad[8192];
};

/* ---- helpers ----------------------------------------------------------------------------- */

static uint64_t self_cpu_ns(void)
{
    uv_rusage_t ru;
    if (uv_getrusage(&ru) != 0)
        return 0;
    return (uint64_t)ru.ru_utime.tv_sec * 1000000000ull + (uint64_t)ru.ru_utime.tv_usec * 1000ull +
           (uint64_t)ru.ru_stime.tv_sec * 1000000000ull + (uint64_t)ru.ru_stime.tv_usec * 1000ull;
}

static void sample_nodes(struct run *r, size_t which)
{
    for (size_t j = 0; j < r->res->n_nodes; j++) {
        struct bench_node_result *n = &r->res->nodes[j];
        struct bench_proc_sample *dst = which == 0 ? &n->before
                                        : which == 1 ? &n->signed_in
                                        : which == 2 ? &n->post0
                                                     : &n->post1;
        if (n->pid > 0)
            bench_proc_sample(n->pid, dst);
    }
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void set_phase(struct run *r, enum phase p)
{
    r->phase = p;
    r->phase_ns = pc_mono_ns();
}

/* Parses a tag; false for anything else (history of older runs, other clients). */
static bool parse_tag(const char *text, char run_id[9], uint64_t *sess, uint64_t *post_no,
                      uint64_t *intended)
{
    if (text == NULL || strncmp(text, TAG, 3) != 0)
        return false;
    const char *p = text + 3;
    size_t n = strcspn(p, " ");
    if (n != 8)
        return false;
    memcpy(run_id, p, 8);
    run_id[8] = '\0';
    p += 9;
    char *end;
    *sess = strtoull(p, &end, 10);
    if (*end != ' ')
        return false;
    *post_no = strtoull(end + 1, &end, 10);
    if (*end != ' ')
        return false;
    *intended = strtoull(end + 1, &end, 10);
    return *end == ' ' || *end == '\0';
}

/* ---- posting ----------------------------------------------------------------------------- */

static bool counted(const struct run *r, uint64_t intended)
{
    return intended >= r->measure_start_ns && intended < r->post_end_ns;
}

static uint32_t send_post(struct run *r, struct sess *s, uint64_t intended)
{
    char text[8192 + 128];
    uint64_t no = ++s->next_post_no;
    int n = snprintf(text, sizeof text, TAG "%s %u %" PRIu64 " %" PRIu64 " ", r->res->run_id,
                     s->idx, no, intended);
    if (n < 0)
        return 0;
    size_t len = (size_t)n;
    size_t want = r->cfg->msg_bytes < sizeof text - 1 ? r->cfg->msg_bytes : sizeof text - 1;
    if (len < want) {
        memcpy(text + len, r->text_pad, want - len);
        len = want;
    }
    text[len] = '\0';
    uint32_t cseq = pcc_post(s->pcc, r->rooms[s->room].uri, text);
    if (cseq == 0)
        return 0;
    if (counted(r, intended))
        r->res->sent++;
    if (r->cfg->closed_loop) {
        for (unsigned i = 0; i < r->cfg->window; i++)
            if (s->slots[i].cseq == 0) {
                s->slots[i].cseq = cseq;
                s->slots[i].post_no = no;
                s->inflight++;
                break;
            }
    }
    return cseq;
}

/* Closed loop: keep the window full while posting lasts. */
static void refill(struct run *r, struct sess *s, uint64_t now)
{
    if (r->phase != PH_POST || !s->posts || s->st != S_JOINED || now >= r->post_end_ns)
        return;
    if (s->backoff_until_ns > now)
        return;
    while (s->inflight < r->cfg->window)
        if (send_post(r, s, pc_mono_ns()) == 0)
            break;
}

static void release_slot(struct run *r, struct sess *s, struct slot *sl, bool busy)
{
    sl->cseq = 0;
    s->inflight--;
    if (busy) {
        /* Back off before refilling: the node asked us to (Retry-After is seconds, far
         * too long for a saturation test; 10 ms keeps pressure without a 503 storm). */
        s->backoff_until_ns = pc_mono_ns() + 10000000ull;
        r->starved++;
    } else {
        refill(r, s, pc_mono_ns());
    }
}

/* ---- events ------------------------------------------------------------------------------ */

static void start_join(struct run *r, struct sess *s);

static void joined(struct run *r, struct sess *s, bool ok)
{
    r->joining--;
    r->join_done++;
    if (!ok) {
        r->res->join_failed++;
        return;
    }
    s->st = S_JOINED;
    r->res->joined++;
    r->rooms[s->room].members++;
    if (s->room < BENCH_MAX_ROOMS)
        r->res->room_members[s->room]++;
}

static void on_delivery(struct run *r, struct sess *s, const struct xccos_chat *m, uint64_t at)
{
    char run_id[9];
    uint64_t author, no, intended;
    if (!parse_tag(m->text, run_id, &author, &no, &intended) ||
        strcmp(run_id, r->res->run_id) != 0) {
        r->res->other_deliveries++;
        return;
    }
    /* One order per room: seqs only grow, by one, for a session in one room. Only this
     * run's posts are followed (history replayed at join is older), so another client
     * posting into the same rooms during a run shows up as gaps. */
    if (s->last_seq != 0) {
        if (m->msg_id <= s->last_seq)
            r->res->seq_dups++;
        else if (m->msg_id > s->last_seq + 1)
            r->res->seq_gaps += m->msg_id - s->last_seq - 1;
    }
    if (m->msg_id > s->last_seq)
        s->last_seq = m->msg_id;
    uint64_t lat = at > intended ? at - intended : 0;
    bool count = counted(r, intended);
    bool in_window = r->measure_start_ns != 0 && at >= r->measure_start_ns && at < r->post_end_ns;
    if (in_window) {
        r->res->delivered_in_window++;
        if (author == s->idx)
            r->res->acked_in_window++;
    }
    if (count) {
        r->res->delivered++;
        bench_hist_record(&r->res->delivery, lat);
        s->lat_sum_ns += lat;
        s->lat_n++;
    }
    if (author != s->idx)
        return;
    if (count) {
        r->res->acked++;
        if (s->room < BENCH_MAX_ROOMS)
            r->res->room_acked[s->room]++;
        bench_hist_record(&r->res->ack, lat);
    }
    if (r->cfg->closed_loop)
        for (unsigned i = 0; i < r->cfg->window; i++)
            if (s->slots[i].cseq != 0 && s->slots[i].post_no == no) {
                release_slot(r, s, &s->slots[i], false);
                break;
            }
}

static void on_sip_response(struct run *r, struct sess *s, const struct pcc_event *ev)
{
    if (ev->cseq == s->join_cseq || ev->cseq == s->hist_cseq) {
        if (ev->status != 200 && (s->st == S_JOINING || s->st == S_HISTORY)) {
            fprintf(stderr, "pchat-bench: %s of session %u refused: %d %s\n",
                    s->st == S_JOINING ? "join" : "history", s->idx, ev->status, ev->reason);
            joined(r, s, false);
            s->st = S_READY;
        }
        return;
    }
    if (ev->status == 200) {
        r->res->sip_ok++;
        return;
    }
    if (ev->status == 503)
        r->res->busy_503++;
    else
        r->res->post_errors++;
    if (r->res->post_errors + r->res->busy_503 <= 3)
        fprintf(stderr, "pchat-bench: a post of session %u was refused: %d %s\n", s->idx,
                ev->status, ev->reason);
    if (r->cfg->closed_loop)
        for (unsigned i = 0; i < r->cfg->window; i++)
            if (s->slots[i].cseq == ev->cseq) {
                release_slot(r, s, &s->slots[i], true);
                break;
            }
}

static void on_reply(struct run *r, struct sess *s, const struct xccos_msg *m, uint64_t at)
{
    if (m->op == XCCOS_OP_CHANSRCH && s == r->s[0] && r->phase == PH_SEARCH) {
        for (unsigned i = 0; i < r->cfg->rooms; i++)
            for (size_t k = 0; k < m->n_rooms; k++)
                if (m->rooms[k].name != NULL && m->rooms[k].uri != NULL &&
                    strcasecmp(m->rooms[k].name, r->rooms[i].name) == 0)
                    pc_strlcpy(r->rooms[i].uri, m->rooms[k].uri, sizeof r->rooms[i].uri);
        for (unsigned i = 0; i < r->cfg->rooms; i++)
            if (r->rooms[i].uri[0] == '\0') {
                snprintf(r->res->error, sizeof r->res->error,
                         "room '%s' not found; create rooms %s-1…%s-%u first (pchatctl room "
                         "new NAME --category General --privacy open)",
                         r->rooms[i].name, r->cfg->room_prefix, r->cfg->room_prefix,
                         r->cfg->rooms);
                set_phase(r, PH_DONE);
                return;
            }
        set_phase(r, PH_JOIN);
        return;
    }
    if (m->op == XCCOS_OP_JOIN && s->st == S_JOINING) {
        bench_hist_record(&r->res->join, at - s->t_join_ns);
        if (m->resp_code != 200 && m->resp_code != 0) {
            fprintf(stderr, "pchat-bench: session %u could not join %s: %d %s\n", s->idx,
                    r->rooms[s->room].name, m->resp_code, m->resp_text ? m->resp_text : "");
            joined(r, s, false);
            s->st = S_READY;
            return;
        }
        if (r->cfg->history == 0) {
            joined(r, s, true);
            return;
        }
        s->st = S_HISTORY;
        s->t_hist_ns = pc_mono_ns();
        char envid[24];
        s->hist_cseq = pcc_history(s->pcc, r->rooms[s->room].uri, r->cfg->history, 0, envid);
        return;
    }
    if (m->op == XCCOS_OP_BCCONTEXT && s->st == S_HISTORY) {
        bench_hist_record(&r->res->history, at - s->t_hist_ns);
        bench_hist_record(&r->res->join_history, at - s->t_join_ns);
        if (m->n_rooms > 0)
            r->res->history_msgs += m->rooms[0].n_msgs;
        joined(r, s, m->resp_code == 200 || m->resp_code == 0);
    }
}

static void on_event(void *ctx, struct pcc *c, struct pcc_event *ev)
{
    (void)c;
    struct sess *s = ctx;
    struct run *r = s->run;
    switch (ev->kind) {
    case PCC_EV_READY:
        bench_hist_record(&r->res->signin, ev->at_ns - s->t_start_ns);
        s->st = S_READY;
        r->res->signed_in++;
        r->res->nodes[s->node].sessions++;
        r->signing_in--;
        r->signin_done++;
        break;
    case PCC_EV_CLOSED:
        if (s->st == S_SIGNING_IN) {
            r->signing_in--;
            r->signin_done++;
            r->res->signin_failed++;
            if (r->res->signin_failed <= 3)
                fprintf(stderr, "pchat-bench: sign-in of session %u failed: %s\n", s->idx,
                        ev->reason);
        } else {
            if (s->st == S_JOINING || s->st == S_HISTORY)
                joined(r, s, false);
            r->res->closed++;
            if (r->res->closed <= 3)
                fprintf(stderr, "pchat-bench: session %u lost its connection: %s\n", s->idx,
                        ev->reason);
            if (s->inflight > 0)
                r->res->post_errors += s->inflight;
            s->inflight = 0;
        }
        s->st = S_DEAD;
        break;
    case PCC_EV_SIP_RESPONSE:
        on_sip_response(r, s, ev);
        break;
    case PCC_EV_XCCOS:
        if (ev->msg.kind == XCCOS_KIND_GRPCHAT)
            on_delivery(r, s, &ev->msg.chat, ev->at_ns);
        else if (ev->msg.kind == XCCOS_KIND_RPL)
            on_reply(r, s, &ev->msg, ev->at_ns);
        break;
    }
    pcc_event_free(ev);
}

/* Deliveries read without building an XML document (bench_scan.h); anything else goes
 * through pcc's full decoder and on_event. */
static bool on_info_body(void *ctx, const char *body, size_t len, uint64_t at_ns)
{
    struct sess *s = ctx;
    char text[2048];
    struct xccos_chat m = {.text = text};
    if (!bench_scan_grpchat(body, len, &m.msg_id, text, sizeof text))
        return false;
    on_delivery(s->run, s, &m, at_ns);
    return true;
}

/* ---- phases -------------------------------------------------------------------------------- */

static void start_signin(struct run *r, struct sess *s)
{
    char user[160];
    snprintf(user, sizeof user, "%s%u@%s", r->cfg->user_prefix, s->idx + 1, r->cfg->domain);
    struct pcc_config pc = {
        .host = r->cfg->host,
        .port = r->cfg->ports[s->node],
        .user = user,
        .timeout_ms = r->cfg->signin_timeout_ms,
        .on_event = on_event,
        .ctx = s,
        .on_info_body = on_info_body,
    };
    s->st = S_SIGNING_IN;
    s->t_start_ns = pc_mono_ns();
    r->signing_in++;
    s->pcc = pcc_start(&r->loop, &pc);
}

static void start_join(struct run *r, struct sess *s)
{
    const char *uri = r->rooms[s->room].uri;
    char envid[24];
    s->st = S_JOINING;
    s->t_join_ns = pc_mono_ns();
    r->joining++;
    s->join_cseq = pcc_join(s->pcc, &uri, 1, envid);
    if (s->join_cseq == 0) {
        joined(r, s, false);
        s->st = S_DEAD;
    }
}

/* start_ns: when posting starts; every process of one run gets the same one (the
 * monotonic clock is the machine's), so their measured windows coincide. */
static void begin_posting(struct run *r, uint64_t start_ns)
{
    uint64_t now = start_ns;
    r->post_start_ns = now;
    r->measure_start_ns = now + (uint64_t)(r->cfg->warmup_s * 1e9);
    r->post_end_ns = now + (uint64_t)(r->cfg->duration_s * 1e9);
    r->n_posters = 0;
    for (unsigned i = 0; i < r->n; i++) {
        struct sess *s = r->s[i];
        s->posts = s->st == S_JOINED && (r->cfg->posters == 0 || s->idx < r->cfg->posters);
        if (s->posts)
            r->posters[r->n_posters++] = i;
    }
    r->open_interval_ns = r->n_posters > 0 && r->cfg->rate > 0
                              ? 1e9 / (r->cfg->rate * (double)r->n_posters)
                              : 0;
    r->open_next_ns = now;
    r->open_k = 0;
    set_phase(r, PH_POST);
    fprintf(stderr, "pchat-bench: posting for %.0f s (%s, %u posters here%s)\n", r->cfg->duration_s,
            r->cfg->closed_loop ? "closed loop" : "open loop", r->n_posters,
            r->cfg->closed_loop ? "" : ", fixed schedule");
    if (r->cfg->closed_loop)
        for (unsigned k = 0; k < r->n_posters; k++)
            refill(r, r->s[r->posters[k]], now);
}

static unsigned inflight_total(const struct run *r)
{
    /* Posts counted as sent whose fate (echo, 503, error) we have not seen yet. */
    uint64_t done = r->res->acked + r->res->busy_503 + r->res->post_errors;
    return r->res->sent > done ? (unsigned)(r->res->sent - done) : 0;
}

static void finish_posting(struct run *r)
{
    r->res->lost = inflight_total(r);
    set_phase(r, PH_DONE);
}

/* Every session of every process is in place: the RSS now is what they cost. */
static void go_post(struct run *r, uint64_t start_ns)
{
    sample_nodes(r, 1);
    if (r->cfg->duration_s > 0 && r->res->joined > 0)
        begin_posting(r, start_ns);
    else
        set_phase(r, PH_DONE);
}

static void on_go(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct run *r = p->data;
    uint64_t start_ns = 0;
    uv_poll_stop(p);
    /* The parent's word is the common start time (8 bytes, written at once: atomic). */
    if (status < 0 || read(r->cfg->sync_in, &start_ns, sizeof start_ns) != sizeof start_ns) {
        snprintf(r->res->error, sizeof r->res->error, "lost the parent process");
        set_phase(r, PH_DONE);
        return;
    }
    go_post(r, start_ns > pc_mono_ns() ? pc_mono_ns() : start_ns);
}

static void on_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    const struct bench_config *cfg = r->cfg;
    uint64_t now = pc_mono_ns();
    switch (r->phase) {
    case PH_SIGNIN:
        while (r->next_signin < r->n && r->signing_in < cfg->connect_window)
            start_signin(r, r->s[r->next_signin++]);
        if (r->signin_done == r->n) {
            if (r->res->signed_in == 0) {
                snprintf(r->res->error, sizeof r->res->error,
                         "no session could sign in (is a node listening on %s:%d?)", cfg->host,
                         cfg->ports[0]);
                set_phase(r, PH_DONE);
            } else if (cfg->rooms == 0) {
                r->idle_end_ns = now + (uint64_t)(cfg->idle_s * 1e9);
                set_phase(r, PH_IDLE);
            } else if (r->s[0]->st != S_READY) {
                snprintf(r->res->error, sizeof r->res->error,
                         "session %u (used to look up the rooms) did not sign in", r->s[0]->idx + 1);
                set_phase(r, PH_DONE);
            } else {
                set_phase(r, PH_SEARCH);
                r->search_cseq = pcc_search(r->s[0]->pcc, cfg->room_prefix, r->search_envid);
            }
        }
        break;
    case PH_SEARCH:
        if (now - r->phase_ns > 10000000000ull) {
            snprintf(r->res->error, sizeof r->res->error, "the room search got no answer in 10 s");
            set_phase(r, PH_DONE);
        }
        break;
    case PH_JOIN:
        while (r->next_join < r->n && r->joining < cfg->join_window) {
            struct sess *s = r->s[r->next_join++];
            if (s->st == S_READY)
                start_join(r, s);
        }
        if (r->next_join == r->n && r->joining == 0) {
            r->idle_end_ns = now + (uint64_t)(cfg->idle_s * 1e9);
            set_phase(r, PH_IDLE);
        }
        break;
    case PH_IDLE:
        if (now >= r->idle_end_ns) {
            if (cfg->sync_out >= 0) {
                /* Tell the parent this share is in place; posting starts on its word. */
                if (write(cfg->sync_out, "R", 1) != 1 || uv_poll_init(&r->loop, &r->go, cfg->sync_in) != 0) {
                    snprintf(r->res->error, sizeof r->res->error, "lost the parent process");
                    set_phase(r, PH_DONE);
                    break;
                }
                r->go.data = r;
                r->go_open = true;
                uv_poll_start(&r->go, UV_READABLE, on_go);
                set_phase(r, PH_WAIT_GO);
            } else {
                go_post(r, pc_mono_ns());
            }
        }
        break;
    case PH_WAIT_GO:
        break;
    case PH_POST:
        if (r->measure_start_ns != 0 && now >= r->measure_start_ns && r->bench_cpu0 == 0) {
            sample_nodes(r, 2);
            r->bench_cpu0 = self_cpu_ns() + 1;
            pc_loop_watch_stats(&r->loop0);
        }
        if (!cfg->closed_loop && r->open_interval_ns > 0) {
            /* Every post whose intended time has come goes out now, stamped with that
             * time, however late this tick is. */
            while (r->open_next_ns <= now && r->open_next_ns < r->post_end_ns) {
                struct sess *s = r->s[r->posters[r->open_rr++ % r->n_posters]];
                if (s->st == S_JOINED)
                    send_post(r, s, r->open_next_ns);
                r->open_k++;
                r->open_next_ns = r->post_start_ns + (uint64_t)((double)r->open_k * r->open_interval_ns);
            }
        }
        if (cfg->closed_loop && r->starved > 0) {
            r->starved = 0;
            for (unsigned k = 0; k < r->n_posters; k++) {
                struct sess *s = r->s[r->posters[k]];
                if (s->backoff_until_ns > now)
                    r->starved++;
                else if (s->inflight < cfg->window)
                    refill(r, s, now);
            }
        }
        if (now >= r->post_end_ns) {
            sample_nodes(r, 3);
            r->res->bench_cpu_ns = self_cpu_ns() - (r->bench_cpu0 - 1);
            struct pc_loop_stats now_loop;
            pc_loop_watch_stats(&now_loop);
            pc_loop_stats_since(&now_loop, &r->loop0, &r->res->bench_loop);
            r->res->measured_s = secs(r->post_end_ns - r->measure_start_ns);
            r->drain_end_ns = now + (uint64_t)(cfg->drain_s * 1e9);
            set_phase(r, PH_DRAIN);
        }
        break;
    case PH_DRAIN:
        /* Wait for the answers to what was sent, plus a little for the last fan-outs. */
        if (now >= r->drain_end_ns || (inflight_total(r) == 0 && now - r->phase_ns > 300000000ull))
            finish_posting(r);
        break;
    case PH_DONE:
        uv_stop(&r->loop);
        break;
    }
}

static void on_progress(uv_timer_t *t)
{
    struct run *r = t->data;
    const struct bench_result *res = r->res;
    double el = secs(pc_mono_ns() - r->t0_ns);
    switch (r->phase) {
    case PH_SIGNIN:
        fprintf(stderr, "[%5.1fs] sign-in: %u/%u ready, %u failed\n", el, res->signed_in,
                r->cfg->users, res->signin_failed);
        break;
    case PH_SEARCH:
    case PH_JOIN:
        fprintf(stderr, "[%5.1fs] join: %u/%u joined, %u failed\n", el, res->joined,
                res->signed_in, res->join_failed);
        break;
    case PH_IDLE:
    case PH_WAIT_GO:
        fprintf(stderr, "[%5.1fs] holding %u sessions\n", el, res->signed_in - res->closed);
        break;
    case PH_POST:
    case PH_DRAIN:
        fprintf(stderr,
                "[%5.1fs] %s: sent %" PRIu64 ", acked %" PRIu64 ", delivered %" PRIu64
                ", 503 %" PRIu64 ", errors %" PRIu64 ", p99 so far %.2f ms\n",
                el, r->phase == PH_POST ? "posting" : "draining", res->sent, res->acked,
                res->delivered, res->busy_503, res->post_errors,
                (double)bench_hist_quantile(&res->delivery, 0.99) / 1e6);
        break;
    case PH_DONE:
        break;
    }
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int bench_run(const struct bench_config *cfg, struct bench_result *res)
{
    memset(res, 0, sizeof *res);
    struct run *r = pc_calloc(1, sizeof *r);
    r->cfg = cfg;
    r->res = res;
    if (cfg->run_id != NULL)
        pc_strlcpy(res->run_id, cfg->run_id, sizeof res->run_id);
    else
        pc_random_hex(res->run_id, 4);
    memset(r->text_pad, 'x', sizeof r->text_pad);
    uv_loop_init(&r->loop);
    pc_loop_watch_start(&r->loop, 0);
    res->n_nodes = cfg->n_ports;
    for (size_t j = 0; j < cfg->n_ports; j++) {
        res->nodes[j].port = cfg->ports[j];
        /* One process samples the nodes, so CPU is not counted twice. */
        res->nodes[j].pid = j < cfg->n_pids && cfg->proc_index == 0 ? cfg->pids[j] : 0;
    }
    r->rooms = pc_calloc(cfg->rooms ? cfg->rooms : 1, sizeof *r->rooms);
    for (unsigned i = 0; i < cfg->rooms; i++)
        snprintf(r->rooms[i].name, sizeof r->rooms[i].name, "%s-%u", cfg->room_prefix, i + 1);
    unsigned procs = cfg->n_procs ? cfg->n_procs : 1;
    r->s = pc_calloc(cfg->users / procs + 1, sizeof *r->s);
    r->posters = pc_calloc(cfg->users / procs + 1, sizeof *r->posters);
    size_t slots = cfg->closed_loop ? cfg->window : 0;
    for (unsigned i = cfg->proc_index; i < cfg->users; i += procs) {
        struct sess *s = pc_calloc(1, sizeof *s + slots * sizeof(struct slot));
        s->run = r;
        s->idx = i;
        s->room = cfg->rooms ? i % cfg->rooms : 0;
        s->node = (unsigned)(i % cfg->n_ports);
        r->s[r->n++] = s;
    }
    if (r->n == 0) {
        snprintf(res->error, sizeof res->error, "more processes than users");
        set_phase(r, PH_DONE);
    }
    sample_nodes(r, 0);
    r->t0_ns = pc_mono_ns();
    set_phase(r, PH_SIGNIN);
    uv_timer_init(&r->loop, &r->tick);
    uv_timer_init(&r->loop, &r->progress);
    r->tick.data = r->progress.data = r;
    uv_timer_start(&r->tick, on_tick, 0, 1);
    uv_timer_start(&r->progress, on_progress, 1000, 1000);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    res->wall_s = secs(pc_mono_ns() - r->t0_ns);

    /* Close every session (pcc frees itself once its handles are closed), then anything
     * else left on the loop. */
    for (unsigned i = 0; i < r->n; i++)
        if (r->s[i]->pcc != NULL)
            pcc_close(r->s[i]->pcc, false);
    if (r->go_open)
        uv_close((uv_handle_t *)&r->go, NULL);
    uv_timer_stop(&r->tick);
    uv_timer_stop(&r->progress);
    uv_close((uv_handle_t *)&r->tick, NULL);
    uv_close((uv_handle_t *)&r->progress, NULL);
    pc_loop_watch_stop();
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_walk(&r->loop, close_walk, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r->loop) != 0)
        fprintf(stderr, "pchat-bench: warning: handles left open on the loop\n");
    for (unsigned i = 0; i < r->n; i++) {
        struct sess *s = r->s[i];
        if (s->lat_n > 0)
            bench_hist_record(s->posts ? &res->session_mean_posters : &res->session_mean_listeners,
                              s->lat_sum_ns / s->lat_n);
        pc_free(s);
    }
    pc_free(r->s);
    pc_free(r->posters);
    pc_free(r->rooms);
    int rc = res->error[0] != '\0' ? -1 : 0;
    pc_free(r);
    return rc;
}

void bench_result_merge(struct bench_result *dst, const struct bench_result *src)
{
    dst->signed_in += src->signed_in;
    dst->signin_failed += src->signin_failed;
    dst->joined += src->joined;
    dst->join_failed += src->join_failed;
    dst->closed += src->closed;
    bench_hist_merge(&dst->signin, &src->signin);
    bench_hist_merge(&dst->join, &src->join);
    bench_hist_merge(&dst->history, &src->history);
    bench_hist_merge(&dst->join_history, &src->join_history);
    bench_hist_merge(&dst->delivery, &src->delivery);
    bench_hist_merge(&dst->ack, &src->ack);
    bench_hist_merge(&dst->session_mean_posters, &src->session_mean_posters);
    bench_hist_merge(&dst->session_mean_listeners, &src->session_mean_listeners);
    dst->history_msgs += src->history_msgs;
    dst->sent += src->sent;
    dst->acked += src->acked;
    dst->sip_ok += src->sip_ok;
    dst->busy_503 += src->busy_503;
    dst->post_errors += src->post_errors;
    dst->lost += src->lost;
    dst->delivered += src->delivered;
    dst->delivered_in_window += src->delivered_in_window;
    dst->acked_in_window += src->acked_in_window;
    dst->seq_gaps += src->seq_gaps;
    dst->seq_dups += src->seq_dups;
    dst->other_deliveries += src->other_deliveries;
    for (size_t i = 0; i < BENCH_MAX_ROOMS; i++) {
        dst->room_acked[i] += src->room_acked[i];
        dst->room_members[i] += src->room_members[i];
    }
    dst->bench_cpu_ns += src->bench_cpu_ns;
    pc_loop_stats_add(&dst->bench_loop, &src->bench_loop);
    if (dst->measured_s == 0)
        dst->measured_s = src->measured_s;
    if (src->wall_s > dst->wall_s)
        dst->wall_s = src->wall_s;
    for (size_t j = 0; j < src->n_nodes && j < BENCH_MAX_NODES; j++) {
        if (j >= dst->n_nodes)
            dst->nodes[j] = src->nodes[j];
        else
            dst->nodes[j].sessions += src->nodes[j].sessions;
    }
    if (src->n_nodes > dst->n_nodes)
        dst->n_nodes = src->n_nodes;
    if (dst->error[0] == '\0' && src->error[0] != '\0')
        memcpy(dst->error, src->error, sizeof dst->error);
}

void bench_result_finish(struct bench_result *res, unsigned rooms)
{
    /* Every member of a room gets every acknowledged post, its author included. Rooms
     * past BENCH_MAX_ROOMS are left out of the check (their deliveries still count). */
    res->expected_deliveries = 0;
    for (unsigned i = 0; i < rooms && i < BENCH_MAX_ROOMS; i++)
        res->expected_deliveries += res->room_acked[i] * res->room_members[i];
}
