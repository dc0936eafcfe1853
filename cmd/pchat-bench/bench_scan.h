/* A delivery read without libxml2: the load generator's own fast path. */
#ifndef BENCH_SCAN_H
#define BENCH_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads a live grpchat exactly as the server writes it (xccos_encode.c put_grpchat):
 *   …<grpchat id="grpchat" … msgid="N"…><chat>TEXT</chat></grpchat>…
 * Sets *msg_id and copies TEXT, NUL-terminated, into text (cap bytes). Returns false for
 * anything else — another message, no msgid, text with entities or longer than cap — which
 * the caller hands to the full decoder. Building libxml2 documents took a third of
 * pchat-bench's time per delivery. */
bool bench_scan_grpchat(const char *body, size_t len, uint64_t *msg_id, char *text, size_t cap);

#endif
