/* bench_report: pchat-bench's results as a table (for people) and as JSON (for scripts). */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdio.h>

#include "cmd/pchat-bench/bench_run.h"

void bench_report_table(FILE *out, const struct bench_config *cfg, const struct bench_result *res);
/* Writes the JSON document to path ("-" = stdout). Returns 0, or -1 with why filled. */
int bench_report_json(const char *path, const struct bench_config *cfg,
                      const struct bench_result *res, char *why, size_t cap);

#endif
