/* Levelled one-line logging with node/session/room context and escaped user input. */
#ifndef PC_LOG_H
#define PC_LOG_H

#include <stdarg.h>

enum pc_log_level { PC_LOG_DEBUG, PC_LOG_INFO, PC_LOG_NOTICE, PC_LOG_WARN, PC_LOG_ERROR };

extern enum pc_log_level pc_log_min_level;

/* Sets the process-wide node label put on every line ("n1"), the minimum level and the
 * output file (NULL = stderr). Not thread-safe; call at start-up. */
void pc_log_init(const char *node_label, enum pc_log_level min_level);

/* Parses "debug", "info", "notice", "warn", "error"; returns -1 if unknown. */
int pc_log_level_parse(const char *name);

/* Writes one line: time, level, node, message. Every byte outside printable ASCII (and
 * backslash) in the formatted message is escaped as \xNN, so user input (room names,
 * SIP headers) can never forge a line or a terminal escape. Safe from any thread. */
void pc_log_write(enum pc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pc_log_vwrite(enum pc_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Arguments are evaluated only when the level is enabled. */
#define pc_log(level, ...)                                                       \
    do {                                                                         \
        if ((level) >= pc_log_min_level)                                         \
            pc_log_write((level), __VA_ARGS__);                                  \
    } while (0)

#define pc_debug(...) pc_log(PC_LOG_DEBUG, __VA_ARGS__)
#define pc_info(...) pc_log(PC_LOG_INFO, __VA_ARGS__)
#define pc_notice(...) pc_log(PC_LOG_NOTICE, __VA_ARGS__)
#define pc_warn(...) pc_log(PC_LOG_WARN, __VA_ARGS__)
#define pc_error(...) pc_log(PC_LOG_ERROR, __VA_ARGS__)

#endif
