#include "pc_rand.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

void pc_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("pchat: getrandom");
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

uint64_t pc_random_u64(void)
{
    uint64_t v;
    pc_random_bytes(&v, sizeof v);
    return v;
}

void pc_random_hex(char *buf, size_t nbytes)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char tmp[64];
    while (nbytes > 0) {
        size_t n = nbytes < sizeof tmp ? nbytes : sizeof tmp;
        pc_random_bytes(tmp, n);
        for (size_t i = 0; i < n; i++) {
            *buf++ = hex[tmp[i] >> 4];
            *buf++ = hex[tmp[i] & 15];
        }
        nbytes -= n;
    }
    *buf = '\0';
}

void pc_guid(char *buf)
{
    unsigned char b[16];
    pc_random_bytes(b, sizeof b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(buf, PC_GUID_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}
