#include "cmd/pchat-bench/bench_report.h"

#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double rate(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0;
}

/* CPU share of one core over the measured posting window (100 = one core busy). */
static double cpu_pct(const struct bench_proc_sample *a, const struct bench_proc_sample *b,
                      double s)
{
    if (!a->ok || !b->ok || s <= 0 || b->cpu_ns < a->cpu_ns)
        return -1;
    return (double)(b->cpu_ns - a->cpu_ns) / (s * 1e9) * 100.0;
}

/* Memory each signed-in session added to its node, in KiB (RSS after sign-in and join
 * minus RSS before the first sign-in). */
static double kib_per_session(const struct bench_node_result *n)
{
    if (!n->before.ok || !n->signed_in.ok || n->sessions == 0)
        return -1;
    return ((double)n->signed_in.rss_kb - (double)n->before.rss_kb) / n->sessions;
}

static void hist_row(FILE *out, const char *name, const struct bench_hist *h)
{
    if (h->count == 0)
        return;
    fprintf(out, "  %-22s %8" PRIu64 "  p50 %8.3f  p90 %8.3f  p99 %8.3f  max %8.3f ms\n", name,
            h->count, ms(bench_hist_quantile(h, 0.5)), ms(bench_hist_quantile(h, 0.9)),
            ms(bench_hist_quantile(h, 0.99)), ms(h->max_ns));
}

void bench_report_table(FILE *out, const struct bench_config *cfg, const struct bench_result *res)
{
    double s = res->measured_s;
    bool posting = cfg->duration_s > 0 && cfg->rooms > 0;
    fprintf(out, "== %s: %u users, %u rooms, %zu node(s), %s", cfg->label, cfg->users, cfg->rooms,
            cfg->n_ports, posting ? (cfg->closed_loop ? "closed loop" : "open loop") : "no posting");
    if (posting) {
        if (cfg->closed_loop)
            fprintf(out, " window %u", cfg->window);
        else
            fprintf(out, " %.3g posts/s per user", cfg->rate);
        fprintf(out, ", %.0f s (%.0f s warm-up)", cfg->duration_s, cfg->warmup_s);
    }
    fprintf(out, " [run %s]\n", res->run_id);
    if (res->error[0] != '\0')
        fprintf(out, "  ERROR: %s\n", res->error);
    fprintf(out, "  sessions               %u signed in, %u failed, %u joined, %u join failed, %u closed\n",
            res->signed_in, res->signin_failed, res->joined, res->join_failed, res->closed);
    hist_row(out, "sign-in", &res->signin);
    hist_row(out, "join", &res->join);
    hist_row(out, "history", &res->history);
    hist_row(out, "join+history", &res->join_history);
    if (res->history.count > 0)
        fprintf(out, "  history messages       %.1f per request\n",
                (double)res->history_msgs / (double)res->history.count);
    if (posting) {
        fprintf(out, "  posts                  %" PRIu64 " sent, %" PRIu64 " acked (%.0f/s), "
                     "%" PRIu64 " SIP 200, %" PRIu64 " 503, %" PRIu64 " errors, %" PRIu64
                     " unanswered\n",
                res->sent, res->acked, rate(res->acked_in_window, s), res->sip_ok, res->busy_503,
                res->post_errors, res->lost);
        fprintf(out, "  deliveries             %" PRIu64 " (%.0f/s arrived in the window; %.0f/s "
                     "posted in it), %.2f%% of expected, %" PRIu64 " seq gaps, %" PRIu64 " dups\n",
                res->delivered, rate(res->delivered_in_window, s), rate(res->delivered, s),
                res->expected_deliveries ? 100.0 * (double)res->delivered /
                                               (double)res->expected_deliveries
                                         : 0,
                res->seq_gaps, res->seq_dups);
        hist_row(out, "post->delivery", &res->delivery);
        hist_row(out, "post->own echo (ack)", &res->ack);
        hist_row(out, "session mean, posters", &res->session_mean_posters);
        hist_row(out, "session mean, others", &res->session_mean_listeners);
        fprintf(out, "  pchat-bench CPU        %.0f%% of one core; loop passes over 10 ms: %llu, "
                     "over 50 ms: %llu, longest %.1f ms\n",
                s > 0 ? (double)res->bench_cpu_ns / (s * 1e9) * 100 : 0,
                (unsigned long long)pc_loop_passes_over(&res->bench_loop, 10),
                (unsigned long long)pc_loop_passes_over(&res->bench_loop, 50),
                (double)res->bench_loop.longest_us / 1000);
    }
    for (size_t j = 0; j < res->n_nodes; j++) {
        const struct bench_node_result *n = &res->nodes[j];
        if (n->pid <= 0)
            continue;
        fprintf(out, "  node :%-5d pid %-7d %5u sessions  RSS %7.1f MiB (%.1f before)", n->port,
                (int)n->pid, n->sessions, (double)n->signed_in.rss_kb / 1024,
                (double)n->before.rss_kb / 1024);
        double kps = kib_per_session(n);
        if (kps >= 0 && n->sessions >= 100)
            fprintf(out, "  %.1f KiB/session", kps);
        double c = cpu_pct(&n->post0, &n->post1, s);
        if (c >= 0)
            fprintf(out, "  CPU %.0f%%", c);
        fputc('\n', out);
    }
}

static json_t *hist_json(const struct bench_hist *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->count,
                     "min_ms", ms(h->min_ns), "mean_ms", bench_hist_mean(h) / 1e6, "p50_ms",
                     ms(bench_hist_quantile(h, 0.5)), "p90_ms", ms(bench_hist_quantile(h, 0.9)),
                     "p99_ms", ms(bench_hist_quantile(h, 0.99)), "p999_ms",
                     ms(bench_hist_quantile(h, 0.999)), "max_ms", ms(h->max_ns));
}

int bench_report_json(const char *path, const struct bench_config *cfg,
                      const struct bench_result *res, char *why, size_t cap)
{
    double s = res->measured_s;
    json_t *conf = json_pack(
        "{s:s, s:I, s:I, s:I, s:s, s:f, s:I, s:f, s:f, s:I, s:I}", "label", cfg->label, "users",
        (json_int_t)cfg->users, "rooms", (json_int_t)cfg->rooms, "nodes", (json_int_t)cfg->n_ports,
        "mode", cfg->closed_loop ? "closed" : "open", "rate_per_user", cfg->rate, "window",
        (json_int_t)cfg->window, "duration_s", cfg->duration_s, "warmup_s", cfg->warmup_s,
        "msg_bytes", (json_int_t)cfg->msg_bytes, "history", (json_int_t)cfg->history);
    json_object_set_new(conf, "posters", json_integer(cfg->posters));
    json_object_set_new(conf, "procs", json_integer(cfg->n_procs ? cfg->n_procs : 1));
    json_t *nodes = json_array();
    for (size_t j = 0; j < res->n_nodes; j++) {
        const struct bench_node_result *n = &res->nodes[j];
        json_t *o = json_pack("{s:i, s:i, s:i, s:f, s:f, s:f}", "port", n->port, "pid",
                              (int)n->pid, "sessions", (int)n->sessions, "rss_mib_before",
                              (double)n->before.rss_kb / 1024, "rss_mib",
                              (double)n->signed_in.rss_kb / 1024, "rss_mib_after_posting",
                              (double)n->post1.rss_kb / 1024);
        double kps = kib_per_session(n), c = cpu_pct(&n->post0, &n->post1, s);
        json_object_set_new(o, "kib_per_session", kps >= 0 ? json_real(kps) : json_null());
        json_object_set_new(o, "cpu_pct", c >= 0 ? json_real(c) : json_null());
        json_array_append_new(nodes, o);
    }
    json_t *root = json_pack(
        "{s:s, s:o, s:s?, s:f, s:f, "
        "s:{s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:f}, "
        "s:{s:I, s:I, s:f, s:I, s:I, s:I, s:I}, "
        "s:{s:I, s:f, s:I, s:I, s:I, s:o}, s:o, s:f, s:o}",
        "run_id", res->run_id, "config", conf, "error", res->error[0] ? res->error : NULL,
        "wall_s", res->wall_s, "measured_s", s,
        "sessions", "signed_in", (int)res->signed_in, "signin_failed", (int)res->signin_failed,
        "joined", (int)res->joined, "join_failed", (int)res->join_failed, "closed",
        (int)res->closed, "signin_latency", hist_json(&res->signin), "join_latency",
        hist_json(&res->join), "history_latency", hist_json(&res->history),
        "join_history_latency", hist_json(&res->join_history), "history_msgs_per_request",
        res->history.count ? (double)res->history_msgs / (double)res->history.count : 0.0,
        "posts", "sent", (json_int_t)res->sent, "acked", (json_int_t)res->acked, "acked_per_s",
        rate(res->acked_in_window, s), "sip_200", (json_int_t)res->sip_ok, "busy_503",
        (json_int_t)res->busy_503, "errors", (json_int_t)res->post_errors, "unanswered",
        (json_int_t)res->lost,
        "deliveries", "count", (json_int_t)res->delivered, "per_s",
        rate(res->delivered_in_window, s),
        "expected", (json_int_t)res->expected_deliveries, "seq_gaps", (json_int_t)res->seq_gaps,
        "seq_dups", (json_int_t)res->seq_dups, "latency", hist_json(&res->delivery),
        "ack_latency", hist_json(&res->ack), "bench_cpu_pct",
        s > 0 ? (double)res->bench_cpu_ns / (s * 1e9) * 100 : 0.0, "nodes", nodes);
    if (root != NULL)
        json_object_set_new(root, "bench_loop",
                            json_pack("{s:I, s:I, s:I, s:f}", "passes",
                                      (json_int_t)res->bench_loop.passes, "over_10ms",
                                      (json_int_t)pc_loop_passes_over(&res->bench_loop, 10), "over_50ms",
                                      (json_int_t)pc_loop_passes_over(&res->bench_loop, 50), "longest_ms",
                                      (double)res->bench_loop.longest_us / 1000));
    if (root != NULL) {
        /* Posts made in the window × their recipients, per second: above per_s when the
         * receivers fall behind (the backlog is delivered after the window). */
        json_object_set_new(json_object_get(root, "deliveries"), "per_s_posted_in_window",
                            json_real(rate(res->delivered, s)));
        json_object_set_new(root, "session_mean_latency_posters",
                            hist_json(&res->session_mean_posters));
        json_object_set_new(root, "session_mean_latency_others",
                            hist_json(&res->session_mean_listeners));
    }
    if (root == NULL) {
        snprintf(why, cap, "could not build the JSON document (a bug in pchat-bench)");
        return -1;
    }
    int rc = strcmp(path, "-") == 0 ? json_dumpf(root, stdout, JSON_INDENT(2))
                                    : json_dump_file(root, path, JSON_INDENT(2));
    json_decref(root);
    if (rc != 0) {
        snprintf(why, cap, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (strcmp(path, "-") == 0)
        fputc('\n', stdout);
    return 0;
}
