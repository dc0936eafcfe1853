/* pchatctl: administer a pchat pool (categories, rooms, users) through a node's admin socket. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Usage: pchatctl [-S SOCKET] OBJECT VERB [NAME] [--field value]…
 * e.g.   pchatctl room new Planning --category General --privacy closed --members alice@x,bob@x
 *        pchatctl room list
 *        pchatctl user add dave@example.test --display_name Dave
 * The request sent is {"op": "OBJECT.VERB", "name"/"user": NAME, field: value…}; values
 * "true"/"false" become booleans. --json prints the raw answer. */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: pchatctl [-S SOCKET] [--json] OBJECT VERB [NAME] [--FIELD VALUE]…\n"
            "  -S SOCKET   the node's admin socket (default run/n1/admin.sock, or $PCHAT_ADMIN)\n"
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
            "           [--chat_enabled yes|no] [--disabled yes|no]\n"
            "  stats\n"
            "  pool status          every raft group (leader, term, commit, applied, lag) and peer link\n"
            "  shard transfer GROUP [--node ID]   hand a shard's ownership to another node (run it\n"
            "                       on the shard's current owner)\n"
            "LIST is comma-separated: alice@example.test,*@example.test,*\n");
}

static int talk(const char *path, const char *request, char **answer)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "pchatctl: socket path too long: %s\n", path);
        return 2;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "pchatctl: cannot reach the node at %s: %s (is it running? see "
                "'deploy/pool status')\n", path, strerror(errno));
        return 2;
    }
    size_t len = strlen(request);
    if (write(fd, request, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "pchatctl: write to %s failed: %s\n", path, strerror(errno));
        close(fd);
        return 2;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(buf, '\n', n) != NULL)
            break;
    }
    close(fd);
    buf[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "pchatctl: the node closed the connection without answering\n");
        free(buf);
        return 2;
    }
    *answer = buf;
    return 0;
}

int main(int argc, char **argv)
{
    const char *sock = getenv("PCHAT_ADMIN") ? getenv("PCHAT_ADMIN") : "run/n1/admin.sock";
    bool raw = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-S") == 0 && i + 1 < argc)
            sock = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
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
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *answer = NULL;
    int rc = talk(sock, text, &answer);
    free(text);
    if (rc != 0)
        return rc;
    json_t *ans = json_loads(answer, 0, NULL);
    if (ans == NULL) {
        fprintf(stderr, "pchatctl: unreadable answer: %s\n", answer);
        free(answer);
        return 2;
    }
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
    free(answer);
    return ok ? 0 : 1;
}
