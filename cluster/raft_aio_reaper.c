/* io_destroy(2) on a thread of its own (raft_aio_reaper.h). */
#include "cluster/raft_aio_reaper.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/pc_log.h"

typedef long (*syscall_fn)(long, ...);

static syscall_fn real_syscall;
static int queue_fd[2] = {-1, -1}; /* contexts to destroy, as longs, through a pipe */
static atomic_uint_fast64_t reaped;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static int start_error; /* why the thread is not running (an errno), 0 if it is */

static void *reap(void *arg)
{
    (void)arg;
    long ctx;
    while (read(queue_fd[0], &ctx, sizeof ctx) == (ssize_t)sizeof ctx) {
        real_syscall(SYS_io_destroy, ctx);
        atomic_fetch_add(&reaped, 1);
    }
    return NULL;
}

static void start(void)
{
    real_syscall = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
    /* The writing end never blocks: with the pipe full, io_destroy is done in place. */
    if (real_syscall == NULL || pipe2(queue_fd, O_CLOEXEC) != 0) {
        start_error = real_syscall == NULL ? ENOSYS : errno;
        return;
    }
    fcntl(queue_fd[1], F_SETFL, O_NONBLOCK);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    start_error = pthread_create(&t, &attr, reap, NULL);
    if (start_error != 0) {
        close(queue_fd[0]);
        close(queue_fd[1]);
        queue_fd[0] = queue_fd[1] = -1;
    }
    pthread_attr_destroy(&attr);
}

void raft_aio_reaper_start(void)
{
    pthread_once(&start_once, start);
    static bool told;
    if (start_error != 0 && !told) {
        told = true;
        pc_warn("cluster: no thread for io_destroy (%s): each raft segment closed will stop "
                "this node's event loop for ~35 ms", strerror(start_error));
    }
}

uint64_t raft_aio_reaper_reaped(void)
{
    return atomic_load(&reaped);
}

/* libc's syscall() for everyone in the process. Six arguments are always passed on, as
 * libc's own does: the kernel ignores the ones a call does not take. Reading six from a
 * caller that passed fewer reads the caller's stack (what libc's assembly does too), which
 * AddressSanitizer would report: it is told not to look here. */
__attribute__((no_sanitize_address)) long syscall(long number, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, number);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    pthread_once(&start_once, start);
    if (real_syscall == NULL) { /* a libc without syscall(): not glibc */
        errno = ENOSYS;
        return -1;
    }
    if (number == SYS_io_destroy && queue_fd[1] >= 0 &&
        write(queue_fd[1], &a[0], sizeof a[0]) == (ssize_t)sizeof a[0])
        return 0;
    return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
