/* pchat: a small persistent-chat client for people and scripts. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "chat/client/pcc.h"
#include "cmd/pchat/search_cli.h"
#include "common/pc_alloc.h"
#include "common/pc_buf.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_str.h"
#include "common/pc_time.h"

/* Commands (one per line on stdin, or one on the command line):
 *   rooms [words]            list rooms I may see (chansrch)
 *   join ROOM                join, then print the room's recent history
 *   history ROOM [N] [ID]    N messages (default 30) older than message ID
 *   post ROOM TEXT…          post; waits until the server committed it
 *   part ROOM                leave
 *   invites                  pending invitations
 *   info                     server limits (getserverinfo)
 *   wait SECONDS             keep printing what arrives, then go on
 *   quit
 * and, on the command line only, `search …` (over HTTP: search_cli.h).
 * ROOM is a room name or its ma-chan:// URI. Every output line starts with a word saying
 * what it is: ready, room, joined, msg, history, posted, error, enter, leave, invite, info. */

struct room_name {
    char name[260];
    char uri[300];
};

struct app {
    uv_loop_t loop;
    struct pcc *c;
    uv_pipe_t in;
    bool in_open;
    uv_timer_t wait_timer;
    uv_signal_t sigint;
    struct pc_buf lines;          /* unread stdin */
    char **queue;                 /* commands waiting to run */
    size_t nq, capq;
    bool busy;                    /* a command is waiting for its answer */
    char waiting_envid[24];
    uint32_t waiting_cseq;
    char current[1024];           /* the command being run */
    char pending_join[1024];      /* a command waiting for the room list (its room name) */
    char pending_line[1024];      /* that command in full */
    struct room_name *rooms;
    size_t n_rooms;
    bool follow;                  /* after the commands, keep printing until Ctrl-C */
    bool stdin_done;
    int failures;
    bool quitting;
};

static void next_command(struct app *a);

static void quit(struct app *a)
{
    if (a->quitting)
        return;
    a->quitting = true;
    if (a->in_open)
        uv_close((uv_handle_t *)&a->in, NULL);
    uv_close((uv_handle_t *)&a->wait_timer, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    pcc_close(a->c, false);
}

static void enqueue(struct app *a, const char *line)
{
    if (a->nq == a->capq) {
        a->capq = a->capq ? a->capq * 2 : 16;
        a->queue = pc_realloc(a->queue, a->capq * sizeof *a->queue);
    }
    a->queue[a->nq++] = pc_strdup(line);
}

static void push_front(struct app *a, const char *line)
{
    enqueue(a, line);
    char *last = a->queue[a->nq - 1];
    memmove(a->queue + 1, a->queue, (a->nq - 1) * sizeof *a->queue);
    a->queue[0] = last;
}

static const char *room_uri(struct app *a, const char *ref)
{
    if (strncmp(ref, "ma-chan://", 10) == 0)
        return ref;
    for (size_t i = 0; i < a->n_rooms; i++)
        if (strcasecmp(a->rooms[i].name, ref) == 0)
            return a->rooms[i].uri;
    return NULL;
}

static const char *room_name(struct app *a, const char *uri)
{
    for (size_t i = 0; i < a->n_rooms; i++)
        if (strcmp(a->rooms[i].uri, uri) == 0)
            return a->rooms[i].name;
    return uri;
}

static void remember_rooms(struct app *a, const struct xccos_msg *m)
{
    for (size_t i = 0; i < m->n_rooms; i++) {
        const struct xccos_room *r = &m->rooms[i];
        if (r->uri == NULL || r->name == NULL)
            continue;
        bool known = false;
        for (size_t j = 0; j < a->n_rooms; j++)
            known |= strcmp(a->rooms[j].uri, r->uri) == 0;
        if (known)
            continue;
        a->rooms = pc_realloc(a->rooms, (a->n_rooms + 1) * sizeof *a->rooms);
        pc_strlcpy(a->rooms[a->n_rooms].name, r->name, sizeof a->rooms[0].name);
        pc_strlcpy(a->rooms[a->n_rooms].uri, r->uri, sizeof a->rooms[0].uri);
        a->n_rooms++;
    }
}

static void done(struct app *a, bool ok)
{
    if (!ok)
        a->failures++;
    a->busy = false;
    a->waiting_envid[0] = '\0';
    a->waiting_cseq = 0;
    next_command(a);
}

static void print_chat(struct app *a, const char *kind, const struct xccos_chat *c)
{
    char ts[PC_ISO_LEN];
    pc_time_iso(c->ts_us, ts);
    /* One line per message: embedded newlines are shown as "\n". */
    struct pc_buf t = {0};
    for (const char *p = c->text ? c->text : ""; *p; p++) {
        if (*p == '\n')
            pc_buf_puts(&t, "\\n");
        else if (*p != '\r')
            pc_buf_putc(&t, *p);
    }
    printf("%s %s #%llu %s %s: %s\n", kind, room_name(a, c->chan_uri ? c->chan_uri : "?"),
           (unsigned long long)c->msg_id, ts, c->author ? c->author : "?", t.data ? t.data : "");
    pc_buf_free(&t);
}

/* ---- answers ------------------------------------------------------------------------------ */

static bool check_resp(const struct xccos_msg *m, const char *what)
{
    if (m->resp_code == 200)
        return true;
    printf("error %s: %d %s\n", what, m->resp_code, m->resp_text ? m->resp_text : "");
    return false;
}

static void on_reply(struct app *a, const struct xccos_msg *m)
{
    bool mine = a->busy && m->cmd_envid != NULL && strcmp(m->cmd_envid, a->waiting_envid) == 0;
    if (!mine)
        return; /* SIPE also ignores replies it did not wait for */
    switch (m->op) {
    case XCCOS_OP_CHANSRCH:
        remember_rooms(a, m);
        if (a->pending_join[0] != '\0') {
            /* A command named a room we did not know: run it again if the search found it. */
            const char *name = strchr(a->pending_join, ' ') + 1;
            a->busy = false;
            if (room_uri(a, name) == NULL) {
                printf("error no room named '%s' that you may see\n", name);
                a->pending_join[0] = '\0';
                done(a, false);
                return;
            }
            a->pending_join[0] = '\0';
            push_front(a, a->pending_line);
            next_command(a);
            return;
        }
        if (check_resp(m, "rooms"))
            for (size_t i = 0; i < m->n_rooms; i++) {
                const struct xccos_room *r = &m->rooms[i];
                printf("room %s users=%u %s %s — %s\n", r->name, r->user_count,
                       r->is_private ? "private" : "public", r->uri,
                       r->description ? r->description : "");
            }
        done(a, m->resp_code == 200);
        return;
    case XCCOS_OP_JOIN:
    case XCCOS_OP_BJOIN: {
        if (!check_resp(m, "join")) {
            done(a, false);
            return;
        }
        remember_rooms(a, m);
        for (size_t i = 0; i < m->n_rooms; i++) {
            const struct xccos_room *r = &m->rooms[i];
            struct pc_buf users = {0};
            const char *lists[2] = {r->manager_ids, r->member_ids};
            for (int l = 0; l < 2; l++) {
                char ids[4096];
                pc_strlcpy(ids, lists[l] ? lists[l] : "", sizeof ids);
                char *save = NULL;
                for (char *id = strtok_r(ids, ",", &save); id; id = strtok_r(NULL, ",", &save))
                    for (size_t u = 0; u < m->n_users; u++)
                        if (m->users[u].id && strcmp(m->users[u].id, id) == 0)
                            pc_buf_printf(&users, "%s%s%s", users.len ? "," : "", m->users[u].uri,
                                          l == 0 ? "(manager)" : "");
            }
            printf("joined %s %s users=%s\n", r->name, r->uri, users.data ? users.data : "");
            pc_buf_free(&users);
            /* Like SIPE: ask for the history of every room just joined. */
            a->waiting_cseq = pcc_history(a->c, r->uri, 0, 0, a->waiting_envid);
            return;
        }
        done(a, true);
        return;
    }
    case XCCOS_OP_BCCONTEXT:
        if (check_resp(m, "history") && m->n_rooms > 0)
            for (size_t i = 0; i < m->rooms[0].n_msgs; i++)
                print_chat(a, "history", &m->rooms[0].msgs[i]);
        done(a, m->resp_code == 200);
        return;
    case XCCOS_OP_PART:
        if (check_resp(m, "part"))
            printf("left %s\n", m->n_rooms ? room_name(a, m->rooms[0].uri) : "?");
        done(a, m->resp_code == 200);
        return;
    case XCCOS_OP_GETINV:
        if (check_resp(m, "invites"))
            for (size_t i = 0; i < m->n_invites; i++)
                printf("invite %s %s from %s\n", m->invites[i].name ? m->invites[i].name : "?",
                       m->invites[i].chan_uri ? m->invites[i].chan_uri : "?",
                       m->invites[i].inviter ? m->invites[i].inviter : "?");
        done(a, m->resp_code == 200);
        return;
    case XCCOS_OP_GETSERVERINFO:
        if (check_resp(m, "info"))
            printf("info messageSizeLimit=%u storySizeLimit=%u searchLimit=%u rootUri=%s\n",
                   m->server.message_size_limit, m->server.story_size_limit, m->server.search_limit,
                   m->server.root_uri ? m->server.root_uri : "");
        done(a, m->resp_code == 200);
        return;
    default:
        check_resp(m, m->op_name ? m->op_name : "command");
        done(a, m->resp_code == 200);
    }
}

static void on_event(void *ctx, struct pcc *c, struct pcc_event *ev)
{
    (void)c;
    struct app *a = ctx;
    switch (ev->kind) {
    case PCC_EV_READY:
        printf("ready %s %s\n", pcc_user(a->c), pcc_chat_uri(a->c));
        next_command(a);
        break;
    case PCC_EV_CLOSED:
        printf("error closed: %s\n", ev->reason);
        a->failures++;
        quit(a);
        break;
    case PCC_EV_SIP_RESPONSE:
        if (a->busy && ev->cseq == a->waiting_cseq && a->waiting_envid[0] == '\0') {
            if (ev->status == 200)
                printf("posted ok\n");
            else
                printf("error post: %d %s\n", ev->status, ev->reason);
            done(a, ev->status == 200);
        } else if (ev->status != 200) {
            printf("error command: %d %s\n", ev->status, ev->reason);
        }
        break;
    case PCC_EV_XCCOS: {
        const struct xccos_msg *m = &ev->msg;
        if (m->kind == XCCOS_KIND_GRPCHAT)
            print_chat(a, "msg", &m->chat);
        else if (m->kind == XCCOS_KIND_NTC)
            printf("%s %s %s\n", m->op == XCCOS_OP_JOIN ? "enter" : "leave",
                   room_name(a, m->presence.chan_uri ? m->presence.chan_uri : "?"),
                   m->presence.user_uri ? m->presence.user_uri : "?");
        else if (m->kind == XCCOS_KIND_RPL)
            on_reply(a, m);
        break;
    }
    }
    fflush(stdout);
    pcc_event_free(ev);
}

/* ---- commands ----------------------------------------------------------------------------- */

static void wait_done(uv_timer_t *t)
{
    done(t->data, true);
}

/* Starts one command line. Returns false when it completed at once. */
static bool run(struct app *a, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t", &save);
    char *arg = strtok_r(NULL, " \t", &save);
    char *rest = save != NULL ? save + strspn(save, " \t") : NULL;
    if (cmd == NULL || cmd[0] == '#')
        return false;
    if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0) {
        quit(a);
        return true;
    }
    if (strcmp(cmd, "wait") == 0) {
        double s = arg ? atof(arg) : 1;
        uv_timer_start(&a->wait_timer, wait_done, (uint64_t)(s * 1000), 0);
        return true;
    }
    if (strcmp(cmd, "rooms") == 0) {
        char words[512] = "";
        if (arg != NULL)
            snprintf(words, sizeof words, "%s%s%s", arg, rest && *rest ? " " : "", rest ? rest : "");
        a->waiting_cseq = pcc_search(a->c, words, a->waiting_envid);
        return true;
    }
    if (strcmp(cmd, "invites") == 0) {
        a->waiting_cseq = pcc_simple(a->c, XCCOS_OP_GETINV, a->waiting_envid);
        return true;
    }
    if (strcmp(cmd, "info") == 0) {
        a->waiting_cseq = pcc_simple(a->c, XCCOS_OP_GETSERVERINFO, a->waiting_envid);
        return true;
    }
    bool known = !strcmp(cmd, "join") || !strcmp(cmd, "post") || !strcmp(cmd, "history") ||
                 !strcmp(cmd, "part");
    if (!known) {
        printf("error unknown command '%s' (rooms, join, history, post, part, invites, info, "
               "wait, quit)\n", cmd);
        a->failures++;
        return false;
    }
    if (arg == NULL) {
        printf("error %s needs a room name\n", cmd);
        a->failures++;
        return false;
    }
    const char *uri = room_uri(a, arg);
    if (uri == NULL) {
        /* Unknown name: look it up first, then run this line again. */
        snprintf(a->pending_line, sizeof a->pending_line, "%s %s%s%s", cmd, arg,
                 rest && *rest ? " " : "", rest ? rest : "");
        snprintf(a->pending_join, sizeof a->pending_join, "%s %s", cmd, arg);
        a->waiting_cseq = pcc_search(a->c, arg, a->waiting_envid);
        return true;
    }
    if (strcmp(cmd, "join") == 0) {
        a->waiting_cseq = pcc_join(a->c, &uri, 1, a->waiting_envid);
    } else if (strcmp(cmd, "part") == 0) {
        a->waiting_cseq = pcc_part(a->c, uri, a->waiting_envid);
    } else if (strcmp(cmd, "history") == 0) {
        char *n = strtok_r(NULL, " \t", &save);
        char *before = strtok_r(NULL, " \t", &save);
        a->waiting_cseq = pcc_history(a->c, uri, n ? (unsigned)atoi(n) : 30,
                                      before ? strtoull(before, NULL, 10) : 0, a->waiting_envid);
    } else {
        if (rest == NULL || *rest == '\0') {
            printf("error post needs a text\n");
            a->failures++;
            return false;
        }
        a->waiting_envid[0] = '\0';
        a->waiting_cseq = pcc_post(a->c, uri, rest);
    }
    return true;
}

static void next_command(struct app *a)
{
    while (!a->busy && !a->quitting && pcc_ready(a->c)) {
        if (a->nq == 0) {
            if (a->stdin_done && !a->follow)
                quit(a);
            return;
        }
        char *line = a->queue[0];
        memmove(a->queue, a->queue + 1, (a->nq - 1) * sizeof *a->queue);
        a->nq--;
        pc_strlcpy(a->current, line, sizeof a->current);
        a->busy = true;
        if (!run(a, line))
            a->busy = false;
        pc_free(line);
    }
}

static void stdin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct app *a = h->data;
    pc_buf_reserve(&a->lines, 4096);
    buf->base = a->lines.data + a->lines.len;
    buf->len = a->lines.cap - a->lines.len - 1;
}

static void stdin_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct app *a = s->data;
    if (nread < 0) {
        a->stdin_done = true;
        if (a->lines.len > 0) {
            enqueue(a, a->lines.data);
            pc_buf_reset(&a->lines);
        }
        uv_close((uv_handle_t *)&a->in, NULL);
        a->in_open = false;
        next_command(a);
        return;
    }
    a->lines.len += (size_t)nread;
    a->lines.data[a->lines.len] = '\0';
    char *nl;
    while ((nl = memchr(a->lines.data, '\n', a->lines.len)) != NULL) {
        *nl = '\0';
        if (nl > a->lines.data && nl[-1] == '\r')
            nl[-1] = '\0';
        enqueue(a, a->lines.data);
        pc_buf_consume(&a->lines, (size_t)(nl - a->lines.data) + 1);
    }
    next_command(a);
}

static void on_sigint(uv_signal_t *h, int sig)
{
    (void)sig;
    quit(h->data);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pchat [-s HOST:PORT] -u USER [-p PASSWORD] [--lync] [--follow] [COMMAND [ARGS…]]\n"
            "  -s HOST:PORT  a pool node's SIP address (default 127.0.0.1:5060)\n"
            "  -w URL        the node's web services, for search (default http://127.0.0.1:8080,\n"
            "                or $PCHAT_URL)\n"
            "  -u USER       your SIP address, e.g. alice@example.test\n"
            "  -p PASSWORD   answers the server's Digest challenge (or $PCHAT_PASSWORD)\n"
            "  --lync        sign in like Lync 2013 (no requri two-step)\n"
            "  --follow      after the commands, keep printing messages until Ctrl-C\n"
            "Without COMMAND, commands are read from standard input, one per line:\n"
            "  rooms [words] | join ROOM | history ROOM [N] [ID] | post ROOM TEXT | part ROOM\n"
            "  invites | info | wait SECONDS | quit\n"
            "Search (command line only; over HTTP, XCCOS has no such command):\n"
            "  search [--all|--phrase] [--case] [--author A,B] [--room R,S] [--from DATE]\n"
            "         [--to DATE] [--limit N] [--before CURSOR] WORDS…\n"
            "Example: pchat -u alice@example.test post Lobby 'hello everyone'\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"lync", no_argument, NULL, 'L'}, {"follow", no_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    static struct app a;
    const char *server = "127.0.0.1:5060", *user = NULL;
    bool lync = false;
    int opt;
    const char *password = getenv("PCHAT_PASSWORD");
    const char *web = getenv("PCHAT_URL") ? getenv("PCHAT_URL") : "http://127.0.0.1:8080";
    while ((opt = getopt_long(argc, argv, "+s:u:p:w:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': server = optarg; break;
        case 'w': web = optarg; break;
        case 'u': user = optarg; break;
        case 'p': password = optarg; break;
        case 'L': lync = true; break;
        case 'F': a.follow = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (user == NULL) {
        usage(stderr);
        return 2;
    }
    if (optind < argc && strcmp(argv[optind], "search") == 0)
        return pchat_search(web, user, password, argc - optind - 1, argv + optind + 1);
    char host[64];
    int port = 5060;
    const char *colon = strrchr(server, ':');
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - server) : (int)strlen(server), server);
    if (colon != NULL)
        port = atoi(colon + 1);
    pc_log_init("pchat", PC_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&a.loop);
    uv_timer_init(&a.loop, &a.wait_timer);
    a.wait_timer.data = &a;
    uv_signal_init(&a.loop, &a.sigint);
    a.sigint.data = &a;
    uv_signal_start(&a.sigint, on_sigint, SIGINT);
    if (optind < argc) {
        struct pc_buf line = {0};
        for (int i = optind; i < argc; i++)
            pc_buf_printf(&line, "%s%s", i > optind ? " " : "", argv[i]);
        enqueue(&a, line.data);
        pc_buf_free(&line);
        a.stdin_done = true;
    } else {
        uv_pipe_init(&a.loop, &a.in, 0);
        a.in.data = &a;
        uv_pipe_open(&a.in, STDIN_FILENO);
        a.in_open = true;
        uv_read_start((uv_stream_t *)&a.in, stdin_alloc, stdin_read);
    }
    struct pcc_config cfg = {.host = host, .port = port, .user = user, .password = password,
                             .lync_flow = lync,
                             .on_event = on_event, .ctx = &a};
    a.c = pcc_start(&a.loop, &cfg);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    for (size_t i = 0; i < a.nq; i++)
        pc_free(a.queue[i]);
    pc_free(a.queue);
    pc_free(a.rooms);
    pc_buf_free(&a.lines);
    return a.failures > 0 ? 1 : 0;
}
