#include "pc_bin.h"

#include <string.h>

#include "pc_alloc.h"
#include "pc_err.h"

void pc_bin_put_u8(struct pc_buf *b, uint8_t v)
{
    pc_buf_append(b, &v, 1);
}

void pc_bin_put_uv(struct pc_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        tmp[n++] = byte | (v != 0 ? 0x80 : 0);
    } while (v != 0);
    pc_buf_append(b, tmp, n);
}

void pc_bin_put_sv(struct pc_buf *b, int64_t v)
{
    pc_bin_put_uv(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void pc_be64_write(uint8_t *dst, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        dst[i] = v & 0xff;
        v >>= 8;
    }
}

uint64_t pc_be64_read(const uint8_t *src)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | src[i];
    return v;
}

void pc_be32_write(uint8_t *dst, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        dst[i] = v & 0xff;
        v >>= 8;
    }
}

uint32_t pc_be32_read(const uint8_t *src)
{
    return ((uint32_t)src[0] << 24) | ((uint32_t)src[1] << 16) | ((uint32_t)src[2] << 8) | src[3];
}

void pc_bin_put_be64(struct pc_buf *b, uint64_t v)
{
    uint8_t tmp[8];
    pc_be64_write(tmp, v);
    pc_buf_append(b, tmp, 8);
}

void pc_bin_put_be32(struct pc_buf *b, uint32_t v)
{
    uint8_t tmp[4];
    pc_be32_write(tmp, v);
    pc_buf_append(b, tmp, 4);
}

void pc_bin_put_bytes(struct pc_buf *b, const void *p, size_t len)
{
    pc_bin_put_uv(b, len);
    pc_buf_append(b, p, len);
}

void pc_bin_put_str(struct pc_buf *b, const char *s)
{
    pc_bin_put_bytes(b, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

void pc_bin_reader_init(struct pc_bin_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->end = r->p + len;
    r->err = 0;
}

static bool need(struct pc_bin_reader *r, size_t n)
{
    if (r->err != 0)
        return false;
    if ((size_t)(r->end - r->p) < n) {
        r->err = PC_ECORRUPT;
        return false;
    }
    return true;
}

uint8_t pc_bin_get_u8(struct pc_bin_reader *r)
{
    if (!need(r, 1))
        return 0;
    return *r->p++;
}

uint64_t pc_bin_get_uv(struct pc_bin_reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!need(r, 1))
            return 0;
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) {
            r->err = PC_ECORRUPT;
            return 0;
        }
        v |= (uint64_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0)
            return v;
    }
    r->err = PC_ECORRUPT;
    return 0;
}

int64_t pc_bin_get_sv(struct pc_bin_reader *r)
{
    uint64_t u = pc_bin_get_uv(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

uint64_t pc_bin_get_be64(struct pc_bin_reader *r)
{
    if (!need(r, 8))
        return 0;
    uint64_t v = pc_be64_read(r->p);
    r->p += 8;
    return v;
}

uint32_t pc_bin_get_be32(struct pc_bin_reader *r)
{
    if (!need(r, 4))
        return 0;
    uint32_t v = pc_be32_read(r->p);
    r->p += 4;
    return v;
}

struct pc_str pc_bin_get_bytes(struct pc_bin_reader *r)
{
    uint64_t len = pc_bin_get_uv(r);
    if (!need(r, len))
        return (struct pc_str){"", 0};
    struct pc_str s = {(const char *)r->p, (size_t)len};
    r->p += len;
    return s;
}

char *pc_bin_get_str(struct pc_bin_reader *r, size_t max_len)
{
    struct pc_str s = pc_bin_get_bytes(r);
    if (r->err == 0 && (s.len > max_len || memchr(s.p, '\0', s.len) != NULL))
        r->err = PC_ECORRUPT;
    if (r->err != 0)
        return pc_strdup("");
    return pc_strndup(s.p, s.len);
}

bool pc_bin_at_end(const struct pc_bin_reader *r)
{
    return r->err == 0 && r->p == r->end;
}
