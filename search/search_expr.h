/* A user's search string → an FTS5 MATCH expression, and the checks FTS5 cannot do.
 *
 * Syntax: words separated by white space; a word ending in '*' matches as a prefix
 * ("deploy*" finds deployment). Nothing else is special: quotes, AND/OR/NOT, parentheses and
 * column filters are searched as text, because every word is handed to FTS5 as a quoted
 * string. Pure functions, no I/O (tests/unit/test_search_expr.c). */
#ifndef SEARCH_EXPR_H
#define SEARCH_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pc_buf.h"
#include "search/search.h"

/* Writes the MATCH expression for text into out (NUL-terminated). Returns 0, or PC_EINVAL
 * with a message for the user in err: empty, too long, too many words, no letters or
 * digits at all. */
int search_expr_build(const char *text, enum search_mode mode, struct pc_buf *out, char *err,
                      size_t errlen);

/* The full MATCH: the words in the text column, and, when that narrows the search, the
 * rooms (at most SEARCH_ROOM_TAGS_MAX of them) and authors in their tag columns. The SQL
 * filters on msg.room and msg.author stay the exact check; this only lets FTS5 skip rows. */
#define SEARCH_ROOM_TAGS_MAX 32
void search_expr_scope(struct pc_buf *out, const char *words, const uint64_t *rooms,
                       size_t n_rooms, const char *const *authors, size_t n_authors);
/* The room's token in the room_tag column: "r17". */
void search_room_tag(uint64_t room_no, char *buf, size_t cap);

/* The post-filter on a message's current text. FTS5 (unicode61) matches tokens without
 * regard to case; a case-sensitive search keeps a message only if the words appear in it
 * exactly (as whole words, or as the word's prefix for "word*"), and a phrase only if it
 * appears as typed (runs of white space match any run of white space). Case-insensitive
 * searches trust FTS5 and always pass. */
bool search_expr_accepts(const char *text, const char *query, enum search_mode mode,
                         bool case_sensitive);

/* Cursors are opaque to clients: the key in decimal. */
void search_cursor_format(const struct search_cursor *c, char *buf, size_t cap);
bool search_cursor_parse(const char *s, struct search_cursor *c);

#endif
