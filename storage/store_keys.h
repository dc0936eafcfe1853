/* Key layout of every column family (documented in storage/KEYS.md). */
#ifndef STORE_KEYS_H
#define STORE_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* Longest key any builder produces (user URIs are capped well below this). */
#define STORE_KEY_MAX 600
#define STORE_URI_MAX 256

/* Metadata column family: one tag byte, then the identifier. Numbers are big-endian so
 * that iteration order is numeric order. Builders return the key length. */
enum {
    STORE_TAG_CATEGORY = 'c', /* 'c' be64(category no) */
    STORE_TAG_ROOM = 'r',     /* 'r' be64(room no) */
    STORE_TAG_USER = 'u',     /* 'u' user-uri */
    STORE_TAG_FOLLOW = 'f',   /* 'f' user-uri 0x00 be64(room no) */
    STORE_TAG_INVITE = 'i',   /* 'i' user-uri 0x00 be64(invite id) */
    STORE_TAG_GLOBAL = 'g',   /* 'g' name: counters and server settings */
    STORE_TAG_CURSOR = 'k',   /* 'k' adapter 0x00 be32(raft group): be64 index be32 n, the
                                 last compliance event the adapter has taken */
};
size_t store_key_tag_u64(uint8_t *k, uint8_t tag, uint64_t id);
size_t store_key_user(uint8_t *k, const char *uri);
size_t store_key_user_room(uint8_t *k, uint8_t tag, const char *uri, uint64_t room_no);
size_t store_key_global(uint8_t *k, const char *name);
size_t store_key_cursor(uint8_t *k, const char *adapter, uint32_t group);

/* Messages column family: be64(room no) be64(seq). 16 bytes. */
#define STORE_MSG_KEY_LEN 16
void store_key_msg(uint8_t *k, uint64_t room_no, uint64_t seq);
void store_key_msg_parse(const uint8_t *k, uint64_t *room_no, uint64_t *seq);

/* State column family. */
enum {
    STORE_TAG_APPLIED = 'a',   /* 'a' be32(raft group): be64 applied index */
    STORE_TAG_ROOM_LAST = 'l', /* 'l' be64(room no): be64 last sequence number */
    STORE_TAG_SHARD_ROOM = 's', /* 's' be32(shard group) be64(room no): empty, the room has
                                   messages in that shard (what a shard snapshot lists) */
    STORE_TAG_BACKFILL = 'b',  /* 'b' be32(shard group) be64(room no) be64(from seq): be64 to
                                  seq, messages [from, to] still to fetch from a peer */
    STORE_TAG_EDIT = 'e',      /* 'e' be64(room no) be64(seq): u8 flags + the notice, an
                                  administrator's removal/replacement of that message */
    STORE_TAG_FLOOR = 'p',     /* 'p' be64(room no): be64 seq, messages up to it are purged */
    STORE_TAG_FILECHECK = 'f', /* 'f' be32(shard group): empty, a snapshot brought file
                                  records whose bytes may be missing here */
};
size_t store_key_applied(uint8_t *k, uint32_t group);
size_t store_key_filecheck(uint8_t *k, uint32_t group);
size_t store_key_room_last(uint8_t *k, uint64_t room_no);
/* 13 bytes; the first 5 are the prefix shared by all of the group's rooms. */
size_t store_key_shard_room(uint8_t *k, uint32_t group, uint64_t room_no);
/* 21 bytes; the first 13 are the prefix of one room's records. */
size_t store_key_backfill(uint8_t *k, uint32_t group, uint64_t room_no, uint64_t from_seq);
/* 17 bytes; the first 9 are the prefix of one room's edits. */
size_t store_key_edit(uint8_t *k, uint64_t room_no, uint64_t seq);
size_t store_key_floor(uint8_t *k, uint64_t room_no);

/* Files column family: 'm' be64(room no) be64(file no) = the file's record (17 bytes; the
 * first 9 list a room's files); 'd' be64(room no) be64(file no) be32(chunk) = its bytes. */
enum { STORE_TAG_FILE = 'm', STORE_TAG_FILE_DATA = 'd' };
size_t store_key_file(uint8_t *k, uint64_t room_no, uint64_t file_no);
size_t store_key_file_data(uint8_t *k, uint64_t room_no, uint64_t file_no, uint32_t chunk);

/* Compliance column family: be32(raft group) be64(raft index) be32(n-th event of the
 * entry). 16 bytes: the same key, and so the same event id, on every replica. */
#define STORE_COMPL_KEY_LEN 16
void store_key_compl(uint8_t *k, uint32_t group, uint64_t index, uint32_t n);
void store_key_compl_parse(const uint8_t *k, uint32_t *group, uint64_t *index, uint32_t *n);

#endif
