/* pchatctl: administer a pchat pool. Categories, rooms, users, stats and compliance go to a
 * node's admin API over HTTP(S) (docs/WEB.md); what is cluster-internal (pool status, node
 * membership, shard moves, drills) goes to the node's local admin socket. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/pchatctl/admin_client.h"
#include "cmd/pchatctl/admin_http.h"
#include "cmd/pchatctl/drill.h"
#include "cmd/pchatctl/transfer.h"

/* Usage: pchatctl [-S SOCKET] OBJECT VERB [NAME] [--field value]…
 * e.g.   pchatctl room new Planning --category General --privacy closed --members alice@x,bob@x
 *        pchatctl room list
 *        pchatctl user add dave@example.test --display_name Dave
 * The request sent is {"op": "OBJECT.VERB", "name"/"user": NAME, field: value…}; values
 * "true"/"false" become booleans. --json prints the raw answer. */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pchatctl [-U URL] [-T TOKENFILE | -u USER] [-S SOCKET] [--json] OBJECT VERB [NAME]\n"
            "                [--FIELD VALUE]…\n"
            "  -U URL      the node's web services (default http://127.0.0.1:8080, or $PCHAT_URL)\n"
            "  -T FILE     an admin token file (default run/n1/data/admin.token, the node's own\n"
            "              local administrator token, or $PCHAT_TOKEN_FILE)\n"
            "  -u USER     sign in as an administrator instead (password from $PCHAT_PASSWORD or asked)\n"
            "  --cacert F  CA certificate for an https:// URL (or $PCHAT_CA)\n"
            "  -S SOCKET   the node's admin socket (default run/n1/admin.sock, or $PCHAT_ADMIN): for\n"
            "              pool, node, shard and drill, and for everything when given without -U\n"
            "objects and verbs:\n"
            "  category new|set|get|list|remove NAME [--description D] [--allowed LIST]\n"
            "           [--denied LIST] [--creators LIST] [--file_upload yes|no]\n"
            "           [--chat_history yes|no] [--invitations yes|no] [--new_name N]\n"
            "  room new|set|get|list|remove NAME [--category C] [--description D]\n"
            "           [--privacy open|closed|secret] [--type normal|auditorium]\n"
            "           [--managers LIST] [--members LIST] [--presenters LIST]\n"
            "           [--disabled yes|no] [--invitations yes|no] [--new_name N]\n"
            "  room invite NAME --user USER\n"
            "  user add|set|get|list|remove USER [--display_name N] [--admin yes|no]\n"
            "           [--chat_enabled yes|no] [--disabled yes|no] [--password P]\n"
            "  user passwd USER --password P   (stored as scrypt + Digest HA1, never in clear)\n"
            "  message remove ROOM [--user U] [--keywords W] [--match any|all|exact]\n"
            "           [--case_sensitive yes] [--from DATE] [--to DATE] [--id N]\n"
            "           [--remove yes | --notice TEXT]   (Remove-CsPersistentChatMessage)\n"
            "  room clear ROOM --end_date DATE   delete the room's messages up to DATE\n"
            "  config get | config set [--default_chat_history N] [--participant_update_limit N]\n"
            "           [--max_file_size_kb N] [--removal_notice TEXT]   (pool-wide)\n"
            "  export [--room NAME]… [--from DATE] [--to DATE] [--no-history] [-o FILE]\n"
            "  import FILE   load an export (idempotent: importing twice changes nothing)\n"
            "  stats\n"
            "  pool status          every raft group (leader, term, commit, applied, lag) and peer link\n"
            "  node list|add|remove ID [--address HOST:PORT]   the pool's members; a new node\n"
            "                       starts with [cluster] join = yes, then: node add 4 --address …\n"
            "  compliance status    adapters (backlog, failures, last error) and the log size here\n"
            "  compliance forget ADAPTER   stop an adapter that was taken out of service from\n"
            "                       holding events back\n"
            "  index status         this node's search index: messages, lag, rebuilds, last rate\n"
            "  index rebuild        throw this node's search index away and build it again from\n"
            "                       its store, in the background (searches go on meanwhile)\n"
            "  drill kill-owner ROOM [--stop SECONDS] [--sockets GLOB] [--user USER]\n"
            "                       kill (or pause) the room's owner under a probe client, report the\n"
            "                       outage and check that no acknowledged post was lost\n"
            "  shard transfer GROUP [--node ID]   hand a shard's ownership to another node (run it\n"
            "                       on the shard's current owner)\n"
            "LIST is comma-separated: alice@example.test,*@example.test,*\n");
}

/* pchatctl drill kill-owner ROOM [--stop SECONDS] [--sockets GLOB] [--user USER] */
static int drill_main(const char *sock, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], "kill-owner") != 0) {
        fprintf(stderr, "pchatctl: usage: drill kill-owner ROOM [--stop SECONDS] [--sockets GLOB] "
                "[--user USER]\n");
        return 2;
    }
    const char *room = argv[1], *sockets = NULL, *user = "admin@example.test";
    unsigned stop_s = 0;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "pchatctl: drill: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--stop") == 0)
            stop_s = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--sockets") == 0)
            sockets = argv[++i];
        else if (strcmp(argv[i], "--user") == 0)
            user = argv[++i];
        else {
            fprintf(stderr, "pchatctl: drill: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    return drill_kill_owner(sock, sockets, room, user, stop_s);
}

/* Reads the first line of a token file into out. */
static bool read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] != '\0';
}

/* Cluster-internal operations: only the node's admin socket takes them. */
static bool cluster_internal(const char *op)
{
    return strncmp(op, "pool.", 5) == 0 || strncmp(op, "node.", 5) == 0 ||
           strncmp(op, "shard.", 6) == 0;
}

/* Where a request goes: -S alone = the socket for everything; otherwise HTTP except for
 * cluster-internal operations. */
static json_t *call_node(const char *sock, bool sock_only, struct admin_http *web,
                         const char *token_file, json_t *req)
{
    const char *op = json_string_value(json_object_get(req, "op"));
    if (sock_only || cluster_internal(op))
        return admin_call(sock, req);
    static char token[1024];
    static char password[256];
    if (web->user == NULL && web->token == NULL) {
        if (!read_token(token_file, token, sizeof token)) {
            fprintf(stderr, "pchatctl: no admin token in %s: run pchatctl on the node's machine "
                    "(the node writes <data_dir>/admin.token), pass -T FILE, or sign in with -u USER\n",
                    token_file);
            return NULL;
        }
        web->token = token;
    }
    if (web->user != NULL && web->password == NULL) {
        const char *env = getenv("PCHAT_PASSWORD");
        if (env == NULL) {
            char *typed = getpass("password: ");
            snprintf(password, sizeof password, "%s", typed != NULL ? typed : "");
            env = password;
        }
        web->password = env;
    }
    return admin_http_call(web, req);
}

struct node_target {
    const char *sock;
    bool sock_only;
    struct admin_http *web;
    const char *token_file;
};

static json_t *call_target(void *ctx, json_t *req)
{
    struct node_target *t = ctx;
    return call_node(t->sock, t->sock_only, t->web, t->token_file, req);
}

int main(int argc, char **argv)
{
    const char *sock = getenv("PCHAT_ADMIN") ? getenv("PCHAT_ADMIN") : "run/n1/admin.sock";
    const char *token_file = getenv("PCHAT_TOKEN_FILE") ? getenv("PCHAT_TOKEN_FILE")
                                                        : "run/n1/data/admin.token";
    struct admin_http web = {.url = getenv("PCHAT_URL") ? getenv("PCHAT_URL") : "http://127.0.0.1:8080",
                             .cacert = getenv("PCHAT_CA")};
    bool sock_given = getenv("PCHAT_ADMIN") != NULL, url_given = getenv("PCHAT_URL") != NULL;
    bool raw = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-S") == 0 && i + 1 < argc) {
            sock = argv[++i];
            sock_given = true;
        } else if (strcmp(argv[i], "-U") == 0 && i + 1 < argc) {
            web.url = argv[++i];
            url_given = true;
        } else if (strcmp(argv[i], "-T") == 0 && i + 1 < argc) {
            token_file = argv[++i];
        } else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
            web.user = argv[++i];
        } else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc) {
            web.cacert = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0)
            raw = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[i], "drill") == 0)
        return drill_main(sock, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "export") == 0 || strcmp(argv[i], "import") == 0) {
        struct node_target t = {sock, sock_given && !url_given, &web, token_file};
        struct transfer_api api = {call_target, &t};
        return argv[i][0] == 'e' ? transfer_export(&api, argc - i - 1, argv + i + 1)
                                 : transfer_import(&api, argc - i - 1, argv + i + 1);
    }
    json_t *req = json_object();
    const char *object = argv[i++];
    char op[64];
    if (strcmp(object, "stats") == 0) {
        snprintf(op, sizeof op, "stats");
    } else {
        if (i >= argc) {
            fprintf(stderr, "pchatctl: %s needs a verb (e.g. %s list)\n", object, object);
            return 2;
        }
        snprintf(op, sizeof op, "%s.%s", object, argv[i++]);
    }
    json_object_set_new(req, "op", json_string(op));
    if (i < argc && strncmp(argv[i], "--", 2) != 0)
        json_object_set_new(req, strcmp(object, "user") == 0 ? "user" : "name", json_string(argv[i++]));
    for (; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "pchatctl: expected --FIELD VALUE, got '%s'\n", argv[i]);
            return 2;
        }
        const char *field = argv[i] + 2, *value = argv[++i];
        if (!strcmp(value, "true") || !strcmp(value, "yes"))
            json_object_set_new(req, field, json_true());
        else if (!strcmp(value, "false") || !strcmp(value, "no"))
            json_object_set_new(req, field, json_false());
        else
            json_object_set_new(req, field, json_string(value));
    }
    json_t *ans = call_node(sock, sock_given && !url_given, &web, token_file, req);
    json_decref(req);
    if (ans == NULL)
        return 2; /* the reason is printed */
    bool ok = json_is_true(json_object_get(ans, "ok"));
    if (raw || ok) {
        json_object_del(ans, "ok");
        char *pretty = json_dumps(ans, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (json_object_size(ans) > 0)
            printf("%s\n", pretty);
        else
            printf("ok\n");
        free(pretty);
    } else {
        fprintf(stderr, "pchatctl: %s\n", json_string_value(json_object_get(ans, "error")));
    }
    json_decref(ans);
    return ok ? 0 : 1;
}
