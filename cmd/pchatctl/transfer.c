/* pchatctl export / import: the pool's categories, users' policies, rooms with their ACLs,
 * and history as a versioned JSON-lines stream (docs/EXPORT.md), driven through the admin
 * API one bounded request at a time. Import makes the target match the stream: what exists
 * and is equal is left alone, so importing twice changes nothing. */
#include "cmd/pchatctl/transfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORMAT "pchat-export"
#define VERSION 1
#define IMPORT_BATCH 500           /* ROOM_IMPORT_MAX */
#define IMPORT_BATCH_BYTES (1 << 20) /* a request crosses one peer-link frame (4 MiB) */

/* The fields of each record that an export carries and an import sets (the others, such as
 * a room's owner or its connected users, describe the running pool, not its content). */
static const char *const category_fields[] = {"name", "description", "allowed", "denied",
    "creators", "file_upload", "chat_history", "invitations", "retention_days",
    "retention_messages", NULL};
static const char *const user_fields[] = {"user", "display_name", "admin", "chat_enabled",
                                          "disabled", NULL};
static const char *const room_fields[] = {"name", "id", "description", "category", "privacy",
    "type", "disabled", "invitations", "managers", "members", "presenters", "retention_days",
    "retention_messages", NULL};

struct counts {
    unsigned long categories, users, rooms, messages;
};

static json_t *call(const struct transfer_api *api, json_t *req)
{
    json_t *ans = api->call(api->ctx, req);
    json_decref(req);
    return ans;
}

static bool ok(json_t *ans)
{
    return ans != NULL && json_is_true(json_object_get(ans, "ok"));
}

static const char *why(json_t *ans)
{
    const char *e = json_string_value(json_object_get(ans, "error"));
    return e != NULL ? e : "no answer";
}

static json_t *pick(json_t *from, const char *type, const char *const *fields)
{
    json_t *o = json_pack("{s:s}", "record", type);
    for (size_t i = 0; fields[i] != NULL; i++) {
        json_t *v = json_object_get(from, fields[i]);
        if (v != NULL)
            json_object_set(o, fields[i], v);
    }
    return o;
}

static void emit(FILE *out, json_t *line)
{
    char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(out, "%s\n", s);
    free(s);
    json_decref(line);
}

/* ---- export ---------------------------------------------------------------------------------- */

static bool export_list(const struct transfer_api *api, FILE *out, const char *op,
                        const char *key, const char *type, const char *const *fields,
                        unsigned long *count)
{
    json_t *ans = call(api, json_pack("{s:s}", "op", op));
    if (!ok(ans)) {
        fprintf(stderr, "pchatctl: export: %s: %s\n", op, why(ans));
        json_decref(ans);
        return false;
    }
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(ans, key), i, it) {
        emit(out, pick(it, type, fields));
        (*count)++;
    }
    json_decref(ans);
    return true;
}

static bool export_history(const struct transfer_api *api, FILE *out, const char *room_id,
                           const char *name, const char *from, const char *to, struct counts *n)
{
    long long after = 0;
    unsigned long before = n->messages;
    for (;;) {
        json_t *req = json_pack("{s:s, s:s, s:I}", "op", "history.export", "room", room_id,
                                "after", (json_int_t)after);
        if (from != NULL)
            json_object_set_new(req, "from", json_string(from));
        if (to != NULL)
            json_object_set_new(req, "to", json_string(to));
        json_t *ans = call(api, req);
        if (!ok(ans)) {
            fprintf(stderr, "pchatctl: export: history of room '%s': %s\n", name, why(ans));
            json_decref(ans);
            return false;
        }
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(ans, "messages"), i, m) {
            json_t *line = json_pack("{s:s, s:s}", "record", "message", "room", room_id);
            json_object_update(line, m);
            emit(out, line);
            n->messages++;
        }
        long long next = json_integer_value(json_object_get(ans, "next"));
        bool done = json_is_true(json_object_get(ans, "done")) || next <= after;
        json_decref(ans);
        if (done)
            break;
        after = next;
    }
    fprintf(stderr, "pchatctl: export: room '%s': %lu messages\n", name, n->messages - before);
    return true;
}

int transfer_export(const struct transfer_api *api, int argc, char **argv)
{
    const char *rooms[64], *from = NULL, *to = NULL, *path = NULL;
    size_t n_rooms = 0;
    bool history = true;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--room") && i + 1 < argc && n_rooms < 64)
            rooms[n_rooms++] = argv[++i];
        else if (!strcmp(argv[i], "--from") && i + 1 < argc)
            from = argv[++i];
        else if (!strcmp(argv[i], "--to") && i + 1 < argc)
            to = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc)
            path = argv[++i];
        else if (!strcmp(argv[i], "--no-history"))
            history = false;
        else {
            fprintf(stderr, "pchatctl: usage: export [--room NAME]… [--from DATE] [--to DATE] "
                            "[--no-history] [-o FILE]\n");
            return 2;
        }
    }
    FILE *out = path != NULL ? fopen(path, "w") : stdout;
    if (out == NULL) {
        perror(path);
        return 2;
    }
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    emit(out, json_pack("{s:s, s:i, s:s}", "format", FORMAT, "version", VERSION, "exported", stamp));
    struct counts n = {0};
    bool good = export_list(api, out, "category.list", "categories", "category", category_fields,
                            &n.categories) &&
                export_list(api, out, "user.list", "users", "user", user_fields, &n.users);
    json_t *list = NULL;
    if (good && n_rooms == 0) {
        json_t *ans = call(api, json_pack("{s:s}", "op", "room.list"));
        good = ok(ans);
        if (good)
            list = json_incref(json_object_get(ans, "rooms"));
        else
            fprintf(stderr, "pchatctl: export: room.list: %s\n", why(ans));
        json_decref(ans);
    } else if (good) {
        list = json_array();
        for (size_t i = 0; i < n_rooms && good; i++) {
            json_t *ans = call(api, json_pack("{s:s, s:s}", "op", "room.get", "name", rooms[i]));
            good = ok(ans);
            if (good)
                json_array_append(list, json_object_get(ans, "room"));
            else
                fprintf(stderr, "pchatctl: export: room '%s': %s\n", rooms[i], why(ans));
            json_decref(ans);
        }
    }
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r) {
        if (!good)
            break;
        emit(out, pick(r, "room", room_fields));
        n.rooms++;
        if (history)
            good = export_history(api, out, json_string_value(json_object_get(r, "id")),
                                  json_string_value(json_object_get(r, "name")), from, to, &n);
    }
    json_decref(list);
    if (good)
        emit(out, json_pack("{s:s, s:I, s:I, s:I, s:I}", "record", "end", "categories",
                            (json_int_t)n.categories, "users", (json_int_t)n.users, "rooms",
                            (json_int_t)n.rooms, "messages", (json_int_t)n.messages));
    if (path != NULL)
        fclose(out);
    fprintf(stderr, "pchatctl: export %s: %lu categories, %lu users, %lu rooms, %lu messages\n",
            good ? "done" : "FAILED (the output is incomplete: it has no end line)",
            n.categories, n.users, n.rooms, n.messages);
    return good ? 0 : 1;
}

/* ---- import ---------------------------------------------------------------------------------- */

struct importer {
    const struct transfer_api *api;
    struct counts n, changed;
    char room[64];        /* id of the room whose messages are batched */
    bool room_skipped;
    json_t *batch;        /* messages for `room` */
    json_t *skipped;      /* ids of rooms whose history is not imported */
    size_t batch_bytes;
    unsigned long line;
    bool failed;
};

/* Makes the record `want` exist as given: new, set where it differs, or left alone. A room
 * is found by its id (key "id"), so that a renamed one is renamed back. */
static bool upsert(struct importer *im, const char *what, const char *get_key, const char *key,
                   json_t *want, const char *const *fields)
{
    const char *ref = json_string_value(json_object_get(want, key));
    const char *name = json_string_value(json_object_get(want, fields[0]));
    if (ref == NULL || name == NULL) {
        fprintf(stderr, "pchatctl: import: line %lu: a %s without \"%s\"\n", im->line, what, key);
        return false;
    }
    char op[32];
    snprintf(op, sizeof op, "%s.get", what);
    json_t *cur = call(im->api, json_pack("{s:s, s:s}", "op", op, get_key, ref));
    json_t *rec = ok(cur) ? json_object_get(cur, what) : NULL;
    bool same = rec != NULL;
    for (size_t i = 0; same && fields[i] != NULL; i++) {
        json_t *a = json_object_get(want, fields[i]), *b = json_object_get(rec, fields[i]);
        same = a == NULL || (b != NULL && json_equal(a, b));
    }
    if (same) {
        json_decref(cur);
        return true;
    }
    json_t *req = json_object();
    for (size_t i = 0; fields[i] != NULL; i++)
        if (json_object_get(want, fields[i]) != NULL)
            json_object_set(req, fields[i], json_object_get(want, fields[i]));
    snprintf(op, sizeof op, "%s.%s", what,
             rec != NULL ? "set" : strcmp(what, "user") == 0 ? "add" : "new");
    json_object_set_new(req, "op", json_string(op));
    const char *now = json_string_value(json_object_get(rec, fields[0]));
    if (rec != NULL && strcmp(key, "id") == 0) {
        json_object_set_new(req, "name", json_string(ref));
        if (now != NULL && strcmp(now, name) != 0)
            json_object_set_new(req, "new_name", json_string(name));
    }
    json_decref(cur);
    json_t *ans = call(im->api, req);
    bool good = ok(ans);
    if (!good)
        fprintf(stderr, "pchatctl: import: line %lu: %s '%s': %s\n", im->line, what, name, why(ans));
    json_decref(ans);
    return good;
}

static bool flush(struct importer *im)
{
    if (json_array_size(im->batch) == 0)
        return true;
    json_t *ans = call(im->api, json_pack("{s:s, s:s, s:O}", "op", "message.import", "room",
                                          im->room, "messages", im->batch));
    bool good = ok(ans);
    json_int_t want = json_integer_value(
        json_object_get(json_array_get(im->batch, json_array_size(im->batch) - 1), "id"));
    if (!good)
        fprintf(stderr, "pchatctl: import: messages of room %s (before line %lu): %s\n", im->room,
                im->line, why(ans));
    else if (json_integer_value(json_object_get(ans, "last")) < want) {
        fprintf(stderr, "pchatctl: import: room %s ends at message %lld, not %lld: the rest of "
                "the batch before line %lu was not stored (see the node's log)\n", im->room,
                (long long)json_integer_value(json_object_get(ans, "last")), (long long)want,
                im->line);
        good = false;
    }
    json_decref(ans);
    json_array_clear(im->batch);
    im->batch_bytes = 0;
    return good;
}

static bool import_room(struct importer *im, json_t *line)
{
    const char *id = json_string_value(json_object_get(line, "id"));
    const char *name = json_string_value(json_object_get(line, "name"));
    if (id == NULL || name == NULL) {
        fprintf(stderr, "pchatctl: import: line %lu: a room needs \"id\" and \"name\"\n", im->line);
        return false;
    }
    /* A room of that name with another id is another room: its history is not ours. */
    json_t *by_id = call(im->api, json_pack("{s:s, s:s}", "op", "room.get", "name", id));
    bool have_id = ok(by_id);
    json_decref(by_id);
    if (!have_id) {
        json_t *by_name = call(im->api, json_pack("{s:s, s:s}", "op", "room.get", "name", name));
        bool clash = ok(by_name);
        json_decref(by_name);
        if (clash) {
            fprintf(stderr, "pchatctl: import: line %lu: room '%s' exists here with another id: "
                    "left as it is, its history is not imported (rename one of them)\n",
                    im->line, name);
            json_array_append_new(im->skipped, json_string(id));
            return true;
        }
    }
    return upsert(im, "room", "name", have_id ? "id" : "name", line, room_fields);
}

static bool import_message(struct importer *im, json_t *line)
{
    const char *room = json_string_value(json_object_get(line, "room"));
    if (room == NULL) {
        fprintf(stderr, "pchatctl: import: line %lu: a message without \"room\"\n", im->line);
        return false;
    }
    if (strcmp(room, im->room) != 0 || json_array_size(im->batch) >= IMPORT_BATCH ||
        im->batch_bytes >= IMPORT_BATCH_BYTES) {
        if (!flush(im))
            return false;
        snprintf(im->room, sizeof im->room, "%s", room);
        im->room_skipped = false;
        size_t i;
        json_t *s;
        json_array_foreach(im->skipped, i, s)
            im->room_skipped |= strcmp(json_string_value(s), room) == 0;
    }
    if (im->room_skipped)
        return true;
    json_t *m = json_deep_copy(line);
    json_object_del(m, "record");
    json_object_del(m, "room");
    const char *text = json_string_value(json_object_get(m, "text"));
    im->batch_bytes += (text != NULL ? strlen(text) : 0) + 128;
    json_array_append_new(im->batch, m);
    im->n.messages++;
    return true;
}

int transfer_import(const struct transfer_api *api, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "pchatctl: usage: import FILE   (- for standard input)\n");
        return 2;
    }
    FILE *in = strcmp(argv[0], "-") == 0 ? stdin : fopen(argv[0], "r");
    if (in == NULL) {
        perror(argv[0]);
        return 2;
    }
    struct importer im = {.api = api, .batch = json_array(), .skipped = json_array()};
    char *buf = NULL;
    size_t cap = 0;
    bool ended = false, good = true;
    ssize_t len;
    while (good && (len = getline(&buf, &cap, in)) > 0) {
        im.line++;
        json_error_t err;
        json_t *line = json_loadb(buf, (size_t)len, 0, &err);
        const char *type = json_string_value(json_object_get(line, "record"));
        if (line == NULL || (im.line > 1 && type == NULL)) {
            fprintf(stderr, "pchatctl: import: line %lu is not an export record: %s\n", im.line,
                    line == NULL ? err.text : "no \"record\"");
            good = false;
        } else if (im.line == 1) {
            const char *format = json_string_value(json_object_get(line, "format"));
            json_int_t version = json_integer_value(json_object_get(line, "version"));
            if (format == NULL || strcmp(format, FORMAT) != 0 || version != VERSION) {
                fprintf(stderr, "pchatctl: import: %s is not a pchat export of version %d (its "
                        "first line says what it is)\n", argv[0], VERSION);
                good = false;
            }
        } else if (!strcmp(type, "category")) {
            good = upsert(&im, "category", "name", "name", line, category_fields);
            im.n.categories++;
        } else if (!strcmp(type, "user")) {
            good = upsert(&im, "user", "user", "user", line, user_fields);
            im.n.users++;
        } else if (!strcmp(type, "room")) {
            good = flush(&im) && import_room(&im, line);
            im.n.rooms++;
        } else if (!strcmp(type, "message")) {
            good = import_message(&im, line);
        } else if (!strcmp(type, "end")) {
            ended = true;
        } else {
            fprintf(stderr, "pchatctl: import: line %lu: unknown record type '%s' (skipped)\n",
                    im.line, type);
        }
        json_decref(line);
        if (good && im.line % 10000 == 0)
            fprintf(stderr, "pchatctl: import: %lu lines\n", im.line);
    }
    if (good)
        good = flush(&im);
    free(buf);
    if (in != stdin)
        fclose(in);
    json_decref(im.batch);
    json_decref(im.skipped);
    if (good && !ended)
        fprintf(stderr, "pchatctl: import: the file has no end line: the export was cut short; "
                "what it held is imported\n");
    fprintf(stderr, "pchatctl: import %s: %lu categories, %lu users, %lu rooms, %lu messages\n",
            good ? "done" : "STOPPED (fix the cause and run it again: it resumes without "
                            "duplicating)",
            im.n.categories, im.n.users, im.n.rooms, im.n.messages);
    return good ? 0 : 1;
}
