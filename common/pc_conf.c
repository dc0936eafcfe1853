#include "pc_conf.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pc_alloc.h"
#include "pc_str.h"

static const struct pc_conf_item *find(const struct pc_conf_item *t, const char *sec,
                                       const char *name)
{
    for (; t->name != NULL; t++)
        if (strcmp(t->section, sec) == 0 && strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

bool pc_parse_size(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return false;
    unsigned long long mul = 1;
    if (strcasecmp(end, "") == 0 || strcasecmp(end, "b") == 0)
        mul = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mul = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0)
        mul = 1024ull * 1024 * 1024;
    else
        return false;
    if (v > ~0ull / mul)
        return false;
    *out = v * mul;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "on") || !strcmp(s, "1"))
        *out = true;
    else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "off") || !strcmp(s, "0"))
        *out = false;
    else
        return false;
    return true;
}

/* Stores value into the item's field; on error writes the reason (without location). */
static bool assign(const struct pc_conf_item *it, void *target, const char *value, char *err,
                   size_t errlen)
{
    char *base = target;
    switch (it->type) {
    case PC_CONF_INT:
    case PC_CONF_SIZE: {
        unsigned long long v;
        bool ok;
        if (it->type == PC_CONF_SIZE)
            ok = pc_parse_size(value, &v);
        else
            ok = pc_parse_u64(value, 0, ~0ull, &v);
        if (!ok || v < (unsigned long long)it->min || v > (unsigned long long)it->max) {
            snprintf(err, errlen, "expected %s from %lld to %lld",
                     it->type == PC_CONF_SIZE ? "a size (e.g. 64k, 20M)" : "an integer", it->min,
                     it->max);
            return false;
        }
        if (it->type == PC_CONF_SIZE)
            *(size_t *)(base + it->offset) = (size_t)v;
        else
            *(int *)(base + it->offset) = (int)v;
        return true;
    }
    case PC_CONF_BOOL:
        if (!parse_bool(value, (bool *)(base + it->offset))) {
            snprintf(err, errlen, "expected yes or no");
            return false;
        }
        return true;
    case PC_CONF_STR: {
        char **slot = (char **)(base + it->offset);
        pc_free(*slot);
        *slot = pc_strdup(value);
        return true;
    }
    }
    return false;
}

void pc_conf_defaults(const struct pc_conf_item *table, void *target)
{
    char err[128];
    for (const struct pc_conf_item *it = table; it->name != NULL; it++) {
        if (it->type == PC_CONF_STR)
            *(char **)((char *)target + it->offset) = NULL;
        if (it->def != NULL)
            assign(it, target, it->def, err, sizeof err);
    }
}

struct load_ctx {
    const struct pc_conf_item *table;
    void *target;
    const char *path;
    char *err;
    size_t errlen;
    bool failed;
    int failed_line; /* line of the handler's error, to order it against syntax errors */
    FILE *file;
    int line;
};

/* Debian's inih does not pass line numbers to the handler, so reads go through this
 * counting reader: when the handler runs, `line` is the line it is about. */
static char *read_line(char *buf, int size, void *stream)
{
    struct load_ctx *c = stream;
    char *r = fgets(buf, size, c->file);
    if (r != NULL)
        c->line++;
    return r;
}

static int on_item(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *c = user;
    int lineno = c->line;
    if (c->failed)
        return 0;
    if (name == NULL)
        return 1; /* a section header on its own */
    const struct pc_conf_item *it = find(c->table, section, name);
    if (it == NULL) {
        snprintf(c->err, c->errlen, "%s:%d: unknown option [%s] %s (see deploy/pchatd.conf.example)",
                 c->path, lineno, section, name);
        c->failed = true;
        c->failed_line = lineno;
        return 0;
    }
    char why[160];
    if (!assign(it, c->target, value, why, sizeof why)) {
        snprintf(c->err, c->errlen, "%s:%d: [%s] %s = '%s': %s", c->path, lineno, section, name,
                 value, why);
        c->failed = true;
        c->failed_line = lineno;
        return 0;
    }
    return 1;
}

bool pc_conf_load(const struct pc_conf_item *table, void *target, const char *path, char *err,
                  size_t errlen)
{
    struct load_ctx c = {table, target, path, err, errlen, false, 0, NULL, 0};
    c.file = fopen(path, "r");
    if (c.file == NULL) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return false;
    }
    int rc = ini_parse_stream(read_line, &c, on_item, &c);
    fclose(c.file);
    /* rc is the first bad line of either kind: report a syntax error that comes before the
     * handler's error (e.g. "[net" then "port = 1" is a broken header, not an unknown option). */
    if (c.failed && rc == c.failed_line)
        return false;
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: syntax error (expected 'name = value' or '[section]')", path, rc);
        return false;
    }
    return true;
}

bool pc_conf_set(const struct pc_conf_item *table, void *target, const char *assignment,
                 char *err, size_t errlen)
{
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (dot == NULL || eq == NULL || dot > eq) {
        snprintf(err, errlen, "'%s': expected section.name=value", assignment);
        return false;
    }
    char sec[64], name[64];
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    const struct pc_conf_item *it = find(table, sec, name);
    if (it == NULL) {
        snprintf(err, errlen, "unknown option [%s] %s", sec, name);
        return false;
    }
    char why[160];
    if (!assign(it, target, eq + 1, why, sizeof why)) {
        snprintf(err, errlen, "[%s] %s = '%s': %s", sec, name, eq + 1, why);
        return false;
    }
    return true;
}

void pc_conf_print(const struct pc_conf_item *table, const void *target, FILE *out)
{
    const char *section = "";
    const char *base = target;
    for (const struct pc_conf_item *it = table; it->name != NULL; it++) {
        if (strcmp(section, it->section) != 0) {
            section = it->section;
            fprintf(out, "\n[%s]\n", section);
        }
        fprintf(out, "# %s\n", it->help);
        switch (it->type) {
        case PC_CONF_INT:
            fprintf(out, "%s = %d\n", it->name, *(const int *)(base + it->offset));
            break;
        case PC_CONF_SIZE:
            fprintf(out, "%s = %zu\n", it->name, *(const size_t *)(base + it->offset));
            break;
        case PC_CONF_BOOL:
            fprintf(out, "%s = %s\n", it->name, *(const bool *)(base + it->offset) ? "yes" : "no");
            break;
        case PC_CONF_STR: {
            const char *v = *(char *const *)(base + it->offset);
            fprintf(out, "%s = %s\n", it->name, v != NULL ? v : "");
            break;
        }
        }
    }
}

void pc_conf_free(const struct pc_conf_item *table, void *target)
{
    for (const struct pc_conf_item *it = table; it->name != NULL; it++)
        if (it->type == PC_CONF_STR) {
            char **slot = (char **)((char *)target + it->offset);
            pc_free(*slot);
            *slot = NULL;
        }
}
