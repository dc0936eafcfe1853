/* Fuzz target: a pchatd configuration file (inih behind the settings table and the
 * cross-field checks, [cluster] peers included). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cmd/pchatd/pchatd_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("conf", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64], err[512];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct pchatd_conf c;
    pchatd_conf_load(&c, path, err, sizeof err);
    pchatd_conf_free(&c);
    close(fd);
    return 0;
}
