/* Search strings: FTS5 expressions and the exact-case post-filter (search_expr.h). */
#include "search/search_expr.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pc_err.h"

struct word {
    const char *p;
    size_t len;  /* without the trailing '*' */
    bool prefix; /* ended in '*' */
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* What unicode61 keeps inside a token: ASCII letters and digits, and (approximately) every
 * non-ASCII byte. Used to drop words FTS5 would see as empty and to find word ends. */
static bool is_word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c >= 0x80;
}

static bool searchable(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (is_word_byte((unsigned char)p[i]))
            return true;
    return false;
}

/* Splits text into at most max words that FTS5 can search; *total counts every word
 * written, searchable or not (so that "too many" is about what the user typed). */
static size_t split(const char *text, struct word *w, size_t max, size_t *total)
{
    size_t n = 0;
    *total = 0;
    const char *s = text;
    while (*s != '\0') {
        while (is_space((unsigned char)*s))
            s++;
        if (*s == '\0')
            break;
        const char *start = s;
        while (*s != '\0' && !is_space((unsigned char)*s))
            s++;
        size_t len = (size_t)(s - start);
        (*total)++;
        bool prefix = false;
        while (len > 0 && start[len - 1] == '*') {
            len--;
            prefix = true;
        }
        if (!searchable(start, len) || n == max)
            continue;
        w[n++] = (struct word){.p = start, .len = len, .prefix = prefix};
    }
    return n;
}

/* An FTS5 string: double quotes doubled, so nothing the user types is FTS5 syntax. */
static void put_quoted(struct pc_buf *out, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '"')
            pc_buf_putc(out, '"');
        pc_buf_putc(out, p[i]);
    }
}

int search_expr_build(const char *text, enum search_mode mode, struct pc_buf *out, char *err,
                      size_t errlen)
{
    struct word w[SEARCH_WORDS_MAX];
    size_t total = 0;
    if (text == NULL)
        text = "";
    size_t tlen = strlen(text);
    if (tlen > SEARCH_QUERY_MAX) {
        snprintf(err, errlen, "the search text is too long (%zu bytes, at most %d): use fewer "
                 "or shorter words", tlen, SEARCH_QUERY_MAX);
        return PC_EINVAL;
    }
    size_t n = split(text, w, SEARCH_WORDS_MAX, &total);
    if (total == 0) {
        snprintf(err, errlen, "the search needs at least one word (q=…)");
        return PC_EINVAL;
    }
    if (total > SEARCH_WORDS_MAX) {
        snprintf(err, errlen, "too many words in the search (%zu, at most %d)", total,
                 SEARCH_WORDS_MAX);
        return PC_EINVAL;
    }
    if (n == 0) {
        snprintf(err, errlen, "the search has no letters or digits to look for");
        return PC_EINVAL;
    }
    /* A one-letter prefix merges a large part of the whole index for one page. */
    for (size_t i = 0; i < n; i++)
        if (w[i].prefix && w[i].len < 2) {
            snprintf(err, errlen, "'%.*s*' is too short a prefix: give at least 2 characters "
                     "before the '*'", (int)w[i].len, w[i].p);
            return PC_EINVAL;
        }
    pc_buf_reset(out);
    if (mode == SEARCH_PHRASE) {
        /* One FTS5 phrase: the tokens adjacent and in order; only its end may be a prefix. */
        pc_buf_putc(out, '"');
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                pc_buf_putc(out, ' ');
            put_quoted(out, w[i].p, w[i].len);
        }
        pc_buf_putc(out, '"');
        if (w[n - 1].prefix)
            pc_buf_putc(out, '*');
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                pc_buf_puts(out, mode == SEARCH_ALL ? " AND " : " OR ");
            pc_buf_putc(out, '"');
            put_quoted(out, w[i].p, w[i].len);
            pc_buf_putc(out, '"');
            if (w[i].prefix)
                pc_buf_putc(out, '*');
        }
    }
    return 0;
}

void search_room_tag(uint64_t room_no, char *buf, size_t cap)
{
    snprintf(buf, cap, "r%" PRIu64, room_no);
}

void search_expr_scope(struct pc_buf *out, const char *words, const uint64_t *rooms,
                       size_t n_rooms, const char *const *authors, size_t n_authors)
{
    pc_buf_reset(out);
    pc_buf_printf(out, "{text} : (%s)", words);
    if (n_rooms > 0 && n_rooms <= SEARCH_ROOM_TAGS_MAX) {
        pc_buf_puts(out, " AND {room_tag} : (");
        for (size_t i = 0; i < n_rooms; i++)
            pc_buf_printf(out, "%s\"r%" PRIu64 "\"", i > 0 ? " OR " : "", rooms[i]);
        pc_buf_putc(out, ')');
    }
    if (n_authors > 0) {
        pc_buf_puts(out, " AND {author_tag} : (");
        for (size_t i = 0; i < n_authors; i++) {
            pc_buf_puts(out, i > 0 ? " OR \"" : "\"");
            put_quoted(out, authors[i], strlen(authors[i]));
            pc_buf_putc(out, '"');
        }
        pc_buf_putc(out, ')');
    }
}

/* Does needle (words separated by single spaces, exact bytes) start at text[i], with a
 * word boundary before it and, unless prefix, after it? A space in needle matches one or
 * more white-space characters in text. */
static bool match_at(const char *text, size_t i, const char *needle, size_t nlen, bool prefix)
{
    if (i > 0 && is_word_byte((unsigned char)text[i - 1]) && is_word_byte((unsigned char)needle[0]))
        return false;
    size_t t = i;
    for (size_t k = 0; k < nlen; k++) {
        if (needle[k] == ' ') {
            if (!is_space((unsigned char)text[t]))
                return false;
            while (is_space((unsigned char)text[t]))
                t++;
            continue;
        }
        if (text[t] != needle[k])
            return false;
        t++;
    }
    if (!prefix && is_word_byte((unsigned char)needle[nlen - 1]) &&
        is_word_byte((unsigned char)text[t]))
        return false;
    return true;
}

static bool contains(const char *text, const char *needle, size_t nlen, bool prefix)
{
    if (nlen == 0)
        return true;
    for (size_t i = 0; text[i] != '\0'; i++)
        if (text[i] == needle[0] && match_at(text, i, needle, nlen, prefix))
            return true;
    return false;
}

bool search_expr_accepts(const char *text, const char *query, enum search_mode mode,
                         bool case_sensitive)
{
    if (!case_sensitive)
        return true;
    struct word w[SEARCH_WORDS_MAX];
    size_t total;
    size_t n = split(query, w, SEARCH_WORDS_MAX, &total);
    if (n == 0)
        return false;
    if (mode == SEARCH_PHRASE) {
        char phrase[SEARCH_QUERY_MAX + SEARCH_WORDS_MAX + 1];
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                phrase[len++] = ' ';
            memcpy(phrase + len, w[i].p, w[i].len);
            len += w[i].len;
        }
        return contains(text, phrase, len, w[n - 1].prefix);
    }
    for (size_t i = 0; i < n; i++) {
        bool found = contains(text, w[i].p, w[i].len, w[i].prefix);
        if (found && mode == SEARCH_ANY)
            return true;
        if (!found && mode == SEARCH_ALL)
            return false;
    }
    return mode == SEARCH_ALL;
}

int64_t search_key(int64_t ts_us, uint64_t room_no, uint64_t seq)
{
    /* A fixed mix (splitmix64's finaliser), so that every node computes the same key. */
    uint64_t h = room_no * 0x9e3779b97f4a7c15ULL ^ seq;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    /* Saturate: a search bound may be any date a client types (to=8767-12-31), and past
     * year 2255 the product would overflow. Messages never carry such times. */
    if (ts_us < 0)
        ts_us = 0;
    if (ts_us > INT64_MAX / 1024 - 1)
        ts_us = INT64_MAX / 1024 - 1;
    return ts_us * 1024 + (int64_t)(h & 1023);
}

void search_cursor_format(const struct search_cursor *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRId64, c->key);
}

bool search_cursor_parse(const char *s, struct search_cursor *c)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    long long key = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || key <= 0)
        return false;
    c->key = key;
    return true;
}
