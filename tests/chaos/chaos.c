/* pchat-chaos: the client side of the chaos run (tests/chaos/run): posters under a
 * supervisor, history dumps of every room from one node, and the report that adds what
 * pchat-check does not see (unavailability windows per room, compliance completeness).
 *
 *   pchat-chaos load DIR NAME USER ROOM WINDOW RATE HOST:PORT...
 *   pchat-chaos dump OUT NODE HOST:PORT ROOM...
 *   pchat-chaos store-dump OUT NODE DATA_DIR
 *   pchat-chaos report DIR T0_MS [STOP_MS]
 *
 * load: one poster (tests/lib/tl_load.c) in ROOM, signed in as USER, up to WINDOW posts in
 * flight and at most RATE posts a second (0: as fast as answers come), connected to the first HOST:PORT and moving on to the next one whenever its
 * connection dies. The poster runs in a child process; if it dies (tl's helpers exit when
 * an answer does not come in time, e.g. a join while the node is paused) the supervisor
 * starts a new generation with a new client name, so every log stays a consistent client
 * for pchat-check. Each generation G writes, under DIR:
 *   clients/NAME.G.log   the checker's client log (C S A F U J R lines)
 *   acks/NAME.G          first line the room, then the wall-clock ms of every 10 ms slice
 *                        in which at least one post was acknowledged
 *   stat/NAME.G          "sent acked refused unknown delivered reconnects", every second
 * SIGTERM or SIGINT: stop posting, wait up to 15 s for the posts in flight, exit 0.
 *
 * dump: the node's stored history of every ROOM (by name) through a client on HOST:PORT,
 * as one checker node dump (N line, then H lines) in OUT.
 *
 * dump reads through the chat service, which asks the room's owner: it tests the read path
 * but shows one replica. store-dump shows one replica's own store: the stopped node's
 * RocksDB under DATA_DIR, every room the node's metadata knows, read with roomlog_read
 * (the owner's read path), as a checker node dump with the rooms' URIs.
 *
 * report: reads DIR/acks, DIR/clients and the JSON lines in DIR/compl (the exec compliance adapter's
 * output of every node) and prints the unavailability window per room (the longest time
 * between two acknowledgements in the room, over all its posters, before STOP_MS: once the
 * posters were told to stop, a late answer to a post stuck in a client's TCP retransmission
 * backoff is no measure of the room's availability) and the compliance
 * check: every acknowledged post is a CHAT event (after de-duplication by event id), each
 * file's CHAT events of a room in increasing seq. Exit 1 if an event is missing or out of
 * order. Also writes DIR/report.vars (shell assignments) for the run script's summary. */
/* uthash allocates through pc_malloc, as the library's tables do (before any include). */
#define uthash_malloc(sz) pc_malloc(sz)
#define uthash_free(ptr, sz) pc_free(ptr)

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "cluster/cluster.h"
#include "cluster/meta.h"
#include "cluster/roomlog.h"
#include "common/pc_alloc.h"
#include "common/pc_arena.h"
#include "common/pc_err.h"
#include "common/pc_str.h"
#include "common/pc_time.h"
#include "storage/store.h"
#include "tests/lib/tl.h"
#include "tests/lib/tl_load.h"

#include <uthash.h>

#define MAX_NODES 8

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Without SA_RESTART, so a blocked waitpid() returns and the signal is seen at once. */
static void catch_stop_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static int64_t wall_ms(void)
{
    return pc_wall_us() / 1000;
}

/* "10.77.0.1:5061" -> host, port; registers the host for tl's clients. */
static int parse_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    if (colon == NULL || (size_t)(colon - s) >= sizeof host) {
        fprintf(stderr, "pchat-chaos: HOST:PORT expected, not '%s'\n", s);
        exit(2);
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "pchat-chaos: bad port in '%s'\n", s);
        exit(2);
    }
    tl_client_host((int)port, host);
    return (int)port;
}

static void mkdir_p(const char *dir, const char *sub)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "pchat-chaos: mkdir %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

static void write_stat(const char *path, const struct tl_poster_stats *st)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "%llu %llu %llu %llu %llu %llu\n", (unsigned long long)st->sent,
            (unsigned long long)st->acked, (unsigned long long)st->refused,
            (unsigned long long)st->unknown, (unsigned long long)st->delivered,
            (unsigned long long)st->reconnects);
    fclose(f);
    rename(tmp, path);
}

/* ---- load -------------------------------------------------------------------------------- */

struct load_args {
    const char *dir, *name, *user, *room;
    unsigned window, rate;
    int ports[MAX_NODES];
    size_t n_ports;
};

/* One generation of the poster; returns the process exit status. */
static int run_poster(const struct load_args *a, unsigned gen)
{
    char client[64], log_path[600], acks_path[600], stat_path[600], why[256];
    snprintf(client, sizeof client, "%s.%u", a->name, gen);
    snprintf(log_path, sizeof log_path, "%s/clients/%s.log", a->dir, client);
    snprintf(acks_path, sizeof acks_path, "%s/acks/%s", a->dir, client);
    snprintf(stat_path, sizeof stat_path, "%s/stat/%s", a->dir, client);
    /* Each generation starts on another node than the one before. */
    int ports[MAX_NODES];
    for (size_t k = 0; k < a->n_ports; k++)
        ports[k] = a->ports[(k + gen - 1) % a->n_ports];

    struct tl_client *probe = tl_client_try(ports[0], a->user, why, sizeof why);
    if (probe == NULL) {
        fprintf(stderr, "chaos: %s: cannot sign in on port %d: %s\n", client, ports[0], why);
        return 3;
    }
    char uri[256];
    bool found = tl_room_uri(probe, a->room, uri, sizeof uri) != NULL;
    tl_client_close(probe);
    if (!found) {
        fprintf(stderr, "chaos: %s: no room named %s\n", client, a->room);
        return 4;
    }
    FILE *acks = fopen(acks_path, "w");
    if (acks == NULL)
        return 5;
    fprintf(acks, "%s\n", a->room);
    fflush(acks);
    struct tl_poster *p = tl_poster_new(client, a->user, ports, a->n_ports, uri, a->window, log_path);
    struct tl_poster_stats st;
    uint64_t last_acked = 0;
    int64_t next_stat = 0, start = wall_ms();
    tl_poster_stats(p, &st);
    while (!stop_requested) {
        /* Paced: post in this slice only while behind RATE posts a second. */
        int64_t now = wall_ms();
        bool posting = a->rate == 0 || st.sent < (uint64_t)(now - start) * a->rate / 1000 + 1;
        tl_posters_run(&p, 1, 10, posting);
        tl_poster_stats(p, &st);
        now = wall_ms();
        if (st.acked != last_acked) {
            last_acked = st.acked;
            fprintf(acks, "%lld\n", (long long)now);
            fflush(acks);
        }
        if (now >= next_stat) {
            write_stat(stat_path, &st);
            next_stat = now + 1000;
        }
    }
    tl_posters_settle(&p, 1, 15000);
    tl_poster_stats(p, &st);
    if (st.acked != last_acked)
        fprintf(acks, "%lld\n", (long long)wall_ms());
    fclose(acks);
    write_stat(stat_path, &st);
    tl_poster_free(p); /* posts still in flight become U in the log (not in the stat) */
    return 0;
}

static int cmd_load(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: pchat-chaos load DIR NAME USER ROOM WINDOW RATE HOST:PORT...\n");
        return 2;
    }
    struct load_args a = {.dir = argv[1], .name = argv[2], .user = argv[3], .room = argv[4]};
    a.window = (unsigned)strtoul(argv[5], NULL, 10);
    a.rate = (unsigned)strtoul(argv[6], NULL, 10);
    for (int i = 7; i < argc && a.n_ports < MAX_NODES; i++)
        a.ports[a.n_ports++] = parse_hostport(argv[i]);
    mkdir_p(a.dir, "clients");
    mkdir_p(a.dir, "acks");
    mkdir_p(a.dir, "stat");
    catch_stop_signals();
    for (unsigned gen = 1;; gen++) {
        fflush(NULL);
        pid_t child = fork();
        if (child < 0) {
            perror("pchat-chaos: fork");
            return 1;
        }
        if (child == 0)
            _exit(run_poster(&a, gen));
        int status = 0;
        bool forwarded = false;
        for (;;) {
            if (stop_requested && !forwarded) {
                kill(child, SIGTERM);
                forwarded = true;
            }
            if (waitpid(child, &status, 0) == child)
                break;
            if (errno != EINTR) {
                perror("pchat-chaos: waitpid");
                return 1;
            }
        }
        if (stop_requested)
            return 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            return 0;
        char what[64];
        if (WIFSIGNALED(status))
            snprintf(what, sizeof what, "signal %d", WTERMSIG(status));
        else
            snprintf(what, sizeof what, "exit %d", WEXITSTATUS(status));
        fprintf(stderr, "chaos: poster %s.%u ended (%s); starting %s.%u\n", a.name, gen, what,
                a.name, gen + 1);
        /* Sleep 1 s, but wake for a stop request. */
        for (int i = 0; i < 10 && !stop_requested; i++)
            usleep(100000);
        if (stop_requested)
            return 0;
    }
}

/* ---- dump -------------------------------------------------------------------------------- */

static int cmd_dump(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: pchat-chaos dump OUT NODE HOST:PORT ROOM...\n");
        return 2;
    }
    const char *out = argv[1], *node = argv[2];
    int port = parse_hostport(argv[3]);
    struct tl_client *probe = tl_client_new(port, "admin@example.test");
    FILE *f = fopen(out, "w");
    if (f == NULL) {
        fprintf(stderr, "pchat-chaos: %s: %s\n", out, strerror(errno));
        return 1;
    }
    fprintf(f, "N\t%s\n", node);
    size_t total = 0;
    for (int i = 4; i < argc; i++) {
        char uri[256], tmp[700];
        if (tl_room_uri(probe, argv[i], uri, sizeof uri) == NULL) {
            fprintf(stderr, "pchat-chaos: node %s does not know room %s\n", node, argv[i]);
            return 1;
        }
        snprintf(tmp, sizeof tmp, "%s.part", out);
        total += tl_dump_history(port, node, uri, tmp);
        FILE *part = fopen(tmp, "r");
        char line[8192];
        while (part != NULL && fgets(line, sizeof line, part) != NULL)
            if (line[0] == 'H')
                fputs(line, f);
        if (part != NULL)
            fclose(part);
        unlink(tmp);
    }
    fclose(f);
    tl_client_close(probe);
    printf("%zu\n", total);
    return 0;
}

/* ---- store-dump ------------------------------------------------------------------------- */

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

struct page {
    struct pc_arena arena;
    struct room_msg *msgs;
    size_t n;
};

static int cmd_store_dump(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: pchat-chaos store-dump OUT NODE DATA_DIR\n");
        return 2;
    }
    const char *out = argv[1], *node = argv[2];
    char path[600], err[256];
    snprintf(path, sizeof path, "%s/db", argv[3]);
    struct store_options so = {.create_if_missing = false};
    struct store *st;
    int rc = store_open(path, &so, &st, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "pchat-chaos: %s: %s\n", path, err);
        return 1;
    }
    struct meta m;
    memset(&m, 0, sizeof m);
    rc = meta_load(&m, st);
    FILE *f = rc == 0 ? fopen(out, "w") : NULL;
    if (f == NULL) {
        fprintf(stderr, "pchat-chaos: %s: %s\n", rc != 0 ? "metadata" : out,
                rc != 0 ? pc_strerror(rc) : strerror(errno));
        if (rc == 0)
            meta_free(&m);
        store_close(st);
        return 1;
    }
    fprintf(f, "N\t%s\n", node);
    size_t total = 0;
    for (struct meta_room *r = m.rooms_by_no; r != NULL && rc == 0; r = r->hh_no.next) {
        char uri[300];
        snprintf(uri, sizeof uri, "ma-chan://%s/%s", m.domain, r->guid);
        /* Pages come newest first (seq < before); write them oldest first. */
        struct page *pages = NULL;
        size_t n_pages = 0;
        uint64_t before = 0;
        for (;;) {
            pages = pc_realloc(pages, (n_pages + 1) * sizeof *pages);
            struct page *p = &pages[n_pages];
            memset(p, 0, sizeof *p);
            rc = roomlog_read(st, r->no, before, 0, 1000, &p->arena, &p->msgs, &p->n);
            if (rc != 0 || p->n == 0) {
                pc_arena_free(&p->arena);
                break;
            }
            n_pages++;
            before = p->msgs[0].seq;
            if (before <= 1)
                break;
        }
        for (size_t i = n_pages; i-- > 0;) {
            for (size_t j = 0; j < pages[i].n; j++) {
                const struct room_msg *msg = &pages[i].msgs[j];
                char seq[24];
                snprintf(seq, sizeof seq, "%llu", (unsigned long long)msg->seq);
                fputc('H', f);
                put_field(f, uri);
                put_field(f, seq);
                put_field(f, msg->author);
                put_field(f, msg->text);
                fputc('\n', f);
                total++;
            }
            pc_arena_free(&pages[i].arena);
        }
        pc_free(pages);
    }
    fclose(f);
    meta_free(&m);
    store_close(st);
    if (rc != 0) {
        fprintf(stderr, "pchat-chaos: reading %s: %s\n", path, pc_strerror(rc));
        return 1;
    }
    printf("%zu\n", total);
    return 0;
}

/* ---- report ------------------------------------------------------------------------------ */

struct room_acks {
    char name[128];
    int64_t *t;
    size_t n, cap;
    unsigned posters;
    UT_hash_handle hh;
};

struct strset {
    char *s;
    UT_hash_handle hh;
};

static bool strset_add(struct strset **set, const char *s)
{
    struct strset *e;
    HASH_FIND_STR(*set, s, e);
    if (e != NULL)
        return false;
    e = pc_malloc(sizeof *e);
    e->s = pc_strdup(s);
    HASH_ADD_KEYPTR(hh, *set, e->s, strlen(e->s), e);
    return true;
}

static bool strset_has(struct strset *set, const char *s)
{
    struct strset *e;
    HASH_FIND_STR(set, s, e);
    return e != NULL;
}

static void strset_free(struct strset **set)
{
    struct strset *e, *tmp;
    HASH_ITER(hh, *set, e, tmp) {
        HASH_DEL(*set, e);
        pc_free(e->s);
        pc_free(e);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Calls fn(path) for every regular file in dir/sub (sorted, so output is stable). */
static void each_file(const char *dir, const char *sub, void (*fn)(const char *path, void *arg),
                      void *arg)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char file[900];
            snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
            fn(file, arg);
        }
        free(names[i]);
    }
    if (n >= 0)
        free(names);
}

static void read_acks(const char *path, void *arg)
{
    struct room_acks **rooms = arg;
    FILE *f = fopen(path, "r");
    char line[256];
    if (f == NULL || fgets(line, sizeof line, f) == NULL) {
        if (f != NULL)
            fclose(f);
        return;
    }
    line[strcspn(line, "\n")] = '\0';
    struct room_acks *r;
    HASH_FIND_STR(*rooms, line, r);
    if (r == NULL) {
        r = pc_calloc(1, sizeof *r);
        pc_strlcpy(r->name, line, sizeof r->name);
        HASH_ADD_STR(*rooms, name, r);
    }
    r->posters++;
    while (fgets(line, sizeof line, f) != NULL) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 1024;
            r->t = pc_realloc(r->t, r->cap * sizeof *r->t);
        }
        r->t[r->n++] = strtoll(line, NULL, 10);
    }
    fclose(f);
}

/* The acknowledged posts' texts from one client log (S gives msgid -> text, A acks it). */
struct acked {
    struct strset *texts;
    size_t n;
};

static void read_client_log(const char *path, void *arg)
{
    struct acked *acked = arg;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    struct msg {
        char *id, *text;
        UT_hash_handle hh;
    } *by_id = NULL, *m, *tmp;
    char line[8192];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL, *kind = strtok_r(line, "\t", &save);
        if (kind == NULL)
            continue;
        if (strcmp(kind, "S") == 0) {
            strtok_r(NULL, "\t", &save); /* room */
            char *id = strtok_r(NULL, "\t", &save), *text = strtok_r(NULL, "\t", &save);
            if (id == NULL || text == NULL)
                continue;
            m = pc_malloc(sizeof *m);
            m->id = pc_strdup(id);
            m->text = pc_strdup(text);
            HASH_ADD_KEYPTR(hh, by_id, m->id, strlen(m->id), m);
        } else if (strcmp(kind, "A") == 0) {
            char *id = strtok_r(NULL, "\t", &save);
            if (id == NULL)
                continue;
            HASH_FIND_STR(by_id, id, m);
            if (m != NULL && strset_add(&acked->texts, m->text))
                acked->n++;
        }
    }
    fclose(f);
    HASH_ITER(hh, by_id, m, tmp) {
        HASH_DEL(by_id, m);
        pc_free(m->id);
        pc_free(m->text);
        pc_free(m);
    }
}

struct compl {
    struct strset *ids, *chat_texts;
    size_t lines, events, redelivered, chat, joins, parts, out_of_order, bad_lines;
};

/* One adapter output file: JSON lines (docs/COMPLIANCE.md, exec adapter). */
static void read_compl(const char *path, void *arg)
{
    struct compl *c = arg;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    struct strset *seen_here = NULL;
    struct room_seq {
        char *room;
        json_int_t seq;
        UT_hash_handle hh;
    } *last = NULL, *rs, *tmp;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        c->lines++;
        json_t *e = json_loads(line, 0, NULL);
        const char *id = e ? json_string_value(json_object_get(e, "id")) : NULL;
        const char *type = e ? json_string_value(json_object_get(e, "type")) : NULL;
        if (id == NULL || type == NULL) {
            c->bad_lines++;
            json_decref(e);
            continue;
        }
        bool first_here = strset_add(&seen_here, id);
        if (strset_add(&c->ids, id)) {
            c->events++;
            if (strcmp(type, "CHAT") == 0) {
                c->chat++;
                const char *content = json_string_value(json_object_get(e, "content"));
                if (content != NULL)
                    strset_add(&c->chat_texts, content);
            }
            c->joins += strcmp(type, "JOIN") == 0;
            c->parts += strcmp(type, "PART") == 0;
        } else {
            c->redelivered++;
        }
        /* Within one node's output, a room's CHAT events (each taken the first time it
         * appears there) come in increasing seq: the dispatcher keeps each group's order
         * and a re-delivery starts again from the committed cursor. */
        const char *room = json_string_value(json_object_get(e, "room_id"));
        if (first_here && strcmp(type, "CHAT") == 0 && room != NULL) {
            json_int_t seq = json_integer_value(json_object_get(e, "seq"));
            HASH_FIND_STR(last, room, rs);
            if (rs == NULL) {
                rs = pc_calloc(1, sizeof *rs);
                rs->room = pc_strdup(room);
                HASH_ADD_KEYPTR(hh, last, rs->room, strlen(rs->room), rs);
            }
            if (seq <= rs->seq) {
                if (c->out_of_order++ == 0)
                    printf("compliance: %s: room %s CHAT seq %lld after seq %lld\n", path, room,
                           (long long)seq, (long long)rs->seq);
            } else {
                rs->seq = seq;
            }
        }
        json_decref(e);
    }
    free(line);
    fclose(f);
    strset_free(&seen_here);
    HASH_ITER(hh, last, rs, tmp) {
        HASH_DEL(last, rs);
        pc_free(rs->room);
        pc_free(rs);
    }
}

static int cmp_room(const void *a, const void *b)
{
    return strcmp(((const struct room_acks *)a)->name, ((const struct room_acks *)b)->name);
}

static int cmd_report(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pchat-chaos report DIR T0_MS [STOP_MS]\n");
        return 2;
    }
    const char *dir = argv[1];
    int64_t t0 = strtoll(argv[2], NULL, 10);
    int64_t stop = argc > 3 ? strtoll(argv[3], NULL, 10) : INT64_MAX;
    char vars_path[600];
    snprintf(vars_path, sizeof vars_path, "%s/report.vars", dir);
    FILE *vars = fopen(vars_path, "w");
    if (vars == NULL) {
        fprintf(stderr, "pchat-chaos: %s: %s\n", vars_path, strerror(errno));
        return 2;
    }

    /* Unavailability: per room, the longest time between two acknowledgements. */
    struct room_acks *rooms = NULL, *r, *rtmp;
    each_file(dir, "acks", read_acks, &rooms);
    HASH_SORT(rooms, cmp_room);
    printf("%-12s %8s %10s %12s %14s\n", "room", "posters", "ack-slices", "longest gap", "gap starts at");
    fprintf(vars, "avail_rooms='");
    HASH_ITER(hh, rooms, r, rtmp) {
        qsort(r->t, r->n, sizeof *r->t, cmp_i64);
        while (r->n > 0 && r->t[r->n - 1] >= stop)
            r->n--;
        int64_t gap = 0, at = 0;
        for (size_t i = 1; i < r->n; i++)
            if (r->t[i] - r->t[i - 1] > gap) {
                gap = r->t[i] - r->t[i - 1];
                at = r->t[i - 1];
            }
        char when[32] = "-";
        if (gap > 0)
            snprintf(when, sizeof when, "t+%.1f s", (double)(at - t0) / 1000.0);
        printf("%-12s %8u %10zu %10.1f s %14s\n", r->name, r->posters, r->n, (double)gap / 1000.0,
               when);
        fprintf(vars, "%s=%.1fs ", r->name, (double)gap / 1000.0);
        HASH_DEL(rooms, r);
        pc_free(r->t);
        pc_free(r);
    }
    fprintf(vars, "'\n");

    /* Compliance: every acknowledged post is a CHAT event. */
    struct acked acked = {0};
    each_file(dir, "clients", read_client_log, &acked);
    struct compl c = {0};
    each_file(dir, "compl", read_compl, &c);
    size_t missing = 0;
    struct strset *e, *etmp;
    HASH_ITER(hh, acked.texts, e, etmp) {
        if (!strset_has(c.chat_texts, e->s) && missing++ < 5)
            printf("compliance: acknowledged post %s has no CHAT event\n", e->s);
    }
    printf("compliance: %zu lines, %zu distinct events (%zu re-delivered, %zu unreadable): %zu CHAT, "
           "%zu JOIN, %zu PART; %zu acknowledged posts, %zu missing, %zu out of order\n",
           c.lines, c.events, c.redelivered, c.bad_lines, c.chat, c.joins, c.parts, acked.n, missing,
           c.out_of_order);
    fprintf(vars, "compl_events=%zu\ncompl_redelivered=%zu\ncompl_chat=%zu\ncompl_acked=%zu\n"
            "compl_missing=%zu\ncompl_order=%zu\n",
            c.events, c.redelivered, c.chat, acked.n, missing, c.out_of_order);
    fclose(vars);
    strset_free(&acked.texts);
    strset_free(&c.ids);
    strset_free(&c.chat_texts);
    return missing == 0 && c.out_of_order == 0 && c.bad_lines == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "load") == 0)
        return cmd_load(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "store-dump") == 0)
        return cmd_store_dump(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "usage: pchat-chaos load DIR NAME USER ROOM WINDOW RATE HOST:PORT...\n"
                    "       pchat-chaos dump OUT NODE HOST:PORT ROOM...\n"
                    "       pchat-chaos store-dump OUT NODE DATA_DIR\n"
                    "       pchat-chaos report DIR T0_MS [STOP_MS]\n"
                    "(see tests/chaos/chaos.c; run by tests/chaos/run)\n");
    return 2;
}
