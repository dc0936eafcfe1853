/* Fuzz target: a TCP byte stream from a client, framed into SIP messages (sip_frame) and
 * each parsed (sip_msg_parse, libosip2 behind it), exactly as a connection does. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat/sip/sip_frame.h"
#include "chat/sip/sip_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        sip_msg_global_init();
        ready = 1;
    }
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    const struct sip_frame_limits lim = {16 * 1024, 64 * 1024};
    size_t off = 0;
    while (off < size) {
        struct sip_framer fr = {0};
        struct sip_frame f;
        if (sip_frame_next(&fr, buf + off, size - off, &lim, &f) != 0)
            break;
        size_t len = f.header_len + f.body_len;
        osip_message_t *m = NULL;
        char err[128];
        if (sip_msg_parse(buf + off + f.skip, len, &m, err, sizeof err) == 0)
            osip_message_free(m);
        off += f.skip + len;
    }
    free(buf);
    return 0;
}
