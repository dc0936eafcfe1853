/* The search service's life cycle: open, rebuild, stats, stop (search.h). */
#include <stdio.h>
#include <string.h>

#include "common/pc_alloc.h"
#include "common/pc_err.h"
#include "common/pc_log.h"
#include "common/pc_time.h"
#include "storage/store.h"
#include "search/search_int.h"

int search_open(uv_loop_t *loop, struct store *st, const struct search_config *cfg,
                struct search **out, char *err, size_t errlen)
{
    if (sqlite3_compileoption_used("ENABLE_FTS5") == 0) {
        snprintf(err, errlen, "this SQLite (%s) has no FTS5: install Debian's libsqlite3 "
                 "(deploy/install-deps) for full-text search", sqlite3_libversion());
        return PC_EIO;
    }
    struct search *s = pc_calloc(1, sizeof *s);
    s->loop = loop;
    s->st = st;
    s->cfg = *cfg;
    s->path = pc_strdup(cfg->path);
    s->cfg.path = s->path;
    if (s->cfg.interval_ms == 0)
        s->cfg.interval_ms = 200;
    if (s->cfg.batch == 0)
        s->cfg.batch = 2000;
    if (s->cfg.edits_ms == 0)
        s->cfg.edits_ms = 5000;
    /* Opening creates the schema: a few milliseconds, once, before the node serves. */
    int rc = sdb_open(&s->w, s->path, err, errlen);
    if (rc != 0) {
        pc_free(s->path);
        pc_free(s);
        return rc;
    }
    uv_mutex_init(&s->readers_lock);
    uv_timer_init(loop, &s->timer);
    search_index_start(s);
    pc_info("search: index %s (SQLite %s, FTS5)", s->path, sqlite3_libversion());
    *out = s;
    return 0;
}

void search_rebuild(struct search *s)
{
    pc_notice("search: rebuilding the index from the store");
    s->rebuild_asked = true;
    s->stats.rebuilding = true;
    /* The next tick starts it (or the pass running now is followed by it). */
}

void search_stats(struct search *s, struct search_stats *out)
{
    *out = s->stats;
    bool caught_up = s->seen_valid && store_latest_sequence(s->st) == s->seen_sequence;
    out->behind_ms = caught_up ? 0 : pc_mono_ms() - s->last_pass_end_ms;
}

static void timer_closed(uv_handle_t *h)
{
    struct search *s = h->data;
    s->timer.data = NULL; /* closed */
    search_maybe_finish(s);
}

void search_stop(struct search *s, void (*cb)(void *arg), void *arg)
{
    s->stopping = true;
    s->stop_cb = cb;
    s->stop_arg = arg;
    s->timer.data = s;
    search_queries_cancel(s);
    uv_close((uv_handle_t *)&s->timer, timer_closed);
}

void search_maybe_finish(struct search *s)
{
    /* Work already handed to the thread pool cannot be taken back: wait for it. */
    if (!s->stopping || s->pass != NULL || s->queries_running > 0 || s->timer.data != NULL)
        return;
    sdb_close(&s->w);
    for (size_t i = 0; i < s->n_readers; i++)
        sqlite3_close(s->readers[i]);
    uv_mutex_destroy(&s->readers_lock);
    search_marks_free(&s->marks);
    search_marks_free(&s->floors);
    pc_free(s->stale);
    pc_free(s->path);
    void (*cb)(void *) = s->stop_cb;
    void *arg = s->stop_arg;
    pc_free(s);
    if (cb != NULL)
        cb(arg);
}
