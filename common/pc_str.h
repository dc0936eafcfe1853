/* String slices into buffers owned by someone else, and small string helpers. */
#ifndef PC_STR_H
#define PC_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* A borrowed, not necessarily NUL-terminated byte range. */
struct pc_str {
    const char *p;
    size_t len;
};

#define PC_STR_LIT(s) ((struct pc_str){(s), sizeof(s) - 1})

static inline struct pc_str pc_str_c(const char *s)
{
    return (struct pc_str){s, s != NULL ? strlen(s) : 0};
}

static inline bool pc_str_eq(struct pc_str a, struct pc_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool pc_str_ieq(struct pc_str a, struct pc_str b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

/* Copies at most cap-1 bytes of s into dst and NUL-terminates; returns false if cut. */
bool pc_strlcpy(char *dst, const char *src, size_t cap);

/* ASCII lower-casing in place. */
void pc_str_lower(char *s);

/* Case-insensitive substring search (ASCII); needle "" matches. */
bool pc_str_icontains(const char *haystack, const char *needle);

/* Parses a whole decimal string into [min,max]; returns false on any junk or overflow. */
bool pc_parse_u64(const char *s, unsigned long long min, unsigned long long max,
                  unsigned long long *out);

/* True if the bytes are well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool pc_utf8_valid(const char *s, size_t len);
/* Replaces every byte that is not part of valid UTF-8 with '?' (text that must go into
 * JSON or XML: a cut in the middle of a character, bytes a client sent). */
void pc_utf8_sanitize(char *s);

/* Number of Unicode code points in valid UTF-8. */
size_t pc_utf8_count(const char *s, size_t len);

#endif
