#include "pc_log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum pc_log_level pc_log_min_level = PC_LOG_INFO;
static char node_label[32] = "-";

static const char *level_names[] = {"DEBUG", "INFO", "NOTICE", "WARN", "ERROR"};

void pc_log_init(const char *label, enum pc_log_level min_level)
{
    snprintf(node_label, sizeof node_label, "%s", label != NULL ? label : "-");
    pc_log_min_level = min_level;
}

int pc_log_level_parse(const char *name)
{
    static const char *names[] = {"debug", "info", "notice", "warn", "error"};
    for (int i = 0; i < 5; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void pc_log_vwrite(enum pc_log_level level, const char *fmt, va_list ap)
{
    char msg[2048];
    char line[2048 * 4 + 128];
    struct timeval tv;
    struct tm tm;

    vsnprintf(msg, sizeof msg, fmt, ap);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-6s %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], node_label);
    size_t pos = (size_t)n;
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        if (pos + 5 >= sizeof line)
            break;
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            line[pos++] = (char)*p;
        } else {
            line[pos++] = '\\';
            line[pos++] = 'x';
            line[pos++] = hex[*p >> 4];
            line[pos++] = hex[*p & 15];
        }
    }
    line[pos++] = '\n';
    /* One write() per line keeps lines whole when several threads or processes share
     * the file. */
    ssize_t w = write(STDERR_FILENO, line, pos);
    (void)w;
}

void pc_log_write(enum pc_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pc_log_vwrite(level, fmt, ap);
    va_end(ap);
}
