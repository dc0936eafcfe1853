/* Declarative settings tables read from INI files (inih), validated whole at load. */
#ifndef PC_CONF_H
#define PC_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum pc_conf_type { PC_CONF_INT, PC_CONF_BOOL, PC_CONF_STR, PC_CONF_SIZE };

/* One setting: "[section] name", its type, where it lives in the target struct, its
 * default (as text, parsed like file input) and bounds (INT/SIZE), and one line of help
 * that the example config and `--print-config` show. */
struct pc_conf_item {
    const char *section;
    const char *name;
    enum pc_conf_type type;
    size_t offset;
    const char *def;
    long long min, max;
    const char *help;
};

/* Sets every item of table (terminated by a NULL name) to its default in target. */
void pc_conf_defaults(const struct pc_conf_item *table, void *target);

/* Reads path into target. Unknown sections or options, bad values and syntax errors are
 * errors: returns false with one line in err naming the file, line and option, e.g.
 * "pchatd.conf:12: [sip] tcp_port = 'abc': expected an integer from 1 to 65535". Strings
 * are pc_malloc'd (free with pc_conf_free). */
bool pc_conf_load(const struct pc_conf_item *table, void *target, const char *path, char *err,
                  size_t errlen);

/* Sets one option from "section.name=value" (command-line overrides). */
bool pc_conf_set(const struct pc_conf_item *table, void *target, const char *assignment,
                 char *err, size_t errlen);

/* Writes the effective configuration as an INI file with help comments. */
void pc_conf_print(const struct pc_conf_item *table, const void *target, FILE *out);

void pc_conf_free(const struct pc_conf_item *table, void *target);

/* Parses "64k", "20000KB", "1M", "512" into bytes. */
bool pc_parse_size(const char *s, unsigned long long *out);

#endif
