#include "storage/store_keys.h"

#include <string.h>

#include "common/pc_bin.h"

size_t store_key_tag_u64(uint8_t *k, uint8_t tag, uint64_t id)
{
    k[0] = tag;
    pc_be64_write(k + 1, id);
    return 9;
}

static size_t put_uri(uint8_t *k, const char *uri)
{
    size_t n = strnlen(uri, STORE_URI_MAX);
    memcpy(k, uri, n);
    return n;
}

size_t store_key_user(uint8_t *k, const char *uri)
{
    k[0] = STORE_TAG_USER;
    return 1 + put_uri(k + 1, uri);
}

size_t store_key_user_room(uint8_t *k, uint8_t tag, const char *uri, uint64_t room_no)
{
    k[0] = tag;
    size_t n = 1 + put_uri(k + 1, uri);
    k[n++] = 0;
    pc_be64_write(k + n, room_no);
    return n + 8;
}

size_t store_key_global(uint8_t *k, const char *name)
{
    k[0] = STORE_TAG_GLOBAL;
    return 1 + put_uri(k + 1, name);
}

size_t store_key_cursor(uint8_t *k, const char *adapter, uint32_t group)
{
    k[0] = STORE_TAG_CURSOR;
    size_t n = 1 + put_uri(k + 1, adapter);
    k[n++] = 0;
    pc_be32_write(k + n, group);
    return n + 4;
}

void store_key_msg(uint8_t *k, uint64_t room_no, uint64_t seq)
{
    pc_be64_write(k, room_no);
    pc_be64_write(k + 8, seq);
}

void store_key_msg_parse(const uint8_t *k, uint64_t *room_no, uint64_t *seq)
{
    *room_no = pc_be64_read(k);
    *seq = pc_be64_read(k + 8);
}

size_t store_key_applied(uint8_t *k, uint32_t group)
{
    k[0] = STORE_TAG_APPLIED;
    pc_be32_write(k + 1, group);
    return 5;
}

size_t store_key_filecheck(uint8_t *k, uint32_t group)
{
    k[0] = STORE_TAG_FILECHECK;
    pc_be32_write(k + 1, group);
    return 5;
}

size_t store_key_room_last(uint8_t *k, uint64_t room_no)
{
    return store_key_tag_u64(k, STORE_TAG_ROOM_LAST, room_no);
}

size_t store_key_shard_room(uint8_t *k, uint32_t group, uint64_t room_no)
{
    k[0] = STORE_TAG_SHARD_ROOM;
    pc_be32_write(k + 1, group);
    pc_be64_write(k + 5, room_no);
    return 13;
}

size_t store_key_edit(uint8_t *k, uint64_t room_no, uint64_t seq)
{
    k[0] = STORE_TAG_EDIT;
    pc_be64_write(k + 1, room_no);
    pc_be64_write(k + 9, seq);
    return 17;
}

size_t store_key_floor(uint8_t *k, uint64_t room_no)
{
    return store_key_tag_u64(k, STORE_TAG_FLOOR, room_no);
}

size_t store_key_backfill(uint8_t *k, uint32_t group, uint64_t room_no, uint64_t from_seq)
{
    k[0] = STORE_TAG_BACKFILL;
    pc_be32_write(k + 1, group);
    pc_be64_write(k + 5, room_no);
    pc_be64_write(k + 13, from_seq);
    return 21;
}

size_t store_key_file(uint8_t *k, uint64_t room_no, uint64_t file_no)
{
    k[0] = STORE_TAG_FILE;
    pc_be64_write(k + 1, room_no);
    pc_be64_write(k + 9, file_no);
    return 17;
}

size_t store_key_file_data(uint8_t *k, uint64_t room_no, uint64_t file_no, uint32_t chunk)
{
    k[0] = STORE_TAG_FILE_DATA;
    pc_be64_write(k + 1, room_no);
    pc_be64_write(k + 9, file_no);
    pc_be32_write(k + 17, chunk);
    return 21;
}

void store_key_compl(uint8_t *k, uint32_t group, uint64_t index, uint32_t n)
{
    pc_be32_write(k, group);
    pc_be64_write(k + 4, index);
    pc_be32_write(k + 12, n);
}

void store_key_compl_parse(const uint8_t *k, uint32_t *group, uint64_t *index, uint32_t *n)
{
    *group = pc_be32_read(k);
    *index = pc_be64_read(k + 4);
    *n = pc_be32_read(k + 12);
}
