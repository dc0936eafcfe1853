/* Random identifiers: GUIDs for rooms, tags and branches for SIP. */
#ifndef PC_RAND_H
#define PC_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Fills buf with len bytes from the kernel's CSPRNG; aborts if the kernel refuses. */
void pc_random_bytes(void *buf, size_t len);
uint64_t pc_random_u64(void);

/* Writes a lower-case RFC 4122 version-4 GUID ("8e1d0c3a-5f6b-4b7e-9a21-1c2d3e4f5a6b")
 * into buf, which must hold PC_GUID_LEN bytes. */
#define PC_GUID_LEN 37
void pc_guid(char *buf);

/* Writes 2*nbytes lower-case hex characters of randomness plus NUL. */
void pc_random_hex(char *buf, size_t nbytes);

#endif
