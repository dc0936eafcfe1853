/* Reads the server's grpchat deliveries by scanning bytes (bench_scan.h). */
#include "cmd/pchat-bench/bench_scan.h"

#include <string.h>

static const char *find(const char *from, const char *end, const char *what)
{
    size_t n = strlen(what);
    return from < end ? memmem(from, (size_t)(end - from), what, n) : NULL;
}

bool bench_scan_grpchat(const char *body, size_t len, uint64_t *msg_id, char *text, size_t cap)
{
    const char *end = body + len;
    const char *tag = find(body, end, "<grpchat ");
    if (tag == NULL)
        return false;
    const char *close = memchr(tag, '>', (size_t)(end - tag));
    if (close == NULL || close[-1] == '/')
        return false;
    const char *id = find(tag, close, " msgid=\"");
    if (id == NULL)
        return false;
    uint64_t v = 0;
    const char *p = id + 8;
    for (; p < close && *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > UINT64_MAX / 10 || (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
            return false; /* does not fit */
        v = v * 10 + d;
    }
    if (p == id + 8 || p >= close || *p != '"')
        return false;
    const char *t = close + 1;
    if ((size_t)(end - t) < 6 || memcmp(t, "<chat>", 6) != 0)
        return false;
    t += 6;
    const char *t_end = find(t, end, "</chat>");
    if (t_end == NULL)
        return false;
    size_t n = (size_t)(t_end - t);
    if (n >= cap || memchr(t, '&', n) != NULL || memchr(t, '<', n) != NULL)
        return false;
    memcpy(text, t, n);
    text[n] = '\0';
    *msg_id = v;
    return true;
}
