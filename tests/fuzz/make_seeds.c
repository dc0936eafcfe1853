/* Writes seed inputs for fuzz_decoders into a directory: one valid encoding of each
 * message and entry kind, prefixed with the selector byte fuzz_decoders reads first. Run
 * by `make fuzz-build`, so the seeds always match the current encoders. */
#include <stdio.h>
#include <string.h>

#include "cluster/entry.h"
#include "cluster/meta.h"
#include "cluster/pool_msg.h"
#include "cluster/shard_op.h"
#include "common/pc_buf.h"
#include "compliance/compl_event.h"

static void put(const char *dir, const char *name, unsigned selector, const struct pc_buf *b)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return;
    fputc((int)selector, f);
    fwrite(b->data, 1, b->len, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    struct pc_buf b = {0};
    struct room_req req = {.kind = ROOM_REQ_POST, .room_no = 7, .user = "sip:alice@example.test",
                           .session = 3, .text = "hello"};
    pool_room_req_encode(&b, 42, &req);
    put(dir, "room_req", 0, &b);
    pc_buf_reset(&b);
    struct room_msg msg = {7, 12, 1700000000000000, "sip:bob@example.test", "hi"};
    struct room_presence pres = {"sip:bob@example.test", 2};
    struct room_res res = {.seq = 12, .msgs = &msg, .n_msgs = 1, .present = &pres, .n_present = 1};
    pool_room_res_encode(&b, 42, &res);
    put(dir, "room_res", 1, &b);
    pc_buf_reset(&b);
    struct room_event ev = {.kind = ROOM_EV_MESSAGE, .room_no = 7, .msg = &msg};
    pool_room_event_encode(&b, &ev);
    put(dir, "room_event", 2, &b);
    pc_buf_reset(&b);
    struct meta_op op = {.kind = META_OP_NODES};
    snprintf(op.nodes, sizeof op.nodes, "1=127.0.0.1:7600,2=127.0.0.1:7610");
    pool_meta_req_encode(&b, 5, &op);
    put(dir, "meta_req", 3, &b);
    pc_buf_reset(&b);
    struct meta_result mr = {.status = 0, .no = 3};
    pool_meta_res_encode(&b, 5, &mr, 99);
    put(dir, "meta_res", 4, &b);
    pc_buf_reset(&b);
    struct pool_sub_session ss = {3, "sip:alice@example.test"};
    struct pool_subscribe sub = {7, 11, &ss, 1, 8};
    pool_subscribe_encode(&b, &sub);
    put(dir, "subscribe", 5, &b);
    pc_buf_reset(&b);
    pool_meta_sync_encode(&b, 9);
    put(dir, "meta_sync", 6, &b);
    pc_buf_reset(&b);
    struct shard_op sop = {.kind = SHARD_OP_POST, .tag = 1, .room_no = 7, .ts_us = 1,
                           .author = "sip:alice@example.test", .text = "hello",
                           .room_guid = "8e1d", .room_name = "Lobby"};
    shard_ops_encode("n1", &sop, 1, &b);
    put(dir, "shard_ops", 8, &b);
    struct raft_buffer rb;
    if (entry_encode(ENTRY_SHARD_OPS, b.data, b.len, &rb) == 0) {
        struct pc_buf e = {0};
        pc_buf_append(&e, rb.base, rb.len);
        put(dir, "entry", 7, &e);
        pc_buf_free(&e);
        raft_free(rb.base);
    }
    pc_buf_reset(&b);
    meta_op_encode(&op, &b);
    put(dir, "meta_op", 9, &b);
    pc_buf_reset(&b);
    struct compl_event ce = {.type = COMPL_CHAT, .ts_us = 1, .node = "n1",
                             .user = "sip:alice@example.test", .room_no = 7, .room_guid = "8e1d",
                             .room_name = "Lobby", .seq = 12, .content = "hello"};
    compl_event_encode(&ce, &b);
    put(dir, "compl_event", 10, &b);
    pc_buf_free(&b);
    return 0;
}
