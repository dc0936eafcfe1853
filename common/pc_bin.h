/* Compact binary encoding for stored records, raft entries and peer-link frames. */
#ifndef PC_BIN_H
#define PC_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pc_buf.h"
#include "pc_str.h"

/* Writers append to a pc_buf. Integers are LEB128 varints (uv) or fixed big-endian (be,
 * used in keys so that byte order is numeric order); strings and byte strings are a varint
 * length followed by the bytes. */
void pc_bin_put_u8(struct pc_buf *b, uint8_t v);
void pc_bin_put_uv(struct pc_buf *b, uint64_t v);
void pc_bin_put_sv(struct pc_buf *b, int64_t v); /* zig-zag signed varint */
void pc_bin_put_be64(struct pc_buf *b, uint64_t v);
void pc_bin_put_be32(struct pc_buf *b, uint32_t v);
void pc_bin_put_bytes(struct pc_buf *b, const void *p, size_t len);
void pc_bin_put_str(struct pc_buf *b, const char *s); /* NULL is written as "" */

void pc_be64_write(uint8_t *dst, uint64_t v);
uint64_t pc_be64_read(const uint8_t *src);
void pc_be32_write(uint8_t *dst, uint32_t v);
uint32_t pc_be32_read(const uint8_t *src);

/* A reader over untrusted bytes. Any read past the end, oversized length or bad varint
 * sets `err` to PC_ECORRUPT and makes every later read return zero/empty, so a decoder can
 * read all fields and check `err` once at the end. */
struct pc_bin_reader {
    const uint8_t *p;
    const uint8_t *end;
    int err;
};

void pc_bin_reader_init(struct pc_bin_reader *r, const void *p, size_t len);
uint8_t pc_bin_get_u8(struct pc_bin_reader *r);
uint64_t pc_bin_get_uv(struct pc_bin_reader *r);
int64_t pc_bin_get_sv(struct pc_bin_reader *r);
uint64_t pc_bin_get_be64(struct pc_bin_reader *r);
uint32_t pc_bin_get_be32(struct pc_bin_reader *r);
/* Borrowed slice into the input. */
struct pc_str pc_bin_get_bytes(struct pc_bin_reader *r);
/* A pc_malloc'd NUL-terminated copy (caller frees); strings with an embedded NUL or longer
 * than max_len are corrupt. Returns "" (allocated) on error so callers can free uniformly. */
char *pc_bin_get_str(struct pc_bin_reader *r, size_t max_len);
bool pc_bin_at_end(const struct pc_bin_reader *r);

#endif
