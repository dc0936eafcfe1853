/* pchatctl's side of a node's admin socket: one JSON request line, one JSON answer line. */
#include "cmd/pchatctl/admin_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int admin_talk(const char *path, const char *request, char **answer)
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

json_t *admin_call(const char *path, json_t *req)
{
    char *text = json_dumps(req, JSON_COMPACT);
    char *answer = NULL;
    int rc = admin_talk(path, text, &answer);
    free(text);
    if (rc != 0)
        return NULL;
    json_t *ans = json_loads(answer, 0, NULL);
    if (ans == NULL)
        fprintf(stderr, "pchatctl: unreadable answer from %s: %s\n", path, answer);
    free(answer);
    return ans;
}
