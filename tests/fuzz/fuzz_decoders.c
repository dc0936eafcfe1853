/* Fuzz target: every binary decoder that reads bytes from another node or from disk: the
 * peer-link payloads (pool_msg), raft entry framing, shard op batches, metadata ops and
 * compliance events. The first byte chooses the decoder. */
#include <stdint.h>
#include <stdlib.h>

#include "cluster/entry.h"
#include "cluster/meta.h"
#include "cluster/pool_msg.h"
#include "cluster/shard_op.h"
#include "common/pc_arena.h"
#include "compliance/compl_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    struct pc_arena a = {0};
    switch (data[0] % 12) {
    case 0: {
        struct pool_room_req m;
        pool_room_req_decode(p, n, &a, &m);
        break;
    }
    case 1: {
        struct pool_room_res m;
        pool_room_res_decode(p, n, &a, &m);
        break;
    }
    case 2: {
        struct room_event m;
        pool_room_event_decode(p, n, &a, &m);
        break;
    }
    case 3: {
        struct pool_meta_req m;
        if (pool_meta_req_decode(p, n, &m) == 0)
            meta_op_clear(&m.op);
        break;
    }
    case 4: {
        struct pool_meta_res m;
        pool_meta_res_decode(p, n, &a, &m);
        break;
    }
    case 5: {
        struct pool_subscribe m;
        pool_subscribe_decode(p, n, &a, &m);
        break;
    }
    case 6: {
        uint64_t id;
        unsigned flags;
        pool_resync_decode(p, n);
        pool_meta_sync_decode(p, n, &id);
        pool_node_state_decode(p, n, &flags);
        break;
    }
    case 7: {
        enum entry_kind kind;
        const void *payload;
        size_t len;
        entry_decode(p, n, &kind, &payload, &len);
        break;
    }
    case 8: {
        const char *node;
        struct shard_op *ops;
        size_t count;
        shard_ops_decode(p, n, &a, &node, &ops, &count);
        break;
    }
    case 9: {
        struct meta_op op;
        if (meta_op_decode(p, n, &op) == 0)
            meta_op_clear(&op);
        break;
    }
    default: {
        struct compl_event ev;
        compl_event_decode(p, n, &ev, &a);
        break;
    }
    }
    pc_arena_free(&a);
    return 0;
}
