/* Clocks and the timestamp formats the protocols use. */
#ifndef PC_TIME_H
#define PC_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic milliseconds (for timeouts and latency), unrelated to wall time. */
uint64_t pc_mono_ms(void);
/* Monotonic nanoseconds (for benchmarks). */
uint64_t pc_mono_ns(void);
/* Wall-clock microseconds since 1970 (for message time stamps). */
int64_t pc_wall_us(void);

/* Formats us-since-1970 as ISO 8601 UTC with 7 fractional digits, the way Lync writes
 * times: "2024-05-03T09:00:40.5310000Z". buf must hold PC_ISO_LEN bytes. */
#define PC_ISO_LEN 48
void pc_time_iso(int64_t wall_us, char *buf);

/* Parses "YYYY-MM-DD", "YYYY-MM-DDThh:mm:ss[.fff…][Z]" as UTC; false on junk. */
bool pc_time_parse_iso(const char *s, int64_t *wall_us);

#endif
