/* Fuzz target: an XCCOS body from a client (libxml2 behind the hardened decoder). Property:
 * whatever decodes re-encodes to a body that decodes again. */
#include <stdint.h>
#include <stdlib.h>

#include "chat/xccos/xccos.h"
#include "common/pc_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xccos_msg m;
    char err[160];
    if (xccos_decode((const char *)data, size, NULL, &m, err, sizeof err) != 0)
        return 0;
    struct pc_buf b = {0};
    xccos_encode(&m, &b);
    struct xccos_msg again;
    if (xccos_decode(b.data, b.len, NULL, &again, err, sizeof err) != 0)
        abort(); /* the encoder wrote something its own decoder refuses */
    xccos_msg_free(&again);
    xccos_msg_free(&m);
    pc_buf_free(&b);
    return 0;
}
