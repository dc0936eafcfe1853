/* Raft entry framing (see entry.h for the layout and why). */
#include "cluster/entry.h"

#include <string.h>

#include "common/pc_bin.h"
#include "common/pc_err.h"

static size_t padded(size_t len)
{
    return (ENTRY_HEADER_LEN + len + 7u) & ~(size_t)7u;
}

int entry_encode(enum entry_kind kind, const void *payload, size_t len, struct raft_buffer *out)
{
    out->base = NULL;
    out->len = 0;
    if (len > ENTRY_MAX_PAYLOAD)
        return PC_ETOOBIG;
    size_t total = padded(len);
    uint8_t *b = raft_malloc(total);
    if (b == NULL)
        return PC_ENOMEM;
    b[0] = 'p';
    b[1] = 'c';
    b[2] = ENTRY_VERSION;
    b[3] = (uint8_t)kind;
    pc_be32_write(b + 4, (uint32_t)len);
    if (len > 0)
        memcpy(b + ENTRY_HEADER_LEN, payload, len);
    /* Zero padding: raft stores and ships these bytes, so they must not carry stale heap
     * content, and decode insists on zeros so that any flipped bit is noticed. */
    memset(b + ENTRY_HEADER_LEN + len, 0, total - ENTRY_HEADER_LEN - len);
    out->base = b;
    out->len = total;
    return 0;
}

int entry_decode(const void *p, size_t n, enum entry_kind *kind, const void **payload,
                 size_t *len)
{
    const uint8_t *b = p;
    if (b == NULL || n < ENTRY_HEADER_LEN || n % 8 != 0)
        return PC_ECORRUPT;
    if (b[0] != 'p' || b[1] != 'c' || b[2] != ENTRY_VERSION)
        return PC_ECORRUPT;
    if (b[3] < ENTRY_META_OP || b[3] > ENTRY_SHARD_SNAP)
        return PC_ECORRUPT;
    size_t plen = pc_be32_read(b + 4);
    /* The total must be exactly header + payload rounded up: no trailing entries hidden in
     * the padding, no payload reaching past the buffer. */
    if (plen > n - ENTRY_HEADER_LEN || padded(plen) != n)
        return PC_ECORRUPT;
    for (size_t i = ENTRY_HEADER_LEN + plen; i < n; i++)
        if (b[i] != 0)
            return PC_ECORRUPT;
    *kind = (enum entry_kind)b[3];
    *payload = b + ENTRY_HEADER_LEN;
    *len = plen;
    return 0;
}
