/* Error codes shared by every pchat module, and their human text. */
#ifndef PC_ERR_H
#define PC_ERR_H

/* Every function that can fail returns 0 or one of these negative codes. Some codes steer
 * control flow rather than report a fault: PC_EAGAIN (a parser needs more bytes),
 * PC_EBUSY (a bound was reached: SIP 503 + Retry-After), PC_ENOTOWNER (re-route). */
#define PC_ERR_TABLE(X)                                                          \
    X(PC_ENOMEM, 1, "out of memory")                                             \
    X(PC_EINVAL, 2, "invalid argument")                                          \
    X(PC_EAGAIN, 3, "more input needed")                                         \
    X(PC_EBUSY, 4, "over capacity, retry later")                                 \
    X(PC_ENOTOWNER, 5, "not the owner of this room")                             \
    X(PC_ENOTFOUND, 6, "not found")                                              \
    X(PC_EDENIED, 7, "not allowed")                                              \
    X(PC_EEXIST, 8, "already exists")                                            \
    X(PC_EIO, 9, "input/output error")                                           \
    X(PC_ETOOBIG, 10, "too large")                                               \
    X(PC_EPROTO, 11, "protocol error")                                           \
    X(PC_ECLOSED, 12, "closed")                                                  \
    X(PC_ETIMEDOUT, 13, "timed out")                                             \
    X(PC_ENOSPC, 14, "no space left on the data disk")                           \
    X(PC_ECORRUPT, 15, "stored data is corrupt")                                 \
    X(PC_EDISABLED, 16, "disabled")                                              \
    X(PC_ENOTLEADER, 17, "not the leader")                                       \
    X(PC_ECANCELED, 18, "canceled")                                              \
    X(PC_EUNAVAIL, 19, "temporarily unavailable")                               \
    X(PC_EUNKNOWN, 20, "outcome unknown: it may or may not have been committed")

enum {
    PC_OK = 0,
#define PC_ERR_ENUM(name, num, text) name = -(num),
    PC_ERR_TABLE(PC_ERR_ENUM)
#undef PC_ERR_ENUM
};

/* Returns a static string for a code from the table (or for 0); never NULL. */
const char *pc_strerror(int code);

/* Returns the symbolic name ("PC_EBUSY") of a code, for logs and metrics. */
const char *pc_errname(int code);

#endif
