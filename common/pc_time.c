#include "pc_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t pc_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t pc_mono_ms(void)
{
    return pc_mono_ns() / 1000000u;
}

int64_t pc_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void pc_time_iso(int64_t wall_us, char *buf)
{
    time_t sec = (time_t)(wall_us / 1000000);
    long frac = (long)(wall_us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        sec -= 1;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* Years are clamped to four digits: the wire format has no room for more. */
    int year = tm.tm_year + 1900;
    year = year < 0 ? 0 : year > 9999 ? 9999 : year;
    snprintf(buf, PC_ISO_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld0Z", year, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool pc_time_parse_iso(const char *s, int64_t *wall_us)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    long us = 0;
    size_t n = strlen(s);
    if (n < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return false;
    const char *p = s + 10;
    if (*p == 'T' || *p == ' ') {
        if (strlen(p) < 9 || !digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) ||
            p[6] != ':' || !digits(p + 7, 2, &se))
            return false;
        p += 9;
        if (*p == '.') {
            p++;
            long scale = 100000;
            if (*p < '0' || *p > '9')
                return false;
            for (; *p >= '0' && *p <= '9'; p++) {
                us += (*p - '0') * scale;
                scale /= 10;
            }
        }
        if (*p == 'Z')
            p++;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return false;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = se};
    time_t t = timegm(&tm);
    *wall_us = (int64_t)t * 1000000 + us;
    return true;
}
