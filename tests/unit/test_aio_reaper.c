/* cluster/raft_aio_reaper: io_destroy through syscall() is handed to the reaper thread and
 * reported done at once; every other system call passes through unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/aio_abi.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cluster/raft_aio_reaper.h"
#include "common/pc_time.h"

static void ioDestroy_isDoneByTheReaper(void **state)
{
    (void)state;
    raft_aio_reaper_start();
    uint64_t before = raft_aio_reaper_reaped();
    aio_context_t ctx = 0;
    assert_int_equal(syscall(SYS_io_setup, 1, &ctx), 0);
    assert_int_equal(syscall(SYS_io_destroy, ctx), 0);
    uint64_t deadline = pc_mono_ms() + 5000;
    while (raft_aio_reaper_reaped() == before && pc_mono_ms() < deadline)
        usleep(1000);
    assert_int_equal(raft_aio_reaper_reaped(), before + 1);
    /* The context is gone: the kernel no longer knows it. */
    struct io_event ev;
    struct timespec zero = {0, 0};
    assert_int_equal(syscall(SYS_io_getevents, ctx, 0, 1, &ev, &zero), -1);
    assert_int_equal(errno, EINVAL);
}

static void otherCalls_passThrough(void **state)
{
    (void)state;
    assert_int_equal(syscall(SYS_getpid), getpid());
    assert_int_equal(syscall(SYS_gettid), gettid());
    char buf[8];
    /* A call with arguments and an error: read from a closed descriptor. */
    assert_int_equal(syscall(SYS_read, -1, buf, sizeof buf), -1);
    assert_int_equal(errno, EBADF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ioDestroy_isDoneByTheReaper),
        cmocka_unit_test(otherCalls_passThrough),
    };
    return cmocka_run_group_tests_name("aio_reaper", tests, NULL, NULL);
}
